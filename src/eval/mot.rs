//! Multi-object tracking metrics: CLEAR MOT (MOTA, MOTP, switches, fragmentations,
//! mostly tracked/lost) and the identity scores (IDF1, IDP, IDR), computed exactly as
//! py-motmetrics 1.4.0 computes them for boxes at IoU 0.5.
//!
//! Why a re-implementation: `zsq eval --tracks` must score a tracker without Python, with
//! the numbers the field quotes. The per-frame matching therefore follows
//! `MOTAccumulator.update` step by step and the assignment is scipy's, ties included
//! ([`crate::track::assign::assign`]), so even equal-cost constellations count the same
//! switches; committed fixtures (`tests/fixtures/mot/`, made by
//! `tools/fixtures/mot_eval_fixtures.py`) prove agreement to within 1e-6.
//!
//! The inputs are what motmetrics' `apps/eval_motchallenge.py` reads for one sequence:
//! ground truth as MOTChallenge `gt.txt` ([`parse_mot_ground_truth`]) and tracker output
//! as MOTChallenge result rows ([`parse_mot_hypotheses`]) or as the JSON lines the
//! `thermaltrack` element writes ([`parse_track_records`]); both can also be built in
//! memory as [`MotBox`]es.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::EvalError;
use crate::track::assign::assign;
use crate::track::record::FrameRecord;

/// Largest 1 − IoU at which an object and a hypothesis may be matched (IoU ≥ 0.5): the
/// `max_iou=0.5` of `mm.distances.iou_matrix`, inclusive.
const MAX_DISTANCE: f64 = 0.5;

/// One box of one identity on one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotBox {
    pub frame: i64,
    pub id: i64,
    /// `[x, y, width, height]` in 0-based pixels. MOTChallenge files count from 1; their
    /// parsers here subtract 1 from x and y, as motmetrics' loader does.
    pub bbox: [f64; 4],
}

/// The metrics of one sequence, named as `motmetrics.metrics.create().compute` names them.
///
/// Ratios are NaN (JSON `null`) where motmetrics divides by zero: `motp` without any
/// match, everything per object without ground truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MotSummary {
    /// Frames that have a ground-truth or a hypothesis row (frames in neither file are
    /// not seen and not counted).
    pub num_frames: usize,
    /// 1 − (misses + switches + false positives) / objects.
    pub mota: f64,
    /// Mean 1 − IoU of the matches: motmetrics' convention (MOTChallenge prints 1 − this).
    pub motp: f64,
    /// Identity F1: the share of boxes that the best one-to-one mapping of ground-truth
    /// ids to hypothesis ids (over the whole sequence) gets right.
    pub idf1: f64,
    pub idp: f64,
    pub idr: f64,
    /// Matches whose hypothesis differs from the object's previous one (however long ago).
    pub num_switches: usize,
    /// Objects matched on at least 80 % of the frames they appear on.
    pub mostly_tracked: usize,
    /// Objects matched on at least 20 % and less than 80 % of their frames.
    pub partially_tracked: usize,
    /// Objects matched on less than 20 % of their frames.
    pub mostly_lost: usize,
    /// Times a tracked object went untracked and was tracked again later.
    pub num_fragmentations: usize,
    pub num_false_positives: usize,
    pub num_misses: usize,
    /// Ground-truth boxes (object appearances), the denominator of MOTA and recall.
    pub num_objects: usize,
    pub precision: f64,
    pub recall: f64,
}

impl std::fmt::Display for MotSummary {
    /// The summary as `zsq eval --tracks` prints it: ratios to four decimals, the
    /// counts motmetrics' `render_summary` shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let objects = self.mostly_tracked + self.partially_tracked + self.mostly_lost;
        writeln!(f, "MOTA      {:.4}", self.mota)?;
        writeln!(f, "MOTP      {:.4}  (mean 1 - IoU of matches)", self.motp)?;
        writeln!(f, "IDF1      {:.4}", self.idf1)?;
        writeln!(f, "IDP       {:.4}", self.idp)?;
        writeln!(f, "IDR       {:.4}", self.idr)?;
        writeln!(f, "precision {:.4}", self.precision)?;
        writeln!(f, "recall    {:.4}", self.recall)?;
        writeln!(f, "ID switches       {}", self.num_switches)?;
        writeln!(f, "fragmentations    {}", self.num_fragmentations)?;
        writeln!(
            f,
            "mostly tracked    {} / partially {} / mostly lost {} (of {objects} objects)",
            self.mostly_tracked, self.partially_tracked, self.mostly_lost
        )?;
        writeln!(
            f,
            "false positives   {}, misses {}, ground-truth boxes {}, frames {}",
            self.num_false_positives, self.num_misses, self.num_objects, self.num_frames
        )
    }
}

/// Reads a MOTChallenge `gt.txt`: `frame, id, x, y, w, h, flag, class, visibility`,
/// separated by commas or white space.
///
/// Rows whose 7th column (the "consider" flag) is below 1 are dropped, as
/// `mm.io.loadtxt(fmt="mot15-2D", min_confidence=1)` drops them in
/// `eval_motchallenge.py`; class and visibility are not used (motmetrics does not read
/// them either), so distractor classes count as objects unless flagged 0.
pub fn parse_mot_ground_truth(text: &str) -> Result<Vec<MotBox>, EvalError> {
    Ok(parse_rows(text, "ground truth", 7)?
        .into_iter()
        .filter(|(_, flag)| *flag >= 1.0)
        .map(|(b, _)| b)
        .collect())
}

/// Reads MOTChallenge tracker output: `frame, id, x, y, w, h[, confidence, ...]`. Every
/// row counts; columns after the box are not read.
pub fn parse_mot_hypotheses(text: &str) -> Result<Vec<MotBox>, EvalError> {
    Ok(parse_rows(text, "hypotheses", 6)?
        .into_iter()
        .map(|(b, _)| b)
        .collect())
}

/// Reads the tracks of `thermaltrack`'s JSON lines (`json-location`, one
/// [`FrameRecord`] per frame): frame N (from 0) becomes MOT frame N + 1, so that it
/// meets row N + 1 of the recording's `gt.txt`; boxes `[x0, y0, x1, y1]` become
/// `[x0, y0, x1 − x0, y1 − y0]`. Events are not read.
pub fn parse_track_records(text: &str) -> Result<Vec<MotBox>, EvalError> {
    let mut boxes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: FrameRecord = serde_json::from_str(line).map_err(|e| {
            EvalError(format!(
                "tracks, line {}: not a thermaltrack JSON line: {e}",
                n + 1
            ))
        })?;
        let frame = i64::try_from(record.frame)
            .ok()
            .and_then(|f| f.checked_add(1))
            .ok_or_else(|| EvalError(format!("tracks, line {}: frame out of range", n + 1)))?;
        for t in record.tracks {
            let [x0, y0, x1, y1] = t.bbox.map(f64::from);
            boxes.push(MotBox {
                frame,
                id: i64::try_from(t.id).map_err(|_| {
                    EvalError(format!("tracks, line {}: id {} out of range", n + 1, t.id))
                })?,
                bbox: [x0, y0, x1 - x0, y1 - y0],
            });
        }
    }
    Ok(boxes)
}

/// Reads tracker output in either form: `thermaltrack` JSON lines (the first non-blank
/// character is `{`) or MOTChallenge result rows.
pub fn parse_tracks(text: &str) -> Result<Vec<MotBox>, EvalError> {
    if text.trim_start().starts_with('{') {
        parse_track_records(text)
    } else {
        parse_mot_hypotheses(text)
    }
}

/// Scores `hypotheses` against `gt` as py-motmetrics does with
/// `compare_to_groundtruth(gt, hyp, "iou", distth=0.5)` and `metrics.compute`.
///
/// Frames are visited in ascending order, each frame's boxes in input order (the order
/// matters where costs tie). An id may appear at most once per frame in each input.
pub fn evaluate_mot(gt: &[MotBox], hypotheses: &[MotBox]) -> Result<MotSummary, EvalError> {
    let gt = by_frame(gt, "ground truth")?;
    let hypotheses = by_frame(hypotheses, "hypotheses")?;
    let frames: BTreeSet<i64> = gt.keys().chain(hypotheses.keys()).copied().collect();

    let mut acc = Accumulator::default();
    for frame in frames {
        acc.update(
            gt.get(&frame).map_or(&[][..], Vec::as_slice),
            hypotheses.get(&frame).map_or(&[][..], Vec::as_slice),
        );
    }
    Ok(acc.summary())
}

/// Rows of a MOTChallenge file, each with its 7th column (NaN when it is not read).
fn parse_rows(text: &str, what: &str, columns: usize) -> Result<Vec<(MotBox, f64)>, EvalError> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        if fields.is_empty() {
            continue;
        }
        let bad = |why: &str| {
            EvalError(format!(
                "{what}, line {}: {why} (expected frame, id, x, y, w, h{})",
                n + 1,
                if columns > 6 { ", flag, ..." } else { ", ..." }
            ))
        };
        if fields.len() < columns {
            return Err(bad(&format!("{} columns", fields.len())));
        }
        let mut v = [0.0; 7];
        for (slot, field) in v.iter_mut().zip(&fields[..columns]) {
            *slot = field
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(&format!("{field:?} is not a finite number")))?;
        }
        let integer = |x: f64, name: &str| {
            (x.fract() == 0.0 && x.abs() < 2f64.powi(53))
                .then_some(x as i64)
                .ok_or_else(|| bad(&format!("the {name} {x} is not an integer")))
        };
        let mot_box = MotBox {
            frame: integer(v[0], "frame")?,
            id: integer(v[1], "id")?,
            bbox: [v[2] - 1.0, v[3] - 1.0, v[4], v[5]],
        };
        rows.push((mot_box, if columns > 6 { v[6] } else { f64::NAN }));
    }
    Ok(rows)
}

/// Boxes grouped by frame, in input order within a frame.
fn by_frame<'a>(
    boxes: &'a [MotBox],
    what: &str,
) -> Result<BTreeMap<i64, Vec<&'a MotBox>>, EvalError> {
    let mut seen = HashSet::new();
    let mut frames: BTreeMap<i64, Vec<&MotBox>> = BTreeMap::new();
    for b in boxes {
        if !seen.insert((b.frame, b.id)) {
            return Err(EvalError(format!(
                "{what}: id {} appears twice on frame {}; a MOT file has one row per id and frame",
                b.id, b.frame
            )));
        }
        frames.entry(b.frame).or_default().push(b);
    }
    Ok(frames)
}

/// 1 − IoU of two `[x, y, w, h]` boxes with the operations of motmetrics'
/// `distances.boxiou` (corners first, sizes from the corners), so that a distance of
/// exactly 0.5 compares the same way.
fn iou_distance(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let (a_max, b_max) = ([a[0] + a[2], a[1] + a[3]], [b[0] + b[2], b[1] + b[3]]);
    let side = |k: usize| (a_max[k].min(b_max[k]) - a[k].max(b[k])).max(0.0);
    let inter = side(0) * side(1);
    if inter == 0.0 {
        return 1.0;
    }
    let area = |lo: &[f64; 4], hi: [f64; 2]| (hi[0] - lo[0]).max(0.0) * (hi[1] - lo[1]).max(0.0);
    1.0 - inter / (area(a, a_max) + area(b, b_max) - inter)
}

/// What `MOTAccumulator` keeps across frames, reduced to what the metrics read.
#[derive(Default)]
struct Accumulator {
    frames: usize,
    /// The hypothesis each object was last matched to (`MOTAccumulator.m`); never
    /// forgotten, so a changed hypothesis is a switch however long the object was away.
    last_match: HashMap<i64, i64>,
    objects: BTreeMap<i64, ObjectRecord>,
    hypothesis_boxes: usize,
    /// Per (object, hypothesis): frames on which the two were within [`MAX_DISTANCE`],
    /// matched or not (the identity scores' true positives).
    overlaps: HashMap<(i64, i64), u64>,
    matches: usize,
    switches: usize,
    false_positives: usize,
    misses: usize,
    distance_sum: f64,
}

/// One ground-truth identity's history: frames seen, frames matched, interruptions.
#[derive(Default)]
struct ObjectRecord {
    frames: usize,
    tracked: usize,
    fragmentations: usize,
    /// Missed since it was last tracked; becomes a fragmentation if tracked again.
    interrupted: bool,
}

impl ObjectRecord {
    fn record(&mut self, tracked: bool) {
        self.frames += 1;
        if tracked {
            if self.interrupted {
                self.fragmentations += 1;
                self.interrupted = false;
            }
            self.tracked += 1;
        } else if self.tracked > 0 {
            self.interrupted = true;
        }
    }
}

impl Accumulator {
    /// One frame, as `MOTAccumulator.update`: (1) an object keeps last frame's hypothesis
    /// if it is still within the distance; (2) the rest are paired by minimum total
    /// distance, a pair whose hypothesis differs from the object's last one being a
    /// switch; (3) objects left are misses, (4) hypotheses left false positives.
    fn update(&mut self, objects: &[&MotBox], hypotheses: &[&MotBox]) {
        self.frames += 1;
        self.hypothesis_boxes += hypotheses.len();
        let distance: Vec<Vec<f64>> = objects
            .iter()
            .map(|o| {
                hypotheses
                    .iter()
                    .map(|h| iou_distance(&o.bbox, &h.bbox))
                    .collect()
            })
            .collect();
        for (o, row) in objects.iter().zip(&distance) {
            for (h, &d) in hypotheses.iter().zip(row) {
                if d <= MAX_DISTANCE {
                    *self.overlaps.entry((o.id, h.id)).or_default() += 1;
                }
            }
        }

        let mut object_matched = vec![false; objects.len()];
        let mut hypothesis_matched = vec![false; hypotheses.len()];
        for (i, o) in objects.iter().enumerate() {
            let Some(&previous) = self.last_match.get(&o.id) else {
                continue;
            };
            let Some(j) = (0..hypotheses.len())
                .find(|&j| !hypothesis_matched[j] && hypotheses[j].id == previous)
            else {
                continue;
            };
            if distance[i][j] <= MAX_DISTANCE {
                object_matched[i] = true;
                hypothesis_matched[j] = true;
                self.matches += 1;
                self.distance_sum += distance[i][j];
            }
        }

        let open: Vec<Vec<f64>> = distance
            .iter()
            .zip(&object_matched)
            .map(|(row, &done_row)| {
                row.iter()
                    .zip(&hypothesis_matched)
                    .map(|(&d, &done)| if done_row || done { f64::NAN } else { d })
                    .collect()
            })
            .collect();
        for (i, j) in assign(&open, MAX_DISTANCE) {
            let (o, h) = (objects[i].id, hypotheses[j].id);
            match self.last_match.insert(o, h) {
                Some(previous) if previous != h => self.switches += 1,
                _ => self.matches += 1,
            }
            object_matched[i] = true;
            hypothesis_matched[j] = true;
            self.distance_sum += distance[i][j];
        }

        for (o, &tracked) in objects.iter().zip(&object_matched) {
            self.objects.entry(o.id).or_default().record(tracked);
        }
        self.misses += object_matched.iter().filter(|&&m| !m).count();
        self.false_positives += hypothesis_matched.iter().filter(|&&m| !m).count();
    }

    fn summary(&self) -> MotSummary {
        let objects = self.objects.values().map(|o| o.frames).sum::<usize>() as f64;
        let predictions = self.hypothesis_boxes as f64;
        let detections = (self.matches + self.switches) as f64;
        let id_tp = self.identity_true_positives() as f64;
        let errors = (self.misses + self.switches + self.false_positives) as f64;
        let ratio = |o: &ObjectRecord| o.tracked as f64 / o.frames as f64;
        let count =
            |keep: &dyn Fn(f64) -> bool| self.objects.values().filter(|o| keep(ratio(o))).count();
        MotSummary {
            num_frames: self.frames,
            mota: 1.0 - errors / objects,
            motp: self.distance_sum / detections,
            idf1: 2.0 * id_tp / (objects + predictions),
            idp: id_tp / predictions,
            idr: id_tp / objects,
            num_switches: self.switches,
            mostly_tracked: count(&|r| r >= 0.8),
            partially_tracked: count(&|r| (0.2..0.8).contains(&r)),
            mostly_lost: count(&|r| r < 0.2),
            num_fragmentations: self.objects.values().map(|o| o.fragmentations).sum(),
            num_false_positives: self.false_positives,
            num_misses: self.misses,
            num_objects: objects as usize,
            precision: detections / (detections + self.false_positives as f64),
            recall: detections / objects,
        }
    }

    /// The largest number of boxes a one-to-one mapping of object ids to hypothesis ids
    /// explains (IDTP). motmetrics solves the same optimum on an (objects + hypotheses)²
    /// matrix with a dummy partner per id; ids that never overlap anything only add
    /// dummy pairs there, so the mapping is solved here on the overlapping ids alone.
    fn identity_true_positives(&self) -> u64 {
        let index = |ids: BTreeSet<i64>| -> HashMap<i64, usize> {
            ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect()
        };
        let rows = index(self.overlaps.keys().map(|k| k.0).collect());
        let cols = index(self.overlaps.keys().map(|k| k.1).collect());
        let mut cost = vec![vec![0.0; cols.len()]; rows.len()];
        for (&(o, h), &n) in &self.overlaps {
            cost[rows[&o]][cols[&h]] = -(n as f64);
        }
        assign(&cost, f64::INFINITY)
            .into_iter()
            .map(|(r, c)| (-cost[r][c]) as u64)
            .sum()
    }
}
