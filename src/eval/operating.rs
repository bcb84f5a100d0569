//! A detector's operating point: precision and recall of the detections a deployment
//! keeps (score at or above its confidence threshold), at IoU 0.5.
//!
//! Why next to mAP: mAP integrates over every threshold, but a camera runs at one, and
//! a filter that drops false alarms (the temperature gate) shows there first: fewer
//! false positives at the same true positives. Matching is pycocotools' (the same
//! greedy matching as [`super::evaluate`], area range "all", crowds ignored).

use std::collections::HashMap;

use serde::Serialize;

use super::coco::{CocoGt, Detection};
use super::matching::{ALL, Outcome, match_image};

/// Counts at one score threshold, IoU 0.5, over all images and categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OperatingPoint {
    pub true_positives: usize,
    pub false_positives: usize,
    /// Ground-truth objects that count (not crowds).
    pub ground_truth: usize,
}

impl OperatingPoint {
    /// TP / (TP + FP); 1 with no detection kept.
    pub fn precision(&self) -> f64 {
        let kept = self.true_positives + self.false_positives;
        if kept == 0 {
            1.0
        } else {
            self.true_positives as f64 / kept as f64
        }
    }

    /// TP / ground truth; 0 without ground truth.
    pub fn recall(&self) -> f64 {
        if self.ground_truth == 0 {
            0.0
        } else {
            self.true_positives as f64 / self.ground_truth as f64
        }
    }
}

/// Precision and recall of the detections scoring at least `score`, against `gt`.
/// Detections of categories or images `gt` does not have are left out.
pub fn operating_point(gt: &CocoGt, detections: &[Detection], score: f64) -> OperatingPoint {
    let mut gts: HashMap<(i64, i64), Vec<_>> = HashMap::new();
    for a in &gt.annotations {
        gts.entry((a.image_id, a.category_id)).or_default().push(a);
    }
    let mut dts: HashMap<(i64, i64), Vec<_>> = HashMap::new();
    for d in detections.iter().filter(|d| d.score >= score) {
        dts.entry((d.image_id, d.category_id)).or_default().push(d);
    }
    let mut point = OperatingPoint {
        true_positives: 0,
        false_positives: 0,
        ground_truth: 0,
    };
    for image in &gt.images {
        for category in &gt.categories {
            let key = (image.id, category.id);
            let g = gts.get(&key).map_or(&[][..], Vec::as_slice);
            let d = dts.get(&key).map_or(&[][..], Vec::as_slice);
            if g.is_empty() && d.is_empty() {
                continue;
            }
            let matches = &match_image(g, d)[ALL];
            point.ground_truth += matches.relevant_gt;
            for outcome in &matches.outcomes {
                match outcome[0] {
                    Outcome::TruePositive => point.true_positives += 1,
                    Outcome::FalsePositive => point.false_positives += 1,
                    Outcome::Ignored => {}
                }
            }
        }
    }
    point
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::coco::{Category, GtAnnotation, ImageInfo};

    fn gt() -> CocoGt {
        let ann = |id, image_id, bbox| GtAnnotation {
            id,
            image_id,
            category_id: 1,
            bbox,
            area: None,
            iscrowd: 0,
            temperature_c: None,
        };
        CocoGt {
            images: (1..=2)
                .map(|id| ImageInfo {
                    id,
                    file_name: format!("{id}.png"),
                    width: 100,
                    height: 100,
                })
                .collect(),
            annotations: vec![
                ann(1, 1, [10.0, 10.0, 20.0, 40.0]),
                ann(2, 1, [60.0, 10.0, 20.0, 40.0]),
                ann(3, 2, [10.0, 10.0, 20.0, 40.0]),
            ],
            categories: vec![Category {
                id: 1,
                name: "person".into(),
            }],
        }
    }

    fn det(image_id: i64, bbox: [f64; 4], score: f64) -> Detection {
        Detection {
            image_id,
            category_id: 1,
            bbox,
            score,
        }
    }

    #[test]
    fn kept_detections_are_counted_against_the_ground_truth_at_iou_half() {
        let dets = [
            det(1, [11.0, 10.0, 20.0, 40.0], 0.9), // TP
            det(1, [10.0, 12.0, 20.0, 40.0], 0.8), // duplicate: FP
            det(2, [50.0, 50.0, 20.0, 20.0], 0.7), // nothing there: FP
            det(2, [10.0, 10.0, 20.0, 40.0], 0.1), // TP, but below 0.25
        ];
        let p = operating_point(&gt(), &dets, 0.25);
        assert_eq!(
            (p.true_positives, p.false_positives, p.ground_truth),
            (1, 2, 3)
        );
        assert!((p.precision() - 1.0 / 3.0).abs() < 1e-12);
        assert!((p.recall() - 1.0 / 3.0).abs() < 1e-12);
        let p = operating_point(&gt(), &dets, 0.0);
        assert_eq!((p.true_positives, p.false_positives), (2, 2));
    }
}
