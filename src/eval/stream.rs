//! Scoring a stream as it plays: detections are added frame by frame (frame N is image N
//! of a ground truth in frame order, as `zsq synth --recording` writes it) and the
//! frames seen are evaluated at the end, with latency statistics. The element's
//! `annotations` property is this.

use std::collections::{BTreeSet, HashMap};

use super::{CocoGt, Detection, EvalError, EvalResult, evaluate};
use crate::detect;

/// A ground truth being scored frame by frame.
pub struct StreamEval {
    gt: CocoGt,
    categories: HashMap<String, i64>,
    detections: Vec<Detection>,
    frames: BTreeSet<usize>,
    latencies_ms: Vec<f64>,
}

/// What a scored stream comes to.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReport {
    pub result: EvalResult,
    /// Frames scored.
    pub frames: usize,
    /// Inference latency per frame (pre-processing to boxes), milliseconds.
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
}

impl StreamEval {
    pub fn new(gt: CocoGt) -> Self {
        let categories = gt
            .categories
            .iter()
            .map(|c| (c.name.clone(), c.id))
            .collect();
        StreamEval {
            gt,
            categories,
            detections: Vec::new(),
            frames: BTreeSet::new(),
            latencies_ms: Vec::new(),
        }
    }

    /// The detections the stream emitted on frame `frame` (labels map to categories by
    /// name; other labels are not scored).
    pub fn add_frame(
        &mut self,
        frame: u64,
        detections: &[detect::Detection],
    ) -> Result<(), EvalError> {
        let index = frame as usize;
        let image_id = self.image_id(index)?;
        self.frames.insert(index);
        self.detections.extend(detections.iter().filter_map(|d| {
            let category_id = *self.categories.get(&d.label)?;
            Some(Detection::from_box(image_id, category_id, d))
        }));
        Ok(())
    }

    fn image_id(&self, index: usize) -> Result<i64, EvalError> {
        self.gt.images.get(index).map(|i| i.id).ok_or_else(|| {
            EvalError(format!(
                "frame {index} is beyond the {} images of the annotations",
                self.gt.images.len()
            ))
        })
    }

    pub fn add_latency(&mut self, ms: f64) {
        self.latencies_ms.push(ms);
    }

    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// The detections added so far, as COCO results.
    pub fn detections(&self) -> &[Detection] {
        &self.detections
    }

    /// Evaluates the frames seen (the ground truth of frames never seen is left out).
    pub fn finish(&self) -> Result<StreamReport, EvalError> {
        let seen: BTreeSet<i64> = self.frames.iter().map(|&f| self.gt.images[f].id).collect();
        let gt = CocoGt {
            images: self
                .gt
                .images
                .iter()
                .filter(|i| seen.contains(&i.id))
                .cloned()
                .collect(),
            annotations: self
                .gt
                .annotations
                .iter()
                .filter(|a| seen.contains(&a.image_id))
                .cloned()
                .collect(),
            categories: self.gt.categories.clone(),
        };
        let mut lat = self.latencies_ms.clone();
        lat.sort_by(f64::total_cmp);
        Ok(StreamReport {
            result: evaluate(&gt, &self.detections)?,
            frames: self.frames.len(),
            latency_p50_ms: percentile(&lat, 50.0),
            latency_p95_ms: percentile(&lat, 95.0),
        })
    }
}

/// Linear-interpolated percentile of sorted values (numpy's default); 0 when empty.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => {
            let rank = p / 100.0 * (n - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt() -> CocoGt {
        CocoGt::from_json(
            r#"{"images":[{"id":0,"file_name":"frame_000000"},{"id":1,"file_name":"frame_000001"},{"id":2,"file_name":"frame_000002"}],
                "annotations":[{"id":1,"image_id":0,"category_id":1,"bbox":[10,10,20,20]},
                               {"id":2,"image_id":2,"category_id":1,"bbox":[50,50,20,20]}],
                "categories":[{"id":1,"name":"person"}]}"#,
        )
        .unwrap()
    }

    fn det(bbox: [f32; 4]) -> detect::Detection {
        detect::Detection {
            class_id: 0,
            label: "person".into(),
            confidence: 0.9,
            bbox,
            temperature: None,
        }
    }

    #[test]
    fn only_the_frames_seen_are_scored() {
        let mut s = StreamEval::new(gt());
        s.add_frame(0, &[det([10.0, 10.0, 30.0, 30.0])]).unwrap();
        s.add_frame(1, &[]).unwrap();
        for ms in [10.0, 20.0, 30.0, 40.0, 50.0] {
            s.add_latency(ms);
        }
        let r = s.finish().unwrap();
        // frame 2 (with an object) never played: it does not count as a miss
        assert_eq!(r.frames, 2);
        assert!(
            (r.result.map.unwrap() - 1.0).abs() < 1e-12,
            "{:?}",
            r.result.map
        );
        assert_eq!((r.latency_p50_ms, r.latency_p95_ms), (30.0, 48.0));
        assert!(
            s.add_frame(3, &[])
                .unwrap_err()
                .0
                .contains("frame 3 is beyond the 3 images")
        );
    }
}
