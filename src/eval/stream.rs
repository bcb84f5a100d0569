//! Scoring a stream as it plays: detections are added frame by frame (frame N is image N
//! of a ground truth in frame order, as `zsq synth --recording` writes it) and the
//! frames seen are evaluated at the end, with latency statistics. The element's
//! `annotations` property is this.
//!
//! Classes score as categories by [`CategoryMap`], set for the model that runs (again
//! when the model changes), by class id: the one rule `zsq eval` follows too.

use std::collections::BTreeSet;

use super::{CategoryMap, CocoGt, Detection, EvalError, EvalResult, evaluate};
use crate::detect;

/// A ground truth being scored frame by frame.
pub struct StreamEval {
    gt: CocoGt,
    /// For the running model; `None` before one is set.
    categories: Option<CategoryMap>,
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
    /// Scoring against `gt`; [`StreamEval::set_categories`] before the first frame.
    pub fn new(gt: CocoGt) -> Self {
        StreamEval {
            gt,
            categories: None,
            detections: Vec::new(),
            frames: BTreeSet::new(),
            latencies_ms: Vec::new(),
        }
    }

    pub fn ground_truth(&self) -> &CocoGt {
        &self.gt
    }

    /// How the classes of the frames that follow score (made for the model that runs
    /// them, from `ground_truth()`).
    pub fn set_categories(&mut self, categories: CategoryMap) {
        self.categories = Some(categories);
    }

    /// The map set last.
    pub fn categories(&self) -> Option<&CategoryMap> {
        self.categories.as_ref()
    }

    /// The detections the stream emitted on frame `frame` (classes map to categories by
    /// the map set, which detections need; classes it does not score are left out).
    pub fn add_frame(
        &mut self,
        frame: u64,
        detections: &[detect::Detection],
    ) -> Result<(), EvalError> {
        let index = frame as usize;
        let image_id = self.image_id(index)?;
        if !detections.is_empty() {
            let categories = self.categories.as_ref().ok_or_else(|| {
                EvalError("detections to score before the model's classes are known".into())
            })?;
            self.detections.extend(detections.iter().filter_map(|d| {
                let category_id = categories.category(d.class_id)?;
                Some(Detection::from_box(image_id, category_id, d))
            }));
        }
        self.frames.insert(index);
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

    fn scoring(names: &[&str]) -> StreamEval {
        let mut s = StreamEval::new(gt());
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        s.set_categories(CategoryMap::new(Some(&names), names.len(), s.ground_truth()).unwrap());
        s
    }

    #[test]
    fn only_the_frames_seen_are_scored() {
        let mut s = scoring(&["person"]);
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

    #[test]
    fn classes_score_by_class_id_through_the_map_of_the_running_model() {
        // the label does not decide: class 1 of a model named [car, person] is a person
        let mut s = scoring(&["car", "person"]);
        let mut person = det([10.0, 10.0, 30.0, 30.0]);
        person.class_id = 1;
        person.label = "class 1".into();
        let mut car = det([50.0, 50.0, 70.0, 70.0]);
        car.class_id = 0;
        s.add_frame(0, &[person, car]).unwrap();
        assert_eq!(s.detections().len(), 1);
        assert_eq!(s.detections()[0].category_id, 1);
        assert_eq!(s.detections()[0].bbox, [10.0, 10.0, 20.0, 20.0]);

        // before any map, a frame is an error, not a silent nothing
        let mut unset = StreamEval::new(gt());
        assert!(
            unset
                .add_frame(0, &[det([0.0, 0.0, 1.0, 1.0])])
                .unwrap_err()
                .0
                .contains("before the model's classes are known")
        );
        assert_eq!(unset.frames(), 0);
    }
}
