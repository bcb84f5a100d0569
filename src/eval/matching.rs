//! Per image and category: rank detections, match them to ground truth at each IoU
//! threshold, and classify each as true positive, false positive or ignored, following
//! pycocotools' `COCOeval.evaluateImg` for each of its four area ranges and 100
//! detections (the AR at 1 and 10 detections reuse these matches, as pycocotools does).

use super::coco::{Detection, GtAnnotation};
use super::iou::box_iou;
use super::iou_thresholds;

/// pycocotools' `maxDets[-1]`: detections kept per image and category.
pub(crate) const MAX_DETECTIONS: usize = 100;

/// pycocotools' area ranges, in its order: all `[0, 1e5 ** 2]`, small `[0, 32 ** 2]`,
/// medium `[32 ** 2, 96 ** 2]`, large `[96 ** 2, 1e5 ** 2]`. Both bounds are inclusive,
/// so an area of exactly 32² is small and medium.
pub(crate) const AREA_RANGES: [(f64, f64); 4] =
    [(0.0, 1e10), (0.0, 1024.0), (1024.0, 9216.0), (9216.0, 1e10)];
/// Index of area range "all" in [`AREA_RANGES`].
pub(crate) const ALL: usize = 0;

/// What one detection is at one IoU threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    TruePositive,
    FalsePositive,
    /// Matched to an ignored (crowd or out-of-range) box, or unmatched and itself out of
    /// the area range: left out of precision and recall.
    Ignored,
}

/// The matching result of one image and category in one area range.
#[derive(Debug, Clone)]
pub(crate) struct ImageMatches {
    /// Scores of the kept detections, best first.
    pub scores: Vec<f64>,
    /// Per kept detection (same order as `scores`), its outcome at each IoU threshold.
    pub outcomes: Vec<[Outcome; 10]>,
    /// Ground-truth boxes that count for recall (not ignored).
    pub relevant_gt: usize,
}

fn out_of(range: (f64, f64), area: f64) -> bool {
    area < range.0 || area > range.1
}

/// Matches the detections of one image and category to its ground truth, once per area
/// range of [`AREA_RANGES`] (same order). The ranking and the IoUs are computed once.
pub(crate) fn match_image(gts: &[&GtAnnotation], dts: &[&Detection]) -> [ImageMatches; 4] {
    // Detections: best score first, ties in input order (numpy mergesort), top 100.
    let mut dts: Vec<&Detection> = dts.to_vec();
    dts.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    dts.truncate(MAX_DETECTIONS);
    let ious: Vec<Vec<f64>> = dts
        .iter()
        .map(|d| {
            gts.iter()
                .map(|g| box_iou(&d.bbox, &g.bbox, g.iscrowd != 0))
                .collect()
        })
        .collect();
    AREA_RANGES.map(|range| match_in_range(gts, &dts, &ious, range))
}

/// `evaluateImg` for one area range: ground truth outside it is ignored, and so are the
/// detections outside it that match nothing.
fn match_in_range(
    gts: &[&GtAnnotation],
    dts: &[&Detection],
    ious: &[Vec<f64>],
    range: (f64, f64),
) -> ImageMatches {
    // Ground truth: ignored boxes last (stable), so a match to a real box stops the search
    // before ignore regions are tried. Entries are (index into `gts`, ignored).
    let mut order: Vec<(usize, bool)> = gts
        .iter()
        .enumerate()
        .map(|(i, g)| (i, g.iscrowd != 0 || out_of(range, g.area())))
        .collect();
    order.sort_by_key(|(_, ignored)| *ignored);

    let mut outcomes = vec![[Outcome::FalsePositive; 10]; dts.len()];
    for (t, threshold) in iou_thresholds().into_iter().enumerate() {
        let mut gt_taken = vec![false; order.len()];
        for (di, det) in dts.iter().enumerate() {
            let mut best = threshold.min(1.0 - 1e-10);
            let mut matched: Option<usize> = None;
            for (oi, &(gi, ignored)) in order.iter().enumerate() {
                if gt_taken[oi] && gts[gi].iscrowd == 0 {
                    continue;
                }
                if let Some(m) = matched
                    && !order[m].1
                    && ignored
                {
                    break;
                }
                if ious[di][gi] < best {
                    continue;
                }
                best = ious[di][gi];
                matched = Some(oi);
            }
            // pycocotools records the matched annotation's id and later tests it for
            // truth, so a match to id 0 behaves as no match.
            let (is_match, on_ignored) = match matched {
                Some(m) => {
                    gt_taken[m] = true;
                    (gts[order[m].0].id != 0, order[m].1)
                }
                None => (false, false),
            };
            // A detection's area is its box's (pycocotools' `loadRes` for boxes).
            let det_area = det.bbox[2] * det.bbox[3];
            let ignored = on_ignored || (!is_match && out_of(range, det_area));
            outcomes[di][t] = match (ignored, is_match) {
                (true, _) => Outcome::Ignored,
                (false, true) => Outcome::TruePositive,
                (false, false) => Outcome::FalsePositive,
            };
        }
    }

    ImageMatches {
        scores: dts.iter().map(|d| d.score).collect(),
        outcomes,
        relevant_gt: order.iter().filter(|(_, ignored)| !ignored).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(id: i64, bbox: [f64; 4], iscrowd: u8) -> GtAnnotation {
        GtAnnotation {
            id,
            image_id: 1,
            category_id: 1,
            bbox,
            area: None,
            iscrowd,
            temperature_c: None,
        }
    }

    fn det(bbox: [f64; 4], score: f64) -> Detection {
        Detection {
            image_id: 1,
            category_id: 1,
            bbox,
            score,
        }
    }

    #[test]
    fn duplicate_detection_is_a_false_positive() {
        let g = gt(1, [0.0, 0.0, 10.0, 10.0], 0);
        let d1 = det([0.0, 0.0, 10.0, 10.0], 0.9);
        let d2 = det([0.0, 0.0, 10.0, 10.0], 0.8);
        let m = &match_image(&[&g], &[&d2, &d1])[ALL];
        assert_eq!(m.scores, vec![0.9, 0.8]);
        assert!(m.outcomes[0].iter().all(|o| *o == Outcome::TruePositive));
        assert!(m.outcomes[1].iter().all(|o| *o == Outcome::FalsePositive));
        assert_eq!(m.relevant_gt, 1);
    }

    #[test]
    fn higher_score_takes_the_box_even_with_lower_iou() {
        let g = gt(1, [0.0, 0.0, 10.0, 10.0], 0);
        let loose = det([1.0, 0.0, 10.0, 10.0], 0.9); // IoU 0.818
        let tight = det([0.0, 0.0, 10.0, 10.0], 0.5); // IoU 1
        let m = &match_image(&[&g], &[&tight, &loose])[ALL];
        // At IoU .50 the loose, higher-scored box matches; at .85+ only the tight one can.
        assert_eq!(m.outcomes[0][0], Outcome::TruePositive);
        assert_eq!(m.outcomes[1][0], Outcome::FalsePositive);
        assert_eq!(m.outcomes[0][9], Outcome::FalsePositive);
        assert_eq!(m.outcomes[1][9], Outcome::TruePositive);
    }

    #[test]
    fn crowd_region_absorbs_many_detections() {
        let crowd = gt(1, [0.0, 0.0, 100.0, 100.0], 1);
        let d: Vec<Detection> = (0..5)
            .map(|i| det([i as f64 * 10.0, 0.0, 8.0, 8.0], 0.5))
            .collect();
        let refs: Vec<&Detection> = d.iter().collect();
        let m = &match_image(&[&crowd], &refs)[ALL];
        assert_eq!(m.relevant_gt, 0);
        assert!(m.outcomes.iter().flatten().all(|o| *o == Outcome::Ignored));
    }

    #[test]
    fn real_box_is_preferred_over_crowd() {
        let crowd = gt(1, [0.0, 0.0, 100.0, 100.0], 1);
        let real = gt(2, [0.0, 0.0, 10.0, 10.0], 0);
        let d = det([0.0, 0.0, 10.0, 10.0], 0.7);
        let m = &match_image(&[&crowd, &real], &[&d])[ALL];
        assert_eq!(m.outcomes[0][0], Outcome::TruePositive);
        assert_eq!(m.relevant_gt, 1);
    }

    #[test]
    fn only_the_best_hundred_detections_count() {
        let d: Vec<Detection> = (0..150)
            .map(|i| det([0.0, 0.0, 1.0, 1.0], i as f64 / 150.0))
            .collect();
        let refs: Vec<&Detection> = d.iter().collect();
        let m = &match_image(&[], &refs)[ALL];
        assert_eq!(m.scores.len(), 100);
        assert_eq!(m.scores[0], 149.0 / 150.0);
        assert_eq!(m.scores[99], 50.0 / 150.0);
    }

    #[test]
    fn ground_truth_id_zero_never_matches() {
        let g = gt(0, [0.0, 0.0, 10.0, 10.0], 0);
        let d = det([0.0, 0.0, 10.0, 10.0], 0.9);
        let m = &match_image(&[&g], &[&d])[ALL];
        assert_eq!(m.outcomes[0][0], Outcome::FalsePositive);
    }

    #[test]
    fn an_area_on_a_bound_is_in_both_ranges_and_ignored_outside_them() {
        let g = gt(1, [0.0, 0.0, 32.0, 32.0], 0);
        let d = det([0.0, 0.0, 32.0, 32.0], 0.9);
        let m = match_image(&[&g], &[&d]);
        let relevant: Vec<usize> = m.iter().map(|r| r.relevant_gt).collect();
        assert_eq!(relevant, [1, 1, 1, 0]);
        assert_eq!(m[2].outcomes[0][0], Outcome::TruePositive);
        // large: the box is ignored there, and so is the detection matched to it
        assert_eq!(m[3].outcomes[0][0], Outcome::Ignored);
        // an unmatched detection outside the range is ignored, inside it is wrong
        let far = det([100.0, 100.0, 10.0, 10.0], 0.5);
        let m = match_image(&[&g], &[&far]);
        assert_eq!(m[1].outcomes[0][0], Outcome::FalsePositive);
        assert_eq!(m[2].outcomes[0][0], Outcome::Ignored);
    }
}
