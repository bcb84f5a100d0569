//! COCO detection metrics, computed exactly as pycocotools' `COCOeval` does for bounding
//! boxes: the twelve numbers of its summary (AP over IoU .50:.05:.95, at .50 and .75,
//! per area range; AR at 1, 10 and 100 detections and per area range) with 101-point
//! interpolated precision, and AP / AP50 per category.
//!
//! Why a re-implementation: the elements and `zsq eval` must report accuracy without
//! Python, and the numbers must be the ones the field quotes. The algorithm therefore
//! follows pycocotools step by step, quirks included (see [`evaluate`]); committed
//! fixtures (`tests/fixtures/eval/`) prove agreement on every number, to the last bit.
//!
//! The ground truth is a COCO dataset ([`CocoGt`]), detections are COCO results
//! ([`Detection`]); both can be read from JSON or built in memory, so an element can
//! collect detections frame by frame and evaluate at end of stream.

mod accumulate;
mod categories;
mod coco;
mod detector;
mod iou;
mod matching;
mod mot;
mod operating;
mod report;
mod stream;

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

pub use categories::CategoryMap;
pub use coco::{
    Category, CocoGt, Detection, GtAnnotation, GtTemperature, ImageInfo, load_detections,
    parse_detections,
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
pub use operating::{OperatingPoint, operating_point};
pub use report::{ClassAp, EvalResult, SUMMARY, SummaryLine};
pub use stream::{StreamEval, StreamReport};

use accumulate::{Accumulated, accumulate};
use matching::{ALL, ImageMatches, MAX_DETECTIONS, match_image};

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
/// by `evaluate(); accumulate(); summarize()`, returning its twelve `stats` (mAP50-95,
/// mAP50, mAP75, mAP small / medium / large, AR@1, AR@10, AR@100, AR small / medium /
/// large) and AP / AP50 per category.
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
///   out of the means; so is a category in an area range where it has no ground truth;
/// - area ranges test the annotation's `area` field (the box area only when it is
///   missing) and a detection's box area, bounds included; ground truth outside the range
///   is ignored like a crowd, and so are detections outside it that match nothing;
/// - AR@1 and AR@10 keep the best 1 or 10 of the 100 matched detections per image (no
///   rematching); recall is the recall after the last detection, averaged over IoU
///   thresholds and categories with ground truth.
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

    let classes: Vec<ClassCurves> = categories
        .iter()
        .map(|cat| {
            let images: Vec<[ImageMatches; 4]> = image_ids
                .iter()
                .filter_map(|&img| {
                    let g = gt_by_key.get(&(img, cat.id)).map_or(&[][..], Vec::as_slice);
                    let d = dt_by_key.get(&(img, cat.id)).map_or(&[][..], Vec::as_slice);
                    (!g.is_empty() || !d.is_empty()).then(|| match_image(g, d))
                })
                .collect();
            ClassCurves::new(&images)
        })
        .collect();

    let per_class = categories
        .iter()
        .zip(&classes)
        .map(|(cat, c)| ClassAp {
            category_id: cat.id,
            name: cat.name.clone(),
            ap: precision_mean(&[c.areas[ALL].as_ref()], 0..10),
            ap50: precision_mean(&[c.areas[ALL].as_ref()], 0..1),
        })
        .collect();
    let area = |r: usize| -> Vec<Option<&Accumulated>> {
        classes.iter().map(|c| c.areas[r].as_ref()).collect()
    };
    let (all, [small, medium, large]) = (area(ALL), [1, 2, 3].map(area));
    let ar_at = |f: fn(&ClassCurves) -> &Option<Accumulated>| {
        recall_mean(&classes.iter().map(|c| f(c).as_ref()).collect::<Vec<_>>())
    };
    let summary = [
        precision_mean(&all, 0..10),
        precision_mean(&all, 0..1),
        precision_mean(&all, IOU_75..IOU_75 + 1),
        precision_mean(&small, 0..10),
        precision_mean(&medium, 0..10),
        precision_mean(&large, 0..10),
        ar_at(|c| &c.ar1),
        ar_at(|c| &c.ar10),
        recall_mean(&all),
        recall_mean(&small),
        recall_mean(&medium),
        recall_mean(&large),
    ];
    Ok(EvalResult::from_summary(summary, per_class))
}

/// Index of IoU .75 in [`iou_thresholds`].
const IOU_75: usize = 5;

/// What the summary reads of one category: its accumulation per area range with 100
/// detections, and in range "all" with 1 and 10.
struct ClassCurves {
    areas: [Option<Accumulated>; 4],
    ar1: Option<Accumulated>,
    ar10: Option<Accumulated>,
}

impl ClassCurves {
    fn new(images: &[[ImageMatches; 4]]) -> Self {
        let in_range = |r: usize| -> Vec<&ImageMatches> { images.iter().map(|m| &m[r]).collect() };
        let all = in_range(ALL);
        ClassCurves {
            areas: [0, 1, 2, 3].map(|r| accumulate(&in_range(r), MAX_DETECTIONS)),
            ar1: accumulate(&all, 1),
            ar10: accumulate(&all, 10),
        }
    }
}

/// Mean precision of the categories that have ground truth over IoU thresholds
/// `thresholds`, in the order numpy flattens pycocotools' `precision[t, r, k]`; `None`
/// (pycocotools: -1) when no category has any.
fn precision_mean(classes: &[Option<&Accumulated>], thresholds: Range<usize>) -> Option<f64> {
    let present: Vec<&Accumulated> = classes.iter().flatten().copied().collect();
    let mut values = Vec::with_capacity(thresholds.len() * 101 * present.len());
    for t in thresholds {
        for r in 0..101 {
            values.extend(present.iter().map(|a| a.precision[t][r]));
        }
    }
    numpy_mean(&values)
}

/// Mean recall of the categories that have ground truth, in the order of pycocotools'
/// `recall[t, k]`.
fn recall_mean(classes: &[Option<&Accumulated>]) -> Option<f64> {
    let present: Vec<&Accumulated> = classes.iter().flatten().copied().collect();
    let values: Vec<f64> = (0..10)
        .flat_map(|t| present.iter().map(move |a| a.recall[t]))
        .collect();
    numpy_mean(&values)
}

/// `numpy.mean` to the last bit: numpy's pairwise summation in the same order, divided
/// by the count. A plain sum differs in the last digits (measured 1e-14), which is enough
/// to flip the third decimal pycocotools prints when a value sits on a rounding boundary
/// (0.7625 prints 0.762 or 0.763). `None` for no values (pycocotools' -1).
fn numpy_mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| pairwise_sum(values) / values.len() as f64)
}

/// numpy's `pairwise_sum` for float64 (`add.reduce` of a contiguous array): blocks of
/// at most 128 values summed in eight interleaved accumulators, larger arrays split in
/// two at a multiple of eight.
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, v| s + v)
    } else if n <= 128 {
        let mut r: [f64; 8] = std::array::from_fn(|j| a[j]);
        let whole = n - n % 8;
        for block in a[8..whole].chunks_exact(8) {
            for (acc, v) in r.iter_mut().zip(block) {
                *acc += v;
            }
        }
        let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        a[whole..].iter().fold(res, |s, v| s + v)
    } else {
        let half = n / 2;
        let half = half - half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}
