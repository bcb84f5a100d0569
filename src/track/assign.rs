//! Rectangular minimum-cost assignment with forbidden pairs.
//!
//! Why this exact algorithm: the MOT metrics must pick the same pairs as py-motmetrics,
//! and when several assignments cost the same (identical boxes, integer costs) the pair
//! chosen decides whether an identity switch is counted. py-motmetrics solves with
//! scipy's `linear_sum_assignment` after replacing forbidden entries by one large finite
//! cost (`motmetrics.lap.add_expensive_edges`) and dropping forbidden pairs from the
//! answer. [`assign`] does the same steps with the same floating-point operations and
//! scipy's solver (Crouse's shortest augmenting path, a Jonker-Volgenant variant,
//! `scipy/optimize/rectangular_lsap/rectangular_lsap.cpp`, unchanged since scipy 1.11),
//! so ties resolve the same way. The tracker's association uses it too, so both
//! agree on what "the optimal matching" is.

/// Pairs `(row, column)` of a minimum-cost assignment of `cost`, with allowed pairs only.
///
/// A pair is allowed when its cost is finite and at most `max_cost` (NaN and ±∞ are
/// forbidden; pass `f64::INFINITY` for no ceiling). The answer is, exactly:
/// 1. a matching with as many allowed pairs as any matching can have, and
/// 2. among those, one of minimum total cost;
/// 3. among equal-cost ones, the one scipy picks for the matrix in which every forbidden
///    entry is replaced by `2 r c + 1` (`r` = min(rows, columns), `c` = 1 + the largest
///    allowed |cost|), as py-motmetrics does.
///
/// So a pair that makes the matching larger is taken even when a cheaper pair must be
/// left out for it: py-motmetrics' rule, not lapjv's `cost_limit` ("matched cost plus a
/// fee per unmatched item", which ByteTrack's reference code uses).
///
/// Pairs come sorted by row. Every row of `cost` must have the same length; rows and
/// columns may be empty. Runs in O(r² · max(rows, columns)).
pub fn assign(cost: &[Vec<f64>], max_cost: f64) -> Vec<(usize, usize)> {
    let rows = cost.len();
    let cols = cost.first().map_or(0, Vec::len);
    assert!(
        cost.iter().all(|row| row.len() == cols),
        "assign: cost matrix rows differ in length"
    );
    let allowed = |c: f64| c.is_finite() && c <= max_cost;

    let Some(largest) = cost
        .iter()
        .flatten()
        .filter(|&&c| allowed(c))
        .map(|c| c.abs())
        .reduce(f64::max)
    else {
        return Vec::new();
    };
    let forbidden = (2 * rows.min(cols)) as f64 * (largest + 1.0) + 1.0;

    // Solve the wide orientation (rows <= columns), as scipy does by transposing.
    let transpose = cols < rows;
    let (n_rows, n_cols) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut dense = vec![0.0; rows * cols];
    for (i, row) in cost.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            let at = if transpose {
                j * rows + i
            } else {
                i * cols + j
            };
            dense[at] = if allowed(c) { c } else { forbidden };
        }
    }

    let col4row = ShortestPaths::new(n_rows, n_cols, &dense).solve();
    let mut pairs: Vec<(usize, usize)> = col4row
        .into_iter()
        .enumerate()
        .map(|(r, c)| if transpose { (c, r) } else { (r, c) })
        .filter(|&(r, c)| allowed(cost[r][c]))
        .collect();
    pairs.sort_unstable();
    pairs
}

/// State of the shortest-augmenting-path solver on a dense `rows x cols` matrix with
/// `rows <= cols` and finite entries: dual variables `u`, `v` and the partial matching.
struct ShortestPaths<'a> {
    rows: usize,
    cols: usize,
    cost: &'a [f64],
    u: Vec<f64>,
    v: Vec<f64>,
    col4row: Vec<usize>,
    row4col: Vec<Option<usize>>,
    /// Per column: the row it was reached from on the current shortest-path tree.
    path: Vec<usize>,
    shortest: Vec<f64>,
    seen_rows: Vec<bool>,
    seen_cols: Vec<bool>,
    remaining: Vec<usize>,
}

impl<'a> ShortestPaths<'a> {
    fn new(rows: usize, cols: usize, cost: &'a [f64]) -> Self {
        ShortestPaths {
            rows,
            cols,
            cost,
            u: vec![0.0; rows],
            v: vec![0.0; cols],
            col4row: vec![usize::MAX; rows],
            row4col: vec![None; cols],
            path: vec![usize::MAX; cols],
            shortest: vec![0.0; cols],
            seen_rows: vec![false; rows],
            seen_cols: vec![false; cols],
            remaining: Vec::with_capacity(cols),
        }
    }

    /// The column of every row: each row in turn joins the matching along a shortest
    /// augmenting path, then the duals are updated so reduced costs stay non-negative.
    fn solve(mut self) -> Vec<usize> {
        for row in 0..self.rows {
            let (sink, min_val) = self.augmenting_path(row);
            self.update_duals(row, min_val);
            self.augment(row, sink);
        }
        self.col4row
    }

    /// Dijkstra over reduced costs from `row` to the nearest unmatched column. Columns are
    /// scanned from the last one down and, among equally near columns, an unmatched one
    /// wins: scipy's order, which is what makes ties resolve identically.
    fn augmenting_path(&mut self, mut row: usize) -> (usize, f64) {
        self.remaining.clear();
        self.remaining.extend((0..self.cols).rev());
        self.seen_rows.fill(false);
        self.seen_cols.fill(false);
        self.shortest.fill(f64::INFINITY);

        let mut min_val = 0.0;
        loop {
            self.seen_rows[row] = true;
            let mut index = 0;
            let mut lowest = f64::INFINITY;
            for (it, &j) in self.remaining.iter().enumerate() {
                let r = min_val + self.cost[row * self.cols + j] - self.u[row] - self.v[j];
                if r < self.shortest[j] {
                    self.path[j] = row;
                    self.shortest[j] = r;
                }
                if self.shortest[j] < lowest
                    || (self.shortest[j] == lowest && self.row4col[j].is_none())
                {
                    lowest = self.shortest[j];
                    index = it;
                }
            }
            // Entries are finite, so the matrix is always feasible and `lowest` finite.
            min_val = lowest;
            let j = self.remaining.swap_remove(index);
            self.seen_cols[j] = true;
            match self.row4col[j] {
                None => return (j, min_val),
                Some(next) => row = next,
            }
        }
    }

    fn update_duals(&mut self, row: usize, min_val: f64) {
        self.u[row] += min_val;
        for (i, u) in self.u.iter_mut().enumerate() {
            if self.seen_rows[i] && i != row {
                *u += min_val - self.shortest[self.col4row[i]];
            }
        }
        let seen = self.seen_cols.iter().zip(&self.shortest);
        for (v, (&seen, &shortest)) in self.v.iter_mut().zip(seen) {
            if seen {
                *v -= min_val - shortest;
            }
        }
    }

    /// Flips the matching along the path that ends at `sink`.
    fn augment(&mut self, row: usize, sink: usize) {
        let mut j = sink;
        loop {
            let i = self.path[j];
            self.row4col[j] = Some(i);
            std::mem::swap(&mut self.col4row[i], &mut j);
            if i == row {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::assign;
    use crate::synth::rng::Rng;

    /// Best (count, cost) over every matching of allowed pairs, by enumeration.
    fn brute_force(cost: &[Vec<f64>], max_cost: f64) -> (usize, f64) {
        fn go(
            cost: &[Vec<f64>],
            max_cost: f64,
            row: usize,
            used: &mut Vec<bool>,
            count: usize,
            total: f64,
            best: &mut (usize, f64),
        ) {
            if row == cost.len() {
                if count > best.0 || (count == best.0 && total < best.1) {
                    *best = (count, total);
                }
                return;
            }
            go(cost, max_cost, row + 1, used, count, total, best);
            for (j, &c) in cost[row].iter().enumerate() {
                if !used[j] && c.is_finite() && c <= max_cost {
                    used[j] = true;
                    go(cost, max_cost, row + 1, used, count + 1, total + c, best);
                    used[j] = false;
                }
            }
        }
        let cols = cost.first().map_or(0, Vec::len);
        let mut best = (0, 0.0);
        go(cost, max_cost, 0, &mut vec![false; cols], 0, 0.0, &mut best);
        best
    }

    fn random_matrix(rng: &mut Rng, rows: usize, cols: usize, integers: bool) -> Vec<Vec<f64>> {
        (0..rows)
            .map(|_| {
                (0..cols)
                    .map(|_| match rng.below(10) {
                        0 => f64::INFINITY,
                        1 => f64::NAN,
                        _ if integers => rng.below(4) as f64,
                        _ => rng.range(-1.0, 2.0) as f64,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn finds_the_largest_then_cheapest_matching_on_random_matrices() {
        let mut rng = Rng::new(11);
        for case in 0..3000 {
            let rows = rng.below(6);
            let cols = rng.below(6);
            let integers = case % 2 == 0;
            let cost = random_matrix(&mut rng, rows, cols, integers);
            let max_cost = if case % 3 == 0 { f64::INFINITY } else { 1.0 };

            let pairs = assign(&cost, max_cost);
            let (best_count, best_cost) = brute_force(&cost, max_cost);

            let mut rows_used = vec![false; rows];
            let mut cols_used = vec![false; cols];
            for &(r, c) in &pairs {
                assert!(!rows_used[r] && !cols_used[c], "{cost:?}: {pairs:?}");
                rows_used[r] = true;
                cols_used[c] = true;
                assert!(
                    cost[r][c] <= max_cost,
                    "{cost:?}: forbidden pair ({r}, {c})"
                );
            }
            let total: f64 = pairs.iter().map(|&(r, c)| cost[r][c]).sum();
            assert_eq!(pairs.len(), best_count, "{cost:?}: {pairs:?}");
            assert!(
                (total - best_cost).abs() < 1e-9,
                "{cost:?}: {total} vs {best_cost}"
            );
            assert!(
                pairs.windows(2).all(|w| w[0].0 < w[1].0),
                "{pairs:?} not by row"
            );
        }
    }

    #[test]
    fn a_larger_matching_wins_over_a_cheaper_smaller_one() {
        // Row 0's cheapest column is row 1's only one: both rows are matched instead.
        let cost = [vec![0.0, 0.9], vec![0.1, f64::INFINITY]];
        assert_eq!(assign(&cost, 1.0), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn a_constant_matrix_gives_the_diagonal_like_scipy() {
        let ones = |rows: usize, cols: usize| vec![vec![1.0; cols]; rows];
        assert_eq!(assign(&ones(3, 3), 2.0), vec![(0, 0), (1, 1), (2, 2)]);
        assert_eq!(assign(&ones(4, 2), 2.0), vec![(0, 0), (1, 1)]);
    }

    #[test]
    fn nothing_is_matched_when_every_pair_is_forbidden_or_over_the_ceiling() {
        let cost = [vec![0.7, f64::NAN], vec![f64::NEG_INFINITY, 0.9]];
        assert!(assign(&cost, 0.5).is_empty());
        assert!(assign(&[], 0.5).is_empty());
        assert!(assign(&[vec![], vec![]], 0.5).is_empty());
    }
}
