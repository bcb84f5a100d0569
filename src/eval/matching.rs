//! Per image and category: rank detections, match them to ground truth at each IoU
//! threshold, and classify each as true positive, false positive or ignored, following
//! pycocotools' `COCOeval.evaluateImg` for area range "all" and 100 detections.

use super::coco::{Detection, GtAnnotation};
use super::iou::box_iou;
use super::iou_thresholds;

/// pycocotools' `maxDets[-1]`: detections kept per image and category.
pub(crate) const MAX_DETECTIONS: usize = 100;
/// Area range "all" (`[0, 1e5 ** 2]`).
const AREA_RANGE: (f64, f64) = (0.0, 1e10);

/// What one detection is at one IoU threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    TruePositive,
    FalsePositive,
    /// Matched to an ignored (crowd or out-of-range) box, or unmatched and itself out of
    /// the area range: left out of precision and recall.
    Ignored,
}

/// The matching result of one image and category.
#[derive(Debug, Clone)]
pub(crate) struct ImageMatches {
    /// Scores of the kept detections, best first.
    pub scores: Vec<f64>,
    /// Per kept detection (same order as `scores`), its outcome at each IoU threshold.
    pub outcomes: Vec<[Outcome; 10]>,
    /// Ground-truth boxes that count for recall (not ignored).
    pub relevant_gt: usize,
}

fn out_of_area_range(area: f64) -> bool {
    area < AREA_RANGE.0 || area > AREA_RANGE.1
}

/// Matches the detections of one image and category to its ground truth.
pub(crate) fn match_image(gts: &[&GtAnnotation], dts: &[&Detection]) -> ImageMatches {
    // Ground truth: ignored boxes last (stable), so a match to a real box stops the search
    // before ignore regions are tried.
    let mut gts: Vec<(&GtAnnotation, bool)> = gts
        .iter()
        .map(|g| (*g, g.iscrowd != 0 || out_of_area_range(g.area())))
        .collect();
    gts.sort_by_key(|(_, ignored)| *ignored);
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
                .map(|(g, _)| box_iou(&d.bbox, &g.bbox, g.iscrowd != 0))
                .collect()
        })
        .collect();

    let mut outcomes = vec![[Outcome::FalsePositive; 10]; dts.len()];
    for (t, threshold) in iou_thresholds().into_iter().enumerate() {
        let mut gt_taken = vec![false; gts.len()];
        for (di, det) in dts.iter().enumerate() {
            let mut best = threshold.min(1.0 - 1e-10);
            let mut matched: Option<usize> = None;
            for (gi, (g, ignored)) in gts.iter().enumerate() {
                if gt_taken[gi] && g.iscrowd == 0 {
                    continue;
                }
                if let Some(m) = matched
                    && !gts[m].1
                    && *ignored
                {
                    break;
                }
                if ious[di][gi] < best {
                    continue;
                }
                best = ious[di][gi];
                matched = Some(gi);
            }
            // pycocotools records the matched annotation's id and later tests it for
            // truth, so a match to id 0 behaves as no match.
            let (is_match, on_ignored) = match matched {
                Some(m) => {
                    gt_taken[m] = true;
                    (gts[m].0.id != 0, gts[m].1)
                }
                None => (false, false),
            };
            let det_area = det.bbox[2] * det.bbox[3];
            let ignored = on_ignored || (!is_match && out_of_area_range(det_area));
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
        relevant_gt: gts.iter().filter(|(_, ignored)| !ignored).count(),
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
        let m = match_image(&[&g], &[&d2, &d1]);
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
        let m = match_image(&[&g], &[&tight, &loose]);
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
        let m = match_image(&[&crowd], &refs);
        assert_eq!(m.relevant_gt, 0);
        assert!(m.outcomes.iter().flatten().all(|o| *o == Outcome::Ignored));
    }

    #[test]
    fn real_box_is_preferred_over_crowd() {
        let crowd = gt(1, [0.0, 0.0, 100.0, 100.0], 1);
        let real = gt(2, [0.0, 0.0, 10.0, 10.0], 0);
        let d = det([0.0, 0.0, 10.0, 10.0], 0.7);
        let m = match_image(&[&crowd, &real], &[&d]);
        assert_eq!(m.outcomes[0][0], Outcome::TruePositive);
        assert_eq!(m.relevant_gt, 1);
    }

    #[test]
    fn only_the_best_hundred_detections_count() {
        let d: Vec<Detection> = (0..150)
            .map(|i| det([0.0, 0.0, 1.0, 1.0], i as f64 / 150.0))
            .collect();
        let refs: Vec<&Detection> = d.iter().collect();
        let m = match_image(&[], &refs);
        assert_eq!(m.scores.len(), 100);
        assert_eq!(m.scores[0], 149.0 / 150.0);
        assert_eq!(m.scores[99], 50.0 / 150.0);
    }

    #[test]
    fn ground_truth_id_zero_never_matches() {
        let g = gt(0, [0.0, 0.0, 10.0, 10.0], 0);
        let d = det([0.0, 0.0, 10.0, 10.0], 0.9);
        let m = match_image(&[&g], &[&d]);
        assert_eq!(m.outcomes[0][0], Outcome::FalsePositive);
    }
}
