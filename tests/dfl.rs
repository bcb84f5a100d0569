//! The DFL rewrite (`detect::dfl`): where it applies, where it must not, and that the
//! rewritten graph gives the exported graph's outputs and detections, fp32 and int8.

use std::path::{Path, PathBuf};

use thermalzsq::detect::dfl::rewrite_dfl;
use thermalzsq::detect::{Detection, Detector, DetectorConfig};
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::onnx::{AttributeProto, Model, TensorProto};
use thermalzsq::runtime::{ProviderOptions, load_session_from_memory};
use thermalzsq::synth::Scene;

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn load(relative: &str) -> Model {
    let mut model = Model::load(path(relative)).unwrap();
    model.inline_external_data().unwrap();
    model
}

fn rewritten(model: &Model) -> Model {
    let mut model = model.clone();
    assert_eq!(rewrite_dfl(&mut model).applied, 1);
    model
}

/// Frames of generated thermal street scenes, 640×512 centikelvin.
fn scenes(count: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let scene = Scene::generate(14, i, 640, 512).unwrap();
            scene.thermal.iter().flat_map(|v| v.to_le_bytes()).collect()
        })
        .collect()
}

fn detect(detector: &mut Detector, bytes: &[u8]) -> Vec<Detection> {
    let frame = Frame::new(PixelFormat::Gray16Le, 640, 512, vec![(bytes, 2 * 640)]).unwrap();
    detector.detect(&frame).unwrap()
}

/// The models' raw outputs on the scenes, pre-processed as the detector does.
fn outputs(model: &Model, frames: &[Vec<u8>]) -> Vec<Vec<f32>> {
    let config = DetectorConfig {
        rewrite_dfl: false,
        ..DetectorConfig::default()
    };
    let mut pre = Detector::from_bytes(&model.to_bytes(), config)
        .unwrap()
        .preprocess();
    let mut loaded =
        load_session_from_memory(&model.to_bytes(), &ProviderOptions::default()).expect("session");
    let input_name = loaded.info.inputs[0].name.clone();
    let shape = [1, pre.channels, pre.input_height, pre.input_width];
    let mut input = vec![0.0f32; pre.tensor_len()];
    frames
        .iter()
        .map(|bytes| {
            let frame =
                Frame::new(PixelFormat::Gray16Le, 640, 512, vec![(&bytes[..], 2 * 640)]).unwrap();
            pre.run(&frame, &mut input);
            let tensor = ort::value::TensorRef::from_array_view((shape, &input[..])).unwrap();
            let out = loaded
                .session
                .run(ort::inputs![input_name.as_str() => tensor])
                .unwrap();
            out[0].try_extract_tensor::<f32>().unwrap().1.to_vec()
        })
        .collect()
}

/// Rows 0..4 of a (1, 4+nc, A) output are boxes in input pixels: within `1e-5` of the
/// input side; the class scores do not pass through the DFL and must be bit-identical.
fn assert_same_yolov8_output(exported: &[f32], rewritten: &[f32], anchors: usize, side: f32) {
    assert_eq!(exported.len(), rewritten.len());
    let boxes = 4 * anchors;
    let worst = exported[..boxes]
        .iter()
        .zip(&rewritten[..boxes])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-5 * side, "boxes differ by {worst} px");
    assert_eq!(exported[boxes..], rewritten[boxes..], "scores differ");
}

fn assert_same_detections(exported: &[Detection], rewritten: &[Detection], what: &str) {
    assert_eq!(exported.len(), rewritten.len(), "{what}");
    for (a, b) in exported.iter().zip(rewritten) {
        assert_eq!(
            (a.class_id, a.confidence),
            (b.class_id, b.confidence),
            "{what}"
        );
        for (p, q) in a.bbox.iter().zip(&b.bbox) {
            assert!((p - q).abs() <= 1e-5 * 640.0, "{what}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn the_rewrite_applies_to_every_bundled_detector_and_dfl_fixture() {
    let dfl_models = [
        "models/det_thermal_ft.onnx",
        "models/det_thermal_scratch.onnx",
        "models/det_rgb.onnx",
        "tests/fixtures/onnx/yolov8_c2f_dfl.onnx",
        "tests/fixtures/onnx/yolov8_mono.onnx",
        "tests/fixtures/onnx/yolov8_scenes.onnx",
        "tests/fixtures/onnx/yolov10_e2e.onnx",
        "tests/fixtures/onnx/yolov10_e2e_nobn.onnx",
        "tests/fixtures/onnx/yolo11_c2psa.onnx",
        "tests/fixtures/onnx/yolo11_c2psa_nobn.onnx",
    ];
    for name in dfl_models {
        let mut model = load(name);
        let softmaxes = |m: &Model| {
            m.graph()
                .node
                .iter()
                .filter(|n| n.op_type() == "Softmax")
                .count()
        };
        let before = softmaxes(&model);
        let summary = rewrite_dfl(&mut model);
        assert_eq!(summary.applied, 1, "{name}: {summary:?}");
        assert!(summary.skipped.is_empty(), "{name}: {summary:?}");
        // YOLO11's attention Softmax stays; the DFL one and its Transpose go.
        assert_eq!(softmaxes(&model), before - 1, "{name}");
        let view = model.graph().view();
        assert!(
            !model.graph().node.iter().any(|n| n.op_type() == "Softmax"
                && view
                    .producer_node(&n.input[0])
                    .is_some_and(|p| p.op_type() == "Transpose")),
            "{name}"
        );
        model.graph().view().topological_order().unwrap();
    }
    let without_dfl = [
        "tests/fixtures/onnx/yolov5_c3.onnx",
        "tests/fixtures/onnx/resnet_tiny.onnx",
        "tests/fixtures/models/hotspot_v8.onnx",
        "tests/fixtures/models/hotspot_v10.onnx",
    ];
    for name in without_dfl {
        let model = load(name);
        let mut copy = model.clone();
        assert_eq!(rewrite_dfl(&mut copy), Default::default(), "{name}");
        assert_eq!(copy.to_bytes(), model.to_bytes(), "{name}");
    }
}

/// The index of the DFL's `op` node (named `/head/dfl/...` by the exporter).
fn dfl_node(m: &Model, op: &str) -> usize {
    m.graph()
        .node
        .iter()
        .position(|n| n.op_type() == op && n.name().contains("dfl"))
        .unwrap_or_else(|| panic!("no {op} in the DFL"))
}

fn set_attr(m: &mut Model, op: &str, attr: AttributeProto) {
    let i = dfl_node(m, op);
    let node = &mut m.graph_mut().node[i];
    node.attribute.retain(|a| a.name() != attr.name());
    node.attribute.push(attr);
}

#[test]
fn a_graph_that_almost_matches_is_left_as_exported() {
    let exported = load("tests/fixtures/onnx/yolov8_c2f_dfl.onnx");
    type Edit = Box<dyn Fn(&mut Model)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "not over axis 1",
            Box::new(|m| set_attr(m, "Softmax", AttributeProto::int("axis", -1))),
        ),
        (
            "perm is not (0, 2, 1, 3)",
            Box::new(|m| set_attr(m, "Transpose", AttributeProto::ints("perm", [0, 2, 3, 1]))),
        ),
        (
            "grouped, strided or dilated",
            Box::new(|m| set_attr(m, "Conv", AttributeProto::ints("strides", [2, 2]))),
        ),
        (
            "not (1, R, 1, 1)",
            Box::new(|m| {
                // Two output channels: not one expectation per side.
                let i = dfl_node(m, "Conv");
                let name = m.graph().node[i].input[1].clone();
                let w = ndarray::ArrayD::<f32>::ones(ndarray::IxDyn(&[2, 8, 1, 1]));
                let g = m.graph_mut();
                g.initializer.retain(|t| t.name() != name);
                g.initializer.push(TensorProto::from_array(&name, &w));
            }),
        ),
        (
            "has a bias",
            Box::new(|m| {
                let i = dfl_node(m, "Conv");
                m.graph_mut().initializer.push(TensorProto::from_array(
                    "dfl_bias",
                    &ndarray::arr1(&[0.5f32]),
                ));
                m.graph_mut().node[i].input.push("dfl_bias".into());
            }),
        ),
        (
            "also read elsewhere",
            Box::new(|m| {
                let i = dfl_node(m, "Transpose");
                let transposed = m.graph().node[i].output[0].clone();
                m.graph_mut()
                    .add_output(&transposed, thermalzsq::onnx::DataType::Float)
                    .unwrap();
            }),
        ),
        (
            "opset < 13",
            Box::new(|m| {
                for o in &mut m.proto.opset_import {
                    if o.domain.as_deref().unwrap_or("").is_empty() {
                        o.version = Some(12);
                    }
                }
            }),
        ),
    ];
    for (why, edit) in cases {
        let mut model = exported.clone();
        edit(&mut model);
        let before = model.to_bytes();
        let summary = rewrite_dfl(&mut model);
        assert_eq!(summary.applied, 0, "{why}");
        assert!(
            summary.skipped.len() == 1 && summary.skipped[0].contains(why),
            "{why}: {summary:?}"
        );
        assert_eq!(model.to_bytes(), before, "{why}: the model changed");
    }
}

#[test]
fn rewritten_fp32_outputs_match_the_exported_graph_on_generated_scenes() {
    let frames = scenes(3);
    let exported = load("models/det_thermal_ft.onnx");
    let a = outputs(&exported, &frames);
    let b = outputs(&rewritten(&exported), &frames);
    for (a, b) in a.iter().zip(&b) {
        assert_same_yolov8_output(a, b, 2100, 320.0);
    }
    // A fixture with 8 bins and symbolic reshape targets (64×64 input, 84 anchors).
    let fixture = load("tests/fixtures/onnx/yolov8_c2f_dfl.onnx");
    let a = outputs(&fixture, &frames);
    let b = outputs(&rewritten(&fixture), &frames);
    for (a, b) in a.iter().zip(&b) {
        assert_same_yolov8_output(a, b, 84, 64.0);
    }
}

#[test]
fn detections_are_the_same_with_and_without_the_rewrite_fp32_and_int8() {
    use thermalzsq::zsq::pipeline::{CalibrationSource, QuantizeSettings, quantize};
    use thermalzsq::zsq::scenes::SynthScenes;
    let frames = scenes(4);
    let fp32 = load("models/det_thermal_ft.onnx");
    let settings = QuantizeSettings {
        provider: ProviderOptions {
            threads: 2,
            ..ProviderOptions::default()
        },
        source: CalibrationSource::Synth(SynthScenes {
            count: 8,
            ..Default::default()
        }),
        check_images: 0,
        ..QuantizeSettings::default()
    };
    let int8 = quantize(&fp32, &settings, &mut |_| {}).unwrap();
    // The quantizer keeps the DFL float, so the int8 model has the same tail to rewrite.
    assert_eq!(rewrite_dfl(&mut int8.model.clone()).applied, 1);
    let mut found = 0;
    for (which, bytes) in [("fp32", fp32.to_bytes()), ("int8", int8.bytes.clone())] {
        let config = |rewrite_dfl| DetectorConfig {
            conf_threshold: 0.1,
            rewrite_dfl,
            ..DetectorConfig::default()
        };
        let mut exported = Detector::from_bytes(&bytes, config(false)).unwrap();
        let mut rewritten = Detector::from_bytes(&bytes, config(true)).unwrap();
        assert_eq!(exported.dfl_rewrite().applied, 0, "{which}");
        assert_eq!(rewritten.dfl_rewrite().applied, 1, "{which}");
        for (i, frame) in frames.iter().enumerate() {
            let a = detect(&mut exported, frame);
            found += a.len();
            assert_same_detections(&a, &detect(&mut rewritten, frame), &format!("{which} {i}"));
        }
    }
    assert!(found > 0, "the scenes gave no detections to compare");
}

#[test]
fn a_model_loaded_from_a_file_is_rewritten_too_and_can_be_left_alone() {
    let file = path("models/det_thermal_ft.onnx");
    let on = Detector::load(&file, DetectorConfig::default()).unwrap();
    assert_eq!(on.dfl_rewrite().applied, 1);
    let off = DetectorConfig {
        rewrite_dfl: false,
        ..DetectorConfig::default()
    };
    assert_eq!(Detector::load(&file, off).unwrap().dfl_rewrite().applied, 0);
}
