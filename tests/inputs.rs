//! Inputs other than a fixed 1×3×H×W: single-channel models (1×1×H×W, thermal-only
//! training) through pre-processing, detection, distillation and quantization; models
//! with a symbolic height and width given a size ([`Model::fix_input_size`]); and the
//! one-line errors for inputs nothing here can run. Fixtures from
//! tools/fixtures/export_input_fixtures.py.

use std::path::{Path, PathBuf};

use thermalzsq::detect::{Detector, DetectorConfig};
use thermalzsq::imaging::frame::encode_grey;
use thermalzsq::imaging::preprocess::Preprocess;
use thermalzsq::imaging::{Frame, FrameRef, PixelFormat};
use thermalzsq::onnx::{DimValue, InputSize, Model, TypeValue};
use thermalzsq::runtime::{Provider, ProviderOptions};
use thermalzsq::zsq::distill::{DistillOptions, distill};
use thermalzsq::zsq::pipeline::{CalibrationSource, QuantizeSettings, cache_key, quantize};
use thermalzsq::zsq::scenes::SynthScenes;

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

fn cpu() -> ProviderOptions {
    ProviderOptions {
        provider: Provider::Cpu,
        threads: 2,
        ..ProviderOptions::default()
    }
}

const fn size(width: usize, height: usize) -> InputSize {
    InputSize { width, height }
}

/// A 640×512 grey scene: mid-grey with a noise texture, a hot square on the hotspot
/// detectors' grid cell at frame (192..256, 64..128), a cold one at (448..512, 320..384).
fn scene() -> Vec<u8> {
    let (w, h) = (640usize, 512usize);
    (0..w * h)
        .map(|i| match (i % w, i / w) {
            (x, y) if (192..256).contains(&x) && (64..128).contains(&y) => 250,
            (x, y) if (448..512).contains(&x) && (320..384).contains(&y) => 5,
            _ => 120 + (i * 7919 % 17) as u8,
        })
        .collect()
}

fn with_frame<T>(format: PixelFormat, f: impl FnOnce(&FrameRef) -> T) -> T {
    let planes = encode_grey(format, 640, 512, &scene());
    let frame = Frame::new(
        format,
        640,
        512,
        planes.iter().map(|(d, s)| (d.as_slice(), *s)).collect(),
    )
    .unwrap();
    f(&frame)
}

#[test]
fn a_one_channel_input_is_channel_0_of_the_three_channel_one() {
    for format in [
        PixelFormat::Gray16Le,
        PixelFormat::Gray8,
        PixelFormat::I420,
        PixelFormat::Rgb,
    ] {
        let (mut one, mut three) = (
            Preprocess::new(320, 256, 1, false),
            Preprocess::new(320, 256, 3, false),
        );
        let mut a = vec![0.0; one.tensor_len()];
        let mut b = vec![0.0; three.tensor_len()];
        let (la, lb) = with_frame(format, |f| (one.run(f, &mut a), three.run(f, &mut b)));
        assert_eq!(la, lb);
        assert_eq!(a.len(), 320 * 256);
        assert!(a == b[..a.len()], "{format}");
        assert!(
            a.iter().any(|&v| v > 0.9),
            "{format}: the hot square is there"
        );
    }
}

#[test]
fn a_one_channel_detector_boxes_the_bright_square() {
    let mut detector = Detector::load(
        &fixture("models", "hotspot_v8_mono.onnx"),
        DetectorConfig::default(),
    )
    .unwrap();
    assert_eq!(detector.input_shape(), [1, 1, 320, 320]);
    for format in [PixelFormat::Gray16Le, PixelFormat::Gray8] {
        let dets = with_frame(format, |f| detector.detect(f).unwrap());
        let boxes: Vec<(&str, [f32; 4])> =
            dets.iter().map(|d| (d.label.as_str(), d.bbox)).collect();
        assert_eq!(boxes.len(), 2, "{format}: {boxes:?}");
        assert!(
            boxes.contains(&("hot", [192.0, 64.0, 256.0, 128.0])),
            "{format}: {boxes:?}"
        );
        assert!(
            boxes.contains(&("cold", [448.0, 320.0, 512.0, 384.0])),
            "{format}: {boxes:?}"
        );
    }
}

#[test]
fn a_dynamic_detector_runs_at_the_size_it_is_given_and_errors_without_one() {
    let path = fixture("models", "hotspot_v8_dynamic.onnx");
    let e = Detector::load(&path, DetectorConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("height and width are symbolic") && e.contains("input-size=WxH"),
        "{e}"
    );
    let config = DetectorConfig {
        input_size: Some(size(320, 256)),
        ..DetectorConfig::default()
    };
    let mut fixed = Detector::load(
        &fixture("models", "hotspot_v8.onnx"),
        DetectorConfig::default(),
    )
    .unwrap();
    let fixed = with_frame(PixelFormat::Gray8, |f| fixed.detect(f).unwrap());
    assert_eq!(fixed.len(), 2);
    for mut detector in [
        Detector::load(&path, config.clone()).unwrap(),
        Detector::from_bytes(&std::fs::read(&path).unwrap(), config.clone()).unwrap(),
    ] {
        assert_eq!(detector.input_shape(), [1, 3, 256, 320]);
        let dets = with_frame(PixelFormat::Gray8, |f| detector.detect(f).unwrap());
        let boxes = |d: &[thermalzsq::detect::Detection]| {
            let mut b: Vec<(String, [f32; 4])> =
                d.iter().map(|d| (d.label.clone(), d.bbox)).collect();
            b.sort_by(|x, y| x.0.cmp(&y.0));
            b
        };
        assert_eq!(boxes(&dets), boxes(&fixed));
    }
}

/// The dims of the model's first input, `-1` where not a number.
fn input_dims(model: &Model) -> Vec<i64> {
    model.graph().input[0]
        .r#type
        .as_ref()
        .and_then(|t| t.shape())
        .unwrap()
        .dim
        .iter()
        .map(|d| match d.value {
            Some(DimValue::Value(v)) => v,
            _ => -1,
        })
        .collect()
}

#[test]
fn an_input_size_fixes_symbolic_dims_and_must_fit_the_stride_and_a_fixed_size() {
    let dynamic = Model::load(fixture("models", "hotspot_v8_dynamic.onnx")).unwrap();
    assert!(dynamic.has_symbolic_input_size());
    let mut m = dynamic.clone();
    assert!(m.fix_input_size(size(640, 480)).unwrap());
    assert_eq!(input_dims(&m), [1, 3, 480, 640]);
    assert!(!m.has_symbolic_input_size());
    assert!(m.graph().value_info.is_empty(), "stale shape hints dropped");
    // Fixing again at the same size changes nothing; another size is refused.
    let bytes = m.to_bytes();
    assert!(!m.fix_input_size(size(640, 480)).unwrap());
    assert_eq!(m.to_bytes(), bytes);
    let e = m.fix_input_size(size(320, 320)).unwrap_err().to_string();
    assert_eq!(
        e,
        "input 'images' has a fixed size of 640x480, not 320x320: leave the input size unset to run it at 640x480"
    );

    // The stride: metadata `stride` (this fixture says 32), else 32.
    let e = dynamic.clone().fix_input_size(size(330, 320)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input size 330x320 is not a multiple of the model's stride 32; use e.g. 352x320"
    );
    let mut coarse = dynamic.clone();
    coarse.set_metadata("stride", "64");
    let e = coarse
        .fix_input_size(size(320, 288))
        .unwrap_err()
        .to_string();
    assert!(e.contains("stride 64; use e.g. 320x320"), "{e}");
    coarse.set_metadata("stride", "[8, 16, 32]");
    let e = coarse
        .fix_input_size(size(320, 320))
        .unwrap_err()
        .to_string();
    assert!(e.contains("metadata `stride` does not read"), "{e}");
}

fn mono() -> Model {
    Model::load(fixture("onnx", "yolov8_mono.onnx")).unwrap()
}

#[test]
fn a_one_channel_model_distills_one_channel_without_the_grey_prior() {
    let model = mono();
    for thermal in [None, Some(true)] {
        let options = DistillOptions {
            batch: 2,
            iterations: 12,
            thermal,
            ..DistillOptions::default()
        };
        let d = distill(&model, &options, &cpu(), &mut |_| {}).unwrap();
        assert_eq!(d.images.shape(), [2, 1, 64, 64]);
        assert!(!d.grey, "nothing to tie on one channel");
        let curve = &d.loss_per_iteration;
        assert!(
            curve.last().unwrap() < &(0.8 * curve[0]),
            "the loss falls: {curve:?}"
        );
    }
}

fn quick(source: CalibrationSource) -> QuantizeSettings {
    QuantizeSettings {
        source,
        provider: cpu(),
        reduce_range: false,
        ..QuantizeSettings::default()
    }
}

#[test]
fn a_one_channel_model_quantizes_from_distilled_images_and_from_generated_scenes() {
    let model = mono();
    let mut distilled = quick(CalibrationSource::ZeroShot);
    distilled.distill.iterations = 10;
    distilled.distill.batch = 4;
    let scenes = quick(CalibrationSource::Synth(SynthScenes {
        count: 4,
        ..SynthScenes::default()
    }));
    for settings in [distilled, scenes] {
        let q = quantize(&model, &settings, &mut |_| {}).unwrap();
        let kind = settings.source.kind();
        assert_eq!(q.report.model.shape, [1, 1, 64, 64], "{kind}");
        assert_eq!(q.report.calibration.images, 4, "{kind}");
        let check = q.report.check.unwrap();
        assert!(
            check.outputs[0].cosine > 0.9,
            "{kind}: {:?}",
            check.outputs[0]
        );
        if let Some(d) = q.report.distillation {
            assert!(!d.thermal_prior);
        }
    }
}

#[test]
fn a_dynamic_model_quantizes_at_the_size_given_and_the_size_is_in_the_key() {
    let model = Model::load(fixture("models", "hotspot_v8_dynamic.onnx")).unwrap();
    let mut settings = quick(CalibrationSource::ZeroShot);
    settings.distill.iterations = 3;
    settings.distill.batch = 2;
    let e = quantize(&model, &settings, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("symbolic") && e.contains("--size WxH") && !e.contains('\n'),
        "{e}"
    );

    settings.input_size = Some(size(320, 256));
    let q = quantize(&model, &settings, &mut |_| {}).unwrap();
    assert_eq!(input_dims(&q.model), [1, 3, 256, 320]);
    assert_eq!(q.report.model.shape, [1, 3, 256, 320]);
    // The report and the stamp name the model as given, not the sized copy.
    assert_eq!(
        q.report.model.sha256,
        thermalzsq::zsq::cache::sha256_hex(&model.to_bytes())
    );
    assert!(q.report.check.unwrap().outputs[0].cosine > 0.99);

    let key = cache_key(&model, &settings).unwrap();
    assert!(
        key.canonical.contains("input_size=320x256"),
        "{}",
        key.canonical
    );
    settings.input_size = Some(size(320, 320));
    assert_ne!(key, cache_key(&model, &settings).unwrap());
}

/// `model` with its input's channel axis set to `channels`.
fn with_channels(model: &Model, channels: i64) -> Model {
    let mut m = model.clone();
    let input = &mut m.graph_mut().input[0];
    if let Some(TypeValue::Tensor(t)) = &mut input.r#type.as_mut().unwrap().value {
        t.shape.as_mut().unwrap().dim[1].value = Some(DimValue::Value(channels));
    }
    m
}

#[test]
fn inputs_nothing_here_can_run_are_one_line_errors_that_say_what_to_do() {
    // BN folded away and a modality that is neither thermal nor rgb: no source fits.
    let mut odd = Model::load(fixture("models", "hotspot_v8_nobn.onnx")).unwrap();
    odd.set_metadata("modality", "swir");
    let e = quantize(&odd, &quick(CalibrationSource::default()), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("modality `swir`")
            && e.contains("set the metadata `modality` to thermal or rgb")
            && e.contains("--calib-images DIR")
            && !e.contains('\n'),
        "{e}"
    );

    // Two or four channels: neither grey nor RGB.
    let hotspot = Model::load(fixture("models", "hotspot_v8_nobn.onnx")).unwrap();
    for channels in [2, 4] {
        let m = with_channels(&hotspot, channels);
        let e = quantize(&m, &quick(CalibrationSource::default()), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{channels} channels"))
                && e.contains("re-export")
                && !e.contains('\n'),
            "{e}"
        );
        let e = Detector::from_bytes(&m.to_bytes(), DetectorConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!("{channels} channels"))
                && e.contains("re-export")
                && !e.contains('\n'),
            "{e}"
        );
    }
}
