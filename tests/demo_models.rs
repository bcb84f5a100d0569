//! The bundled demo detectors (models/, made by tools/make_models.sh): they load, keep
//! their BatchNormalization nodes (what zero-shot quantization distills from), name their
//! classes, and find the objects of `zsq synth` frames through the same pre-processing as
//! `thermaldetect` — each on its own domain, 16-bit radiometric frames for the thermal ones.

use std::path::{Path, PathBuf};

use thermalzsq::detect::{Detection, Detector, DetectorConfig};
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::onnx::{InputSize, Model};
use thermalzsq::synth::Scene;
use thermalzsq::zsq::bn::find_bn_layers;
use thermalzsq::zsq::pipeline::{DistillSettings, QuantizeSettings, quantize};

/// Held-out scenes (seed 2, the models' test set; training used seed 1).
const SEED: u64 = 2;
const SCENES: u64 = 6;
const W: u32 = 640;
const H: u32 = 512;

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: [f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

/// Recall of the clearly visible objects (≥ 24 px on the long side) and precision of the
/// detections at the element's default thresholds, matched greedily at IoU ≥ 0.5 within
/// a class, over the held-out scenes.
fn recall_precision(detector: &mut Detector, rgb: bool) -> (f32, f32) {
    let (mut found, mut objects, mut correct, mut emitted) = (0usize, 0usize, 0usize, 0usize);
    for index in 0..SCENES {
        let scene = Scene::generate(SEED, index, W, H).unwrap();
        let (format, bytes, depth) = if rgb {
            (PixelFormat::Rgb, scene.rgb.clone(), 3)
        } else {
            let le = scene.thermal.iter().flat_map(|v| v.to_le_bytes()).collect();
            (PixelFormat::Gray16Le, le, 2)
        };
        let frame = Frame::new(
            format,
            W as usize,
            H as usize,
            vec![(&bytes[..], W as usize * depth)],
        )
        .unwrap();
        let dets: Vec<Detection> = detector.detect(&frame).unwrap();
        let mut used = vec![false; dets.len()];
        for label in &scene.labels {
            let [x, y, w, h] = label.bbox;
            let truth = [x, y, x + w, y + h];
            let best = dets
                .iter()
                .enumerate()
                .filter(|(i, d)| !used[*i] && d.label == label.class.name())
                .map(|(i, d)| (i, iou(d.bbox, truth)))
                .filter(|&(_, v)| v >= 0.5)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((i, _)) = best {
                used[i] = true;
                correct += 1;
                if w.max(h) >= 24.0 {
                    found += 1;
                }
            }
            if w.max(h) >= 24.0 {
                objects += 1;
            }
        }
        emitted += dets.len();
    }
    assert!(
        objects >= 10,
        "the held-out scenes hold {objects} clear objects"
    );
    (
        found as f32 / objects as f32,
        correct as f32 / emitted.max(1) as f32,
    )
}

fn check(name: &str, rgb: bool) {
    check_at(name, rgb, None);
}

/// `check` with the detector run at `input_size` (thermaldetect's `input-size`).
fn check_at(name: &str, rgb: bool, input_size: Option<InputSize>) {
    let path = model(name);
    let onnx = Model::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let bn = find_bn_layers(&onnx).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        bn.len() >= 40,
        "{name}: only {} BatchNormalization nodes",
        bn.len()
    );

    let config = DetectorConfig {
        input_size,
        ..DetectorConfig::default()
    };
    let mut detector = Detector::load(&path, config).unwrap();
    let (h, w) = input_size.map_or((320, 320), |s| (s.height, s.width));
    assert_eq!(detector.input_shape(), [1, 3, h, w], "{name}");
    assert_eq!(detector.labels(), ["person", "car", "bicycle"], "{name}");
    let (recall, precision) = recall_precision(&mut detector, rgb);
    eprintln!("{name}: recall {recall:.2}, precision {precision:.2}");
    // A sound model scores 0.65-0.9 on both; a broken export or pre-processing near 0.
    assert!(
        recall >= 0.6 && precision >= 0.5,
        "{name}: recall {recall:.2}, precision {precision:.2} on held-out synth scenes"
    );
}

#[test]
fn the_fine_tuned_thermal_model_detects_on_radiometric_frames() {
    check("det_thermal_ft.onnx", false);
}

/// The demo's detector, trained on at 640×512, at the size it is meant to run at.
#[test]
fn the_demo_detector_detects_at_the_cameras_size() {
    check_at(
        "det_thermal_ft640.onnx",
        false,
        Some(InputSize {
            width: 640,
            height: 512,
        }),
    );
}

#[test]
fn the_thermal_model_from_scratch_detects_on_radiometric_frames() {
    check("det_thermal_scratch.onnx", false);
}

#[test]
fn the_rgb_model_detects_on_rgb_renders() {
    check("det_rgb.onnx", true);
}

/// Zero-shot int8 of the main demo model, on a short distillation (the full one is
/// measured in docs/quantize.md): the int8 outputs and head logits follow fp32, and the
/// int8 model still finds the objects.
#[test]
fn the_fine_tuned_thermal_model_quantizes_zero_shot() {
    let fp32 = Model::load(model("det_thermal_ft.onnx")).unwrap();
    let settings = QuantizeSettings {
        distill: DistillSettings {
            iterations: 12,
            batch: 4,
            ..DistillSettings::default()
        },
        ..QuantizeSettings::default()
    };
    let q = quantize(&fp32, &settings, &mut |_| {}).unwrap();
    let check = q.report.check.as_ref().expect("the int8 model was checked");
    for o in check.outputs.iter().chain(&check.head) {
        assert!(o.cosine >= 0.99, "{}: cosine {}", o.name, o.cosine);
    }
    assert!(!check.head.is_empty());
    let mut detector = Detector::from_bytes(&q.bytes, DetectorConfig::default()).unwrap();
    let (recall, precision) = recall_precision(&mut detector, false);
    eprintln!("det_thermal_ft.onnx zero-shot int8: recall {recall:.2}, precision {precision:.2}");
    assert!(
        recall >= 0.6 && precision >= 0.5,
        "int8: recall {recall:.2}, precision {precision:.2}"
    );
}
