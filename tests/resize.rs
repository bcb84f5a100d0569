//! Running a YOLOv8-family detector exported at a fixed size at another size
//! (`detect::resize`): against the same weights exported at that size by PyTorch, on the
//! bundled detector at a camera's 640×512, and the models it must refuse.

use std::path::{Path, PathBuf};

use thermalzsq::detect::decode::OutputLayout;
use thermalzsq::detect::resize::{resize_head, set_input_size};
use thermalzsq::detect::{Detector, DetectorConfig};
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::onnx::{InputSize, Model};
use thermalzsq::runtime::{ProviderOptions, load_session_from_memory};
use thermalzsq::synth::{Recording, Scene};

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn size(width: usize, height: usize) -> InputSize {
    InputSize { width, height }
}

/// The model's first output on a seeded random 1×3×h×w input.
fn output(model: &Model, width: usize, height: usize) -> Vec<f32> {
    let mut loaded =
        load_session_from_memory(&model.to_bytes(), &ProviderOptions::default()).expect("session");
    let name = loaded.info.inputs[0].name.clone();
    let mut state = 12345u64;
    let input: Vec<f32> = (0..3 * width * height)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let tensor =
        ort::value::TensorRef::from_array_view(([1, 3, height, width], &input[..])).unwrap();
    let out = loaded
        .session
        .run(ort::inputs![name.as_str() => tensor])
        .unwrap();
    out[0].try_extract_tensor::<f32>().unwrap().1.to_vec()
}

#[test]
fn a_resized_head_gives_what_the_same_weights_exported_at_that_size_give() {
    // Unfolded shapes (BN kept: only the anchor grid and strides are constants) and
    // folded ones (every reshape target a constant, YOLO11's attention included).
    for (at_64, at_96x64, constants) in [
        ("yolov8_c2f_dfl.onnx", "yolov8_c2f_dfl_96x64.onnx", 3),
        ("yolo11_c2psa_nobn.onnx", "yolo11_c2psa_nobn_96x64.onnx", 7),
    ] {
        let mut model = Model::load(path("tests/fixtures/onnx").join(at_64)).unwrap();
        let exported = Model::load(path("tests/fixtures/onnx").join(at_96x64)).unwrap();
        let resized = resize_head(&mut model, size(96, 64)).unwrap();
        assert_eq!(resized.from, Some(size(64, 64)), "{at_64}");
        assert_eq!(resized.anchors, (84, 126), "{at_64}");
        assert_eq!(resized.constants, constants, "{at_64}");
        let (ours, theirs) = (output(&model, 96, 64), output(&exported, 96, 64));
        assert_eq!(ours.len(), 7 * 126, "{at_64}");
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{at_64}: outputs differ by {worst}");
    }
}

#[test]
fn resizing_there_and_back_gives_the_model_it_was() {
    let original = Model::load(path("models/det_thermal_ft.onnx")).unwrap();
    let mut model = original.clone();
    let there = resize_head(&mut model, size(640, 512)).unwrap();
    assert_eq!(there.anchors, (2100, 6720));
    // Anchor points, strides, three level reshapes and two DFL reshapes.
    assert_eq!(there.constants, 8);
    let back = resize_head(&mut model, size(320, 320)).unwrap();
    assert_eq!(back.anchors, (6720, 2100));
    assert_eq!(output(&model, 320, 320), output(&original, 320, 320));
}

/// Frames of the demo-like recording and their labels (people and vehicles, many small).
fn matched_objects(detector: &mut Detector) -> usize {
    let recording = Recording::new(7, 640, 512).unwrap();
    (0..30)
        .step_by(6)
        .map(|i| {
            let frame = recording.frame(i);
            let bytes: Vec<u8> = frame.thermal.iter().flat_map(|k| k.to_le_bytes()).collect();
            let image =
                Frame::new(PixelFormat::Gray16Le, 640, 512, vec![(&bytes[..], 1280)]).unwrap();
            let found = detector.detect(&image).unwrap();
            frame
                .labels
                .iter()
                .filter(|l| {
                    found.iter().any(|d| {
                        let [x0, y0, x1, y1] = d.bbox;
                        let [lx, ly, lw, lh] = l.bbox;
                        let (lx0, ly0, lx1, ly1) = (lx, ly, lx + lw, ly + lh);
                        let iw = (x1.min(lx1) - x0.max(lx0)).max(0.0);
                        let ih = (y1.min(ly1) - y0.max(ly0)).max(0.0);
                        let inter = iw * ih;
                        inter / ((x1 - x0) * (y1 - y0) + lw * lh - inter) >= 0.5
                    })
                })
                .count()
        })
        .sum()
}

#[test]
fn the_bundled_detector_at_the_cameras_own_size_finds_more_of_the_small_objects() {
    let model = path("models/det_thermal_ft.onnx");
    let mut at_320 = Detector::load(&model, DetectorConfig::default()).unwrap();
    let config = DetectorConfig {
        input_size: Some(size(640, 512)),
        ..DetectorConfig::default()
    };
    let mut at_640 = Detector::load(&model, config).unwrap();
    assert_eq!(at_640.input_shape(), [1, 3, 512, 640]);
    assert_eq!(at_640.head_resize().from, Some(size(320, 320)));
    assert!(matches!(
        at_640.layout(),
        OutputLayout::Yolov8 {
            anchors: 6720,
            classes: 3
        }
    ));
    assert_eq!(at_320.head_resize().from, None);
    let (small, native) = (matched_objects(&mut at_320), matched_objects(&mut at_640));
    assert!(
        native > small + small / 4,
        "objects found at 640x512: {native}, at 320x320: {small}"
    );
}

#[test]
fn heads_it_does_not_know_and_bad_sizes_are_refused_with_the_fix() {
    // The grid-cell test detector: a fixed size, but no anchor grid to rewrite.
    let mut cells = Model::load(path("tests/fixtures/models/hotspot_v8.onnx")).unwrap();
    let before = cells.to_bytes();
    let e = set_input_size(&mut cells, size(640, 640))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("exported at 320x320 and cannot run at 640x640")
            && e.contains("re-export it at 640x640"),
        "{e}"
    );
    assert_eq!(
        cells.to_bytes(),
        before,
        "a refused model is left as it was"
    );
    let mut model = Model::load(path("models/det_thermal_ft.onnx")).unwrap();
    let e = resize_head(&mut model, size(650, 512))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a multiple of the model's stride 32; use e.g. 672x512"),
        "{e}"
    );
    // Its own size, and a symbolic model, go through as before.
    assert_eq!(
        set_input_size(&mut model, size(320, 320))
            .unwrap()
            .constants,
        0
    );
    let mut dynamic = Model::load(path("tests/fixtures/models/hotspot_v8_dynamic.onnx")).unwrap();
    assert_eq!(
        set_input_size(&mut dynamic, size(640, 512)).unwrap().from,
        None
    );
    assert!(!dynamic.has_symbolic_input_size());
}

/// Over the labelled objects of held-out scenes (seed 2, as `zsq synth --seed 2`): the
/// mean best IoU of a box of their class that `detector` gives them (conf 0.25), per
/// COCO size (small, medium, large).
fn overlap_by_size(detector: &mut Detector) -> [f32; 3] {
    let (mut sum, mut count) = ([0.0f32; 3], [0usize; 3]);
    for i in 0..24 {
        let scene = Scene::generate(2, i, 640, 512).unwrap();
        let bytes: Vec<u8> = scene.thermal.iter().flat_map(|k| k.to_le_bytes()).collect();
        let image = Frame::new(PixelFormat::Gray16Le, 640, 512, vec![(&bytes[..], 1280)]).unwrap();
        let boxes = detector.detect(&image).unwrap();
        for label in &scene.labels {
            let [lx, ly, lw, lh] = label.bbox;
            let best = boxes
                .iter()
                .filter(|d| d.class_id == label.class as usize)
                .map(|d| {
                    let [x0, y0, x1, y1] = d.bbox;
                    let iw = (x1.min(lx + lw) - x0.max(lx)).max(0.0);
                    let ih = (y1.min(ly + lh) - y0.max(ly)).max(0.0);
                    let inter = iw * ih;
                    inter / ((x1 - x0) * (y1 - y0) + lw * lh - inter)
                })
                .fold(0.0f32, f32::max);
            let area = lw * lh;
            let bin = if area < 32.0 * 32.0 {
                0
            } else if area < 96.0 * 96.0 {
                1
            } else {
                2
            };
            sum[bin] += best;
            count[bin] += 1;
        }
    }
    std::array::from_fn(|b| sum[b] / count[b].max(1) as f32)
}

#[test]
fn extra_input_sizes_merge_the_small_objects_of_one_size_with_the_large_of_another() {
    let model = path("models/det_thermal_ft.onnx");
    let sized = |input: Option<InputSize>, extra: Vec<InputSize>| {
        let config = DetectorConfig {
            input_size: input,
            extra_input_sizes: extra,
            ..DetectorConfig::default()
        };
        overlap_by_size(&mut Detector::load(&model, config).unwrap())
    };
    let at_320 = sized(None, vec![]);
    let at_640 = sized(Some(size(640, 512)), vec![]);
    let both = sized(Some(size(640, 512)), vec![size(320, 320)]);
    eprintln!(
        "mean best IoU (small, medium, large): 320 {at_320:?}, 640x512 {at_640:?}, both {both:?}"
    );
    assert!(
        at_640[0] > at_320[0] && at_320[2] > at_640[2],
        "each size is better at one end, as measured"
    );
    assert!(
        both[0] > at_640[0] - 0.02,
        "the small objects of 640x512 kept"
    );
    assert!(
        both[2] > at_320[2] - 0.02,
        "the large objects of 320x320 kept"
    );
}
