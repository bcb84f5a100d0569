//! Detections to score, from a detector run over a dataset or from the JSON lines
//! `thermaldetect` wrote: both become COCO results against a ground truth.

use std::collections::BTreeMap;
use std::path::Path;

use super::{CategoryMap, CocoGt, Detection, EvalError, StreamEval};
use crate::detect;
use crate::detect::labels::is_unnamed;
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

/// A frame's detections as COCO results on image `image_id`.
fn to_coco<'a>(
    image_id: i64,
    dets: &'a [detect::Detection],
    classes: &'a CategoryMap,
) -> impl Iterator<Item = Detection> + 'a {
    dets.iter().filter_map(move |d| {
        let category_id = classes.category(d.class_id)?;
        Some(Detection::from_box(image_id, category_id, d))
    })
}

/// Runs `detector` on every image of `gt`, read from `images` (PNG, 8 or 16 bit) by
/// file name; classes score as `classes` says (see [`CategoryMap::for_detector`]).
/// `progress` gets (done, total).
pub fn detect_dataset(
    detector: &mut Detector,
    gt: &CocoGt,
    classes: &CategoryMap,
    images: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Detection>, EvalError> {
    let mut out = Vec::new();
    for (i, image) in gt.images.iter().enumerate() {
        let frame =
            read_png(&images.join(&image.file_name)).map_err(|e| EvalError(e.to_string()))?;
        let dets = detector
            .detect(&frame.as_frame())
            .map_err(|e| EvalError(e.to_string()))?;
        out.extend(to_coco(image.id, &dets, classes));
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
/// pre-processing: see [`Detector::preprocess`]), classes mapped by
/// [`CategoryMap::for_detector`]; for named models (`zsq report`'s), whose map warns of
/// nothing.
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
    let classes = CategoryMap::for_detector(detector, gt)?;
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
/// image N. Classes score by [`CategoryMap`], named by `labels` (a labels file: the
/// model's class names by class id) or else by the lines' labels. Lines of a model
/// without names (labels "class N") need `labels`: they do not say how many classes
/// the model has, so they cannot be matched by order.
pub fn parse_frame_records(
    text: &str,
    gt: &CocoGt,
    labels: Option<&[String]>,
) -> Result<Vec<Detection>, EvalError> {
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str::<FrameRecord>(line).map_err(|e| {
                EvalError(format!(
                    "line {}: not a thermaldetect JSON line: {e}",
                    n + 1
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let detected = records.iter().any(|r| !r.detections.is_empty());
    let classes = match labels {
        Some(labels) => {
            if let Some(d) = records
                .iter()
                .flat_map(|r| &r.detections)
                .find(|d| d.class_id >= labels.len())
            {
                return Err(EvalError(format!(
                    "a detection of class {} but the labels file names {} classes",
                    d.class_id,
                    labels.len()
                )));
            }
            Some(CategoryMap::new(Some(labels), labels.len(), gt)?)
        }
        // Nothing detected: nothing to map, and the score says so.
        None if !detected => None,
        None => {
            let names = names_in_records(&records)?;
            if names.is_empty() {
                return Err(EvalError(
                    "the detections name no class (labels \"class N\": the model has no names), and JSON lines do not say how many classes it has: give its class names with --labels FILE, one per line".into(),
                ));
            }
            Some(CategoryMap::new(Some(&names), names.len(), gt)?)
        }
    };
    let mut stream = StreamEval::new(gt.clone());
    if let Some(classes) = classes {
        stream.set_categories(classes);
    }
    for record in records {
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

/// The class names JSON lines carry, by class id ("class N" for an id without one);
/// empty when every label is "class N". One id labelled two ways is an error.
fn names_in_records(records: &[FrameRecord]) -> Result<Vec<String>, EvalError> {
    let mut by_id: BTreeMap<usize, &str> = BTreeMap::new();
    for d in records.iter().flat_map(|r| &r.detections) {
        if is_unnamed(&d.label, d.class_id) {
            continue;
        }
        if let Some(other) = by_id.insert(d.class_id, &d.label)
            && other != d.label
        {
            return Err(EvalError(format!(
                "class {} is labelled both `{other}` and `{}`: lines of two models?",
                d.class_id, d.label
            )));
        }
    }
    let Some(&last) = by_id.keys().next_back() else {
        return Ok(Vec::new());
    };
    Ok((0..=last)
        .map(|id| {
            by_id
                .get(&id)
                .map_or_else(|| format!("class {id}"), |n| n.to_string())
        })
        .collect())
}

/// Reads detections in either form: a COCO results array, or thermaldetect JSON lines
/// (classes named by `labels` when given, see [`parse_frame_records`]).
pub fn read_detections(
    path: &Path,
    gt: &CocoGt,
    labels: Option<&[String]>,
) -> Result<Vec<Detection>, EvalError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EvalError(format!("cannot read {}: {e}", path.display())))?;
    let parsed = if text.trim_start().starts_with('[') {
        if labels.is_some() {
            return Err(EvalError(format!(
                "{}: COCO results name categories by id: a labels file applies to thermaldetect JSON lines and --model only",
                path.display()
            )));
        }
        super::parse_detections(&text)
    } else {
        parse_frame_records(&text, gt, labels)
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
        let dets = parse_frame_records(text, &gt, None).unwrap();
        assert_eq!(
            dets,
            vec![Detection {
                image_id: 11,
                category_id: 2,
                bbox: [1.0, 2.0, 10.0, 20.0],
                score: 0.5
            }]
        );
        let e = parse_frame_records(
            r#"{"frame":5,"pts":0,"model":"m","detections":[]}"#,
            &gt,
            None,
        )
        .unwrap_err();
        assert!(e.0.contains("frame 5 is beyond the 2 images"), "{}", e.0);
        assert!(
            parse_frame_records("{oops", &gt, None)
                .unwrap_err()
                .0
                .contains("line 1")
        );
    }

    fn two_categories() -> CocoGt {
        CocoGt::from_json(
            r#"{"images":[{"id":10,"file_name":"frame_000000"}],"annotations":[],
                "categories":[{"id":1,"name":"person"},{"id":2,"name":"car"}]}"#,
        )
        .unwrap()
    }

    /// A line of frame 0 with one detection per `(class_id, label)`.
    fn line(dets: &[(usize, &str)]) -> String {
        let dets: Vec<String> = dets
            .iter()
            .map(|(c, l)| {
                format!(
                    r#"{{"label":"{l}","class_id":{c},"confidence":0.5,"box":[1.0,2.0,11.0,22.0]}}"#
                )
            })
            .collect();
        format!(
            r#"{{"frame":0,"pts":0,"model":"m","detections":[{}]}}"#,
            dets.join(",")
        )
    }

    #[test]
    fn json_lines_of_an_unnamed_model_score_with_a_labels_file_and_ask_for_one_without() {
        let gt = two_categories();
        let text = line(&[(0, "class 0"), (1, "class 1")]);
        let labels = vec!["car".to_string(), "person".to_string()];
        let dets = parse_frame_records(&text, &gt, Some(&labels)).unwrap();
        assert_eq!(
            dets.iter().map(|d| d.category_id).collect::<Vec<_>>(),
            [2, 1]
        );
        let e = parse_frame_records(&text, &gt, None).unwrap_err().0;
        assert!(
            e.contains("the detections name no class") && e.contains("--labels FILE"),
            "{e}"
        );
        // a frame without detections needs no names: it scores as nothing found
        let empty = parse_frame_records(&line(&[]), &gt, None).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn json_lines_whose_classes_do_not_fit_are_errors_not_a_silent_zero() {
        let gt = two_categories();
        let labels = vec!["car".to_string()];
        let e = parse_frame_records(&line(&[(1, "class 1")]), &gt, Some(&labels))
            .unwrap_err()
            .0;
        assert_eq!(
            e,
            "a detection of class 1 but the labels file names 1 classes"
        );
        let e = parse_frame_records(&line(&[(0, "hot"), (1, "cold")]), &gt, None)
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("the model's classes (hot, cold) match none of the annotations' categories (person, car)"),
            "{e}"
        );
        let e = parse_frame_records(&line(&[(0, "car"), (0, "truck")]), &gt, None)
            .unwrap_err()
            .0;
        assert!(
            e.contains("class 0 is labelled both `car` and `truck`"),
            "{e}"
        );
    }
}
