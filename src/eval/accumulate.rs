//! Precision at 101 recall points and the final recall, per IoU threshold, for one
//! category and area range over all images, following pycocotools' `COCOeval.accumulate`.

use super::matching::{ImageMatches, Outcome};
use super::recall_thresholds;

/// What `accumulate` keeps of one category, area range and detection limit.
#[derive(Debug, Clone)]
pub(crate) struct Accumulated {
    /// Interpolated precision, `[iou threshold][recall threshold]`.
    pub precision: [[f64; 101]; 10],
    /// Recall after the last ranked detection, per IoU threshold.
    pub recall: [f64; 10],
}

/// Accumulates the matches of one category in one area range, using at most `max_det`
/// detections of each image (the best ones: matches were made in score order, so cutting
/// them later is what pycocotools does too). `None` when the category has no ground
/// truth to recall in the range (pycocotools leaves -1 there).
pub(crate) fn accumulate(images: &[&ImageMatches], max_det: usize) -> Option<Accumulated> {
    let relevant: usize = images.iter().map(|m| m.relevant_gt).sum();
    if relevant == 0 {
        return None;
    }
    // All detections of the category, images in id order, then ranked by score; the sort
    // is stable like numpy's mergesort, so ties keep image order.
    let mut ranked: Vec<(f64, &[Outcome; 10])> = images
        .iter()
        .flat_map(|m| {
            m.scores
                .iter()
                .copied()
                .zip(m.outcomes.iter())
                .take(max_det)
        })
        .collect();
    ranked.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));

    let recall_points = recall_thresholds();
    let mut out = Accumulated {
        precision: [[0.0; 101]; 10],
        recall: [0.0; 10],
    };
    for (t, curve) in out.precision.iter_mut().enumerate() {
        // Cumulative true and false positives; ignored detections repeat the previous
        // point, as they do in pycocotools.
        let (mut tp, mut fp) = (0.0_f64, 0.0_f64);
        let mut recall = Vec::with_capacity(ranked.len());
        let mut precision = Vec::with_capacity(ranked.len());
        for (_, outcomes) in &ranked {
            match outcomes[t] {
                Outcome::TruePositive => tp += 1.0,
                Outcome::FalsePositive => fp += 1.0,
                Outcome::Ignored => {}
            }
            recall.push(tp / relevant as f64);
            precision.push(tp / (fp + tp + f64::EPSILON));
        }
        out.recall[t] = recall.last().copied().unwrap_or(0.0);
        // Make precision monotonically non-increasing from the right.
        for i in (1..precision.len()).rev() {
            if precision[i] > precision[i - 1] {
                precision[i - 1] = precision[i];
            }
        }
        // For each recall threshold, the precision at the first rank reaching it
        // (`searchsorted(side="left")`); thresholds never reached stay 0.
        for (r, threshold) in recall_points.iter().enumerate() {
            let first = recall.partition_point(|&rc| rc < *threshold);
            match precision.get(first) {
                Some(p) => curve[r] = *p,
                None => break,
            }
        }
    }
    Some(out)
}
