//! COCO detection metrics, computed exactly as pycocotools' `COCOeval` does for bounding
//! boxes (mAP50-95 over IoU .50:.05:.95, 101-point interpolated precision, area range
//! "all", at most 100 detections per image and category).
//!
//! Why a re-implementation: the elements and `zsq eval` must report accuracy without
//! Python, and the numbers must be the ones the field quotes. The algorithm therefore
//! follows pycocotools step by step, quirks included (see [`evaluate`]); committed
//! fixtures (`tests/fixtures/eval/`) prove agreement to within 0.001.
//!
//! The ground truth is a COCO dataset ([`CocoGt`]), detections are COCO results
//! ([`Detection`]); both can be read from JSON or built in memory, so an element can
//! collect detections frame by frame and evaluate at end of stream.

mod accumulate;
mod coco;
mod detector;
mod iou;
mod matching;
mod mot;
mod report;
mod stream;

use std::collections::{BTreeSet, HashMap};

pub use coco::{
    Category, CocoGt, Detection, GtAnnotation, ImageInfo, load_detections, parse_detections,
};
pub use detector::{
    PreparedImages, detect_dataset, detect_prepared, eval_config, parse_frame_records,
    read_detections,
};
pub use iou::box_iou;
pub use mot::{
    MotBox, MotSummary, evaluate_mot, parse_mot_ground_truth, parse_mot_hypotheses,
    parse_track_records, parse_tracks,
};
pub use report::{ClassAp, EvalResult};
pub use stream::{StreamEval, StreamReport};

use accumulate::precision_curve;
use matching::{ImageMatches, match_image};

/// Errors of evaluation: unreadable input, or detections that do not fit the ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub String);

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}

/// IoU thresholds .50:.05:.95, computed as `numpy.linspace` computes them (`i * step +
/// start`, last = stop) so that comparisons at a threshold tie the way pycocotools ties.
pub(crate) fn iou_thresholds() -> [f64; 10] {
    let step = (0.95_f64 - 0.5) / 9.0;
    let mut t = [0.0; 10];
    for (i, v) in t.iter_mut().enumerate() {
        *v = i as f64 * step + 0.5;
    }
    t[9] = 0.95;
    t
}

/// Recall thresholds 0:.01:1 (101 points), as `numpy.linspace(0, 1, 101)`.
pub(crate) fn recall_thresholds() -> [f64; 101] {
    let step = 1.0_f64 / 100.0;
    let mut r = [0.0; 101];
    for (i, v) in r.iter_mut().enumerate() {
        *v = i as f64 * step;
    }
    r[100] = 1.0;
    r
}

/// Evaluates `detections` against `gt` like pycocotools `COCOeval(gt, dt, "bbox")` followed
/// by `evaluate(); accumulate(); summarize()`, returning `stats[0]` (mAP50-95), `stats[1]`
/// (mAP50) and the same two numbers per category.
///
/// Behaviour kept from pycocotools, because numbers must be comparable:
/// - every image and category of `gt` is evaluated; detections of a category that `gt`
///   does not list are ignored; detections on an image that `gt` does not list are an error
///   (pycocotools asserts);
/// - a crowd box (`iscrowd` = 1) is an ignore region: IoU with it is intersection over the
///   detection's area, it may absorb any number of detections, which then count neither
///   as true nor as false positives;
/// - per image and category, detections are ranked by score (ties keep input order) and
///   only the best 100 are kept; matching is greedy in that order, each detection taking
///   the unmatched ground truth box of highest IoU at or above the threshold;
/// - a detection matched to a ground-truth annotation whose `id` is 0 counts as unmatched
///   (pycocotools stores the matched id and tests it for truth); write ids from 1;
/// - a category without any ground truth has no AP (`None`, -1 in pycocotools) and is left
///   out of the means.
pub fn evaluate(gt: &CocoGt, detections: &[Detection]) -> Result<EvalResult, EvalError> {
    let image_ids: BTreeSet<i64> = gt.images.iter().map(|i| i.id).collect();
    let categories = gt.sorted_categories();
    let category_ids: BTreeSet<i64> = categories.iter().map(|c| c.id).collect();

    let mut unknown: Vec<i64> = detections
        .iter()
        .map(|d| d.image_id)
        .filter(|id| !image_ids.contains(id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        unknown.truncate(5);
        return Err(EvalError(format!(
            "detections refer to image ids that the ground truth does not have (first: {unknown:?})"
        )));
    }
    if let Some(d) = detections
        .iter()
        .find(|d| !d.score.is_finite() || d.bbox.iter().any(|v| !v.is_finite()))
    {
        return Err(EvalError(format!(
            "detection on image {} has a non-finite score or box: score {}, bbox {:?}",
            d.image_id, d.score, d.bbox
        )));
    }

    let mut gt_by_key: HashMap<(i64, i64), Vec<&GtAnnotation>> = HashMap::new();
    for a in &gt.annotations {
        if image_ids.contains(&a.image_id) && category_ids.contains(&a.category_id) {
            gt_by_key
                .entry((a.image_id, a.category_id))
                .or_default()
                .push(a);
        }
    }
    let mut dt_by_key: HashMap<(i64, i64), Vec<&Detection>> = HashMap::new();
    for d in detections {
        if category_ids.contains(&d.category_id) {
            dt_by_key
                .entry((d.image_id, d.category_id))
                .or_default()
                .push(d);
        }
    }

    let per_class = categories
        .iter()
        .map(|cat| {
            let images: Vec<ImageMatches> = image_ids
                .iter()
                .filter_map(|&img| {
                    let g = gt_by_key.get(&(img, cat.id)).map_or(&[][..], Vec::as_slice);
                    let d = dt_by_key.get(&(img, cat.id)).map_or(&[][..], Vec::as_slice);
                    (!g.is_empty() || !d.is_empty()).then(|| match_image(g, d))
                })
                .collect();
            let curves = precision_curve(&images);
            ClassAp {
                category_id: cat.id,
                name: cat.name.clone(),
                ap: curves.as_ref().map(|c| mean(c.iter().flatten().copied())),
                ap50: curves.as_ref().map(|c| mean(c[0].iter().copied())),
            }
        })
        .collect::<Vec<_>>();

    Ok(EvalResult::from_classes(per_class))
}

/// Arithmetic mean; `NaN` for an empty input is impossible here (callers pass fixed-size
/// curves), so 0 is returned for it rather than a panic.
fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}
