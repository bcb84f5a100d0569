//! The constant-velocity Kalman filter SORT, DeepSORT and ByteTrack use, on a box's
//! centre, aspect ratio and height (`[cx, cy, a, h]` and their velocities).
//!
//! Why this parameterisation: a walking person's aspect ratio barely changes while their
//! height grows or shrinks with distance, so the noise is scaled by the height and the
//! aspect ratio gets almost none; predictions stay sensible through a few missed frames.
//! One step is one frame (the filter knows nothing of time).

/// Position noise per unit of box height (ByteTrack's `_std_weight_position`).
const STD_POSITION: f64 = 1.0 / 20.0;
/// Velocity noise per unit of box height (ByteTrack's `_std_weight_velocity`).
const STD_VELOCITY: f64 = 1.0 / 160.0;

type Vec8 = [f64; 8];
type Mat8 = [[f64; 8]; 8];
type Mat4 = [[f64; 4]; 4];

/// The filter's belief about one object: mean and covariance of
/// `[cx, cy, a, h, vcx, vcy, va, vh]`.
#[derive(Debug, Clone, PartialEq)]
pub struct KalmanBox {
    mean: Vec8,
    covariance: Mat8,
}

/// `[x0, y0, x1, y1]` -> `[cx, cy, w / h, h]`.
fn xyah(b: [f32; 4]) -> [f64; 4] {
    let (w, h) = ((b[2] - b[0]) as f64, (b[3] - b[1]) as f64);
    let h_safe = h.max(1e-3);
    [
        (b[0] as f64 + b[2] as f64) / 2.0,
        (b[1] as f64 + b[3] as f64) / 2.0,
        w / h_safe,
        h_safe,
    ]
}

fn diagonal(std: [f64; 4]) -> Mat4 {
    std::array::from_fn(|i| {
        let mut row = [0.0; 4];
        row[i] = std[i] * std[i];
        row
    })
}

impl KalmanBox {
    /// A new object seen at `bbox`, velocity unknown (large initial uncertainty).
    pub fn new(bbox: [f32; 4]) -> Self {
        let z = xyah(bbox);
        let h = z[3];
        let std = [
            2.0 * STD_POSITION * h,
            2.0 * STD_POSITION * h,
            1e-2,
            2.0 * STD_POSITION * h,
            10.0 * STD_VELOCITY * h,
            10.0 * STD_VELOCITY * h,
            1e-5,
            10.0 * STD_VELOCITY * h,
        ];
        let covariance = std::array::from_fn(|i| {
            let mut row = [0.0; 8];
            row[i] = std[i] * std[i];
            row
        });
        let mut mean = [0.0; 8];
        mean[..4].copy_from_slice(&z);
        KalmanBox { mean, covariance }
    }

    /// The box the filter believes in, `[x0, y0, x1, y1]`.
    pub fn bbox(&self) -> [f32; 4] {
        let [cx, cy, a, h] = [self.mean[0], self.mean[1], self.mean[2], self.mean[3]];
        let w = a * h;
        [
            (cx - w / 2.0) as f32,
            (cy - h / 2.0) as f32,
            (cx + w / 2.0) as f32,
            (cy + h / 2.0) as f32,
        ]
    }

    /// One frame later: x += v, and the uncertainty grows.
    pub fn predict(&mut self) {
        let h = self.mean[3];
        let (p, v) = (STD_POSITION * h, STD_VELOCITY * h);
        let q = [p, p, 1e-2, p, v, v, 1e-5, v];
        let (position, velocity) = self.mean.split_at_mut(4);
        add_assign(position, velocity);
        // P = F P Fᵀ + Q with F = [[I, I], [0, I]]: rows then columns i += i + 4.
        let c = &mut self.covariance;
        let (top, bottom) = c.split_at_mut(4);
        for (t, b) in top.iter_mut().zip(bottom.iter()) {
            add_assign(t, b);
        }
        for row in c.iter_mut() {
            let (left, right) = row.split_at_mut(4);
            add_assign(left, right);
        }
        for (i, (row, q)) in c.iter_mut().zip(q).enumerate() {
            row[i] += q * q;
        }
    }

    /// Corrects the belief with a measured box.
    pub fn update(&mut self, bbox: [f32; 4]) {
        let z = xyah(bbox);
        let h = self.mean[3];
        let r = diagonal([STD_POSITION * h, STD_POSITION * h, 1e-1, STD_POSITION * h]);
        // S = H P Hᵀ + R (H picks the first four components).
        let s: Mat4 =
            std::array::from_fn(|i| std::array::from_fn(|j| self.covariance[i][j] + r[i][j]));
        let Some(s_inv) = invert4(&s) else {
            // A degenerate covariance: trust the measurement, keep the velocity.
            self.mean[..4].copy_from_slice(&z);
            return;
        };
        // K = P Hᵀ S⁻¹ (8×4).
        let mut k = [[0.0; 4]; 8];
        for (i, row) in k.iter_mut().enumerate() {
            for (j, kij) in row.iter_mut().enumerate() {
                *kij = (0..4).map(|m| self.covariance[i][m] * s_inv[m][j]).sum();
            }
        }
        let innovation: [f64; 4] = std::array::from_fn(|i| z[i] - self.mean[i]);
        for (i, row) in k.iter().enumerate() {
            self.mean[i] += (0..4).map(|j| row[j] * innovation[j]).sum::<f64>();
        }
        // P -= K H P (= K S Kᵀ).
        let hp: [[f64; 8]; 4] = std::array::from_fn(|m| self.covariance[m]);
        for (c_row, k_row) in self.covariance.iter_mut().zip(&k) {
            for (j, c) in c_row.iter_mut().enumerate() {
                *c -= (0..4).map(|m| k_row[m] * hp[m][j]).sum::<f64>();
            }
        }
    }
}

/// `a += b`, element-wise.
fn add_assign(a: &mut [f64], b: &[f64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// The inverse of a 4×4 matrix by Gauss-Jordan with partial pivoting; `None` when
/// singular.
fn invert4(m: &Mat4) -> Option<Mat4> {
    let mut a = *m;
    let mut inv = diagonal([1.0; 4]);
    for col in 0..4 {
        let pivot = (col..4).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        a[col].iter_mut().for_each(|x| *x /= d);
        inv[col].iter_mut().for_each(|x| *x /= d);
        let (a_col, inv_col) = (a[col], inv[col]);
        for row in (0..4).filter(|&row| row != col) {
            let f = a[row][col];
            for j in 0..4 {
                a[row][j] -= f * a_col[j];
                inv[row][j] -= f * inv_col[j];
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_moving_at_constant_speed_is_predicted_where_it_goes() {
        let at = |t: f32| {
            [
                10.0 + 4.0 * t,
                20.0 + 2.0 * t,
                30.0 + 4.0 * t,
                80.0 + 2.0 * t,
            ]
        };
        let mut k = KalmanBox::new(at(0.0));
        for t in 1..30 {
            k.predict();
            k.update(at(t as f32));
        }
        k.predict();
        let predicted = k.bbox();
        let truth = at(30.0);
        for i in 0..4 {
            assert!(
                (predicted[i] - truth[i]).abs() < 0.5,
                "{predicted:?} vs {truth:?}"
            );
        }
    }

    #[test]
    fn the_first_update_moves_the_box_most_of_the_way_to_the_measurement() {
        let mut k = KalmanBox::new([0.0, 0.0, 10.0, 20.0]);
        k.predict();
        k.update([4.0, 0.0, 14.0, 20.0]);
        let b = k.bbox();
        assert!(b[0] > 2.0 && b[0] < 4.0, "{b:?}");
    }

    #[test]
    fn invert4_inverts() {
        let m = [
            [4.0, 1.0, 0.0, 0.5],
            [1.0, 3.0, 0.2, 0.0],
            [0.0, 0.2, 2.0, 0.1],
            [0.5, 0.0, 0.1, 1.0],
        ];
        let inv = invert4(&m).unwrap();
        for (i, row) in m.iter().enumerate() {
            for j in 0..4 {
                let p: f64 = row.iter().zip(&inv).map(|(a, b)| a * b[j]).sum();
                assert!((p - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(invert4(&[[0.0; 4]; 4]).is_none());
    }
}
