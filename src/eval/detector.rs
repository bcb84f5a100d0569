//! Detections to score, from a detector run over a dataset or from the JSON lines
//! `thermaldetect` wrote: both become COCO results against a ground truth.

use std::collections::HashMap;
use std::path::Path;

use super::{CocoGt, Detection, EvalError, StreamEval};
use crate::detect;
use crate::detect::report::FrameRecord;
use crate::detect::{Detector, DetectorConfig};
use crate::imaging::image::read_png;
use crate::imaging::preprocess::{Letterbox, Preprocess};

/// The detector settings for scoring, as the field evaluates: every box above a very low
/// confidence, NMS at IoU 0.7, 100 per image (what ultralytics' `val` uses).
pub fn eval_config() -> DetectorConfig {
    DetectorConfig {
        conf_threshold: 0.001,
        iou_threshold: 0.7,
        max_detections: 100,
        ..Default::default()
    }
}

/// Category id per class name of the dataset.
fn category_ids(gt: &CocoGt) -> HashMap<&str, i64> {
    gt.categories
        .iter()
        .map(|c| (c.name.as_str(), c.id))
        .collect()
}

/// Category id per class of `detector` (by name), or an error when none matches.
fn class_categories(detector: &Detector, gt: &CocoGt) -> Result<Vec<Option<i64>>, EvalError> {
    let ids = category_ids(gt);
    let classes: Vec<Option<i64>> = detector
        .labels()
        .iter()
        .map(|l| ids.get(l.as_str()).copied())
        .collect();
    if classes.iter().all(Option::is_none) {
        return Err(EvalError(format!(
            "the model's classes ({}) match none of the dataset's categories ({})",
            detector.labels().join(", "),
            gt.categories
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(classes)
}

/// A frame's detections as COCO results on image `image_id`.
fn to_coco(
    image_id: i64,
    dets: &[detect::Detection],
    classes: &[Option<i64>],
) -> impl Iterator<Item = Detection> {
    dets.iter().filter_map(move |d| {
        let category_id = classes.get(d.class_id).copied().flatten()?;
        Some(Detection::from_box(image_id, category_id, d))
    })
}

/// Runs `detector` on every image of `gt`, read from `images` (PNG, 8 or 16 bit) by
/// file name; classes map to categories by name. `progress` gets (done, total).
pub fn detect_dataset(
    detector: &mut Detector,
    gt: &CocoGt,
    images: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Detection>, EvalError> {
    let classes = class_categories(detector, gt)?;
    let mut out = Vec::new();
    for (i, image) in gt.images.iter().enumerate() {
        let frame =
            read_png(&images.join(&image.file_name)).map_err(|e| EvalError(e.to_string()))?;
        let dets = detector
            .detect(&frame.as_frame())
            .map_err(|e| EvalError(e.to_string()))?;
        out.extend(to_coco(image.id, &dets, &classes));
        progress(i + 1, gt.images.len());
    }
    Ok(out)
}

/// The images of a dataset pre-processed once for models that share a pre-processing
/// (input size, channels, colour, AGC): scoring many quantized variants of one model
/// then costs inference only (`zsq report` scores dozens).
pub struct PreparedImages {
    /// Per image of the ground truth, in its order: the input tensor and its letterbox.
    pub inputs: Vec<(Vec<f32>, Letterbox)>,
}

impl PreparedImages {
    /// Reads every image of `gt` from `images` and runs `pre` on it.
    pub fn new(gt: &CocoGt, images: &Path, pre: &mut Preprocess) -> Result<Self, EvalError> {
        let inputs = gt
            .images
            .iter()
            .map(|image| {
                let frame = read_png(&images.join(&image.file_name))
                    .map_err(|e| EvalError(e.to_string()))?;
                let mut input = vec![0.0; pre.tensor_len()];
                let lb = pre.run(&frame.as_frame(), &mut input);
                Ok((input, lb))
            })
            .collect::<Result<_, EvalError>>()?;
        Ok(PreparedImages { inputs })
    }
}

/// [`detect_dataset`] on images already pre-processed (for `detector`'s
/// pre-processing: see [`Detector::preprocess`]).
pub fn detect_prepared(
    detector: &mut Detector,
    gt: &CocoGt,
    prepared: &PreparedImages,
) -> Result<Vec<Detection>, EvalError> {
    if prepared.inputs.len() != gt.images.len() {
        return Err(EvalError(format!(
            "{} prepared images for a ground truth of {}",
            prepared.inputs.len(),
            gt.images.len()
        )));
    }
    let classes = class_categories(detector, gt)?;
    let mut out = Vec::new();
    for (image, (input, lb)) in gt.images.iter().zip(&prepared.inputs) {
        let dets = detector
            .detect_input(input, lb)
            .map_err(|e| EvalError(e.to_string()))?;
        out.extend(to_coco(image.id, &dets, &classes));
    }
    Ok(out)
}

/// Reads `thermaldetect` JSON lines (one frame per line) as detections on `gt`, whose
/// images are in frame order (as `zsq synth --recording` writes): line `frame` N is
/// image N; labels map to categories by name, other labels are ignored.
pub fn parse_frame_records(text: &str, gt: &CocoGt) -> Result<Vec<Detection>, EvalError> {
    let mut stream = StreamEval::new(gt.clone());
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: FrameRecord = serde_json::from_str(line).map_err(|e| {
            EvalError(format!(
                "line {}: not a thermaldetect JSON line: {e}",
                n + 1
            ))
        })?;
        let detections: Vec<detect::Detection> = record
            .detections
            .into_iter()
            .map(|d| detect::Detection {
                class_id: d.class_id,
                label: d.label,
                confidence: d.confidence,
                bbox: d.bbox,
                temperature: None,
            })
            .collect();
        stream.add_frame(record.frame, &detections)?;
    }
    Ok(stream.detections().to_vec())
}

/// Reads detections in either form: a COCO results array, or thermaldetect JSON lines.
pub fn read_detections(path: &Path, gt: &CocoGt) -> Result<Vec<Detection>, EvalError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EvalError(format!("cannot read {}: {e}", path.display())))?;
    let parsed = if text.trim_start().starts_with('[') {
        super::parse_detections(&text)
    } else {
        parse_frame_records(&text, gt)
    };
    parsed.map_err(|e| EvalError(format!("{}: {}", path.display(), e.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_map_frames_to_images_and_labels_to_categories() {
        let gt = CocoGt::from_json(
            r#"{"images":[{"id":10,"file_name":"frame_000000"},{"id":11,"file_name":"frame_000001"}],
                "annotations":[],"categories":[{"id":1,"name":"person"},{"id":2,"name":"car"}]}"#,
        )
        .unwrap();
        let text = concat!(
            r#"{"frame":0,"pts":0,"model":"m","detections":[]}"#,
            "\n",
            r#"{"frame":1,"pts":33,"model":"m","detections":[{"label":"car","class_id":1,"confidence":0.5,"box":[1.0,2.0,11.0,22.0]},{"label":"dog","class_id":3,"confidence":0.9,"box":[0.0,0.0,1.0,1.0]}]}"#,
            "\n"
        );
        let dets = parse_frame_records(text, &gt).unwrap();
        assert_eq!(
            dets,
            vec![Detection {
                image_id: 11,
                category_id: 2,
                bbox: [1.0, 2.0, 10.0, 20.0],
                score: 0.5
            }]
        );
        let e = parse_frame_records(r#"{"frame":5,"pts":0,"model":"m","detections":[]}"#, &gt)
            .unwrap_err();
        assert!(e.0.contains("frame 5 is beyond the 2 images"), "{}", e.0);
        assert!(
            parse_frame_records("{oops", &gt)
                .unwrap_err()
                .0
                .contains("line 1")
        );
    }
}
