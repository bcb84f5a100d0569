//! Calibration without BatchNormalization statistics: a model whose BN was folded into
//! its convolutions (what most YOLO exports give) is calibrated on scenes generated in
//! process, in its modality; `auto` picks distillation or generated scenes by whether
//! the model has BN layers; the cache key names the source that runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thermalzsq::imaging::preprocess::PAD;
use thermalzsq::onnx::{DataType, Model, ValueInfoProto};
use thermalzsq::runtime::ProviderOptions;
use thermalzsq::zsq::ZsqError;
use thermalzsq::zsq::images::ImageInput;
use thermalzsq::zsq::pipeline::{
    CalibrationSource, QuantizeSettings, cache_key, check_agreement, has_batch_norm, image_input,
    quantize,
};
use thermalzsq::zsq::quantize::fold_batch_norms;
use thermalzsq::zsq::scenes::{SceneSize, SynthScenes, generate_scenes};

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

/// The hot/cold grid-cell detector (trained, so its outputs mean something).
fn detector() -> Model {
    Model::load(fixture("models", "hotspot_v8.onnx")).unwrap()
}

/// `model` with every BatchNormalization folded away by the quantizer's own folding.
fn folded(model: &Model) -> Model {
    let mut m = model.clone();
    let summary = fold_batch_norms(&mut m).unwrap();
    assert!(summary.folded > 0 && summary.kept.is_empty(), "{summary:?}");
    assert!(!has_batch_norm(&m));
    m
}

fn quick(source: CalibrationSource) -> QuantizeSettings {
    QuantizeSettings {
        source,
        provider: ProviderOptions {
            threads: 2,
            ..ProviderOptions::default()
        },
        reduce_range: false,
        ..QuantizeSettings::default()
    }
}

fn scenes(count: usize) -> SynthScenes {
    SynthScenes {
        count,
        ..SynthScenes::default()
    }
}

#[test]
fn a_folded_model_is_calibrated_on_generated_scenes_by_default_and_follows_fp32() {
    let model = folded(&detector());
    let settings = quick(CalibrationSource::Auto(scenes(12)));
    let q = quantize(&model, &settings, &mut |_| {}).unwrap();
    assert_eq!(q.report.settings.source, "synth");
    assert_eq!(q.report.calibration.source, "synth");
    assert_eq!(q.report.calibration.images, 12);
    assert_eq!(q.report.calibration.seed, Some(0));
    assert_eq!(q.report.calibration.scene_size.as_deref(), Some("640x512"));
    assert!(q.report.distillation.is_none());
    assert!(q.report.timings.iter().any(|t| t.stage == "scenes"));
    assert!(q.report.settings.canonical.contains("source=synth\n"));
    assert!(q.report.placement.int8_layers > 0);
    // int8 vs fp32 on scenes it was not calibrated on.
    let (input_name, input, _) = image_input(&model).unwrap();
    let unseen = SynthScenes {
        count: 4,
        seed: 7,
        ..SynthScenes::default()
    };
    let images = generate_scenes(&unseen, input, None, &mut |_, _| {}).unwrap();
    let check = check_agreement(
        &model,
        &q.model,
        &[],
        &input_name,
        images.view(),
        &settings.provider,
        &mut |_| {},
    )
    .unwrap();
    for o in &check.outputs {
        assert!(o.cosine >= 0.99, "{}: cosine {}", o.name, o.cosine);
    }
    let stamp = q.model.metadata("thermalzsq.quantized").unwrap();
    assert!(stamp.contains(r#""calibration":"synth""#), "{stamp}");
}

#[test]
fn distilling_a_folded_model_is_the_no_bn_error_that_names_the_way_out() {
    let model = folded(&detector());
    let err = quantize(&model, &quick(CalibrationSource::ZeroShot), &mut |_| {}).unwrap_err();
    assert!(matches!(err, ZsqError::NoBatchNorm), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("folded away") && text.contains("--calibration synth"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn generated_scenes_also_calibrate_a_model_that_has_bn() {
    let model = detector();
    assert!(has_batch_norm(&model));
    let q = quantize(
        &model,
        &quick(CalibrationSource::Synth(scenes(4))),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(q.report.calibration.source, "synth");
    assert!(q.report.folding.folded > 0);
    let check = q.report.check.as_ref().unwrap();
    assert!(check.outputs.iter().all(|o| o.cosine >= 0.99), "{check:?}");
}

#[test]
fn auto_distills_when_there_is_bn_and_generates_scenes_otherwise() {
    let with_bn = detector();
    let without = folded(&with_bn);
    let auto = CalibrationSource::Auto(scenes(5));
    assert_eq!(auto.resolve(&with_bn), CalibrationSource::ZeroShot);
    assert_eq!(auto.resolve(&without), CalibrationSource::Synth(scenes(5)));
    // The key names what runs: auto shares its key with the source it resolves to.
    let key = |m: &Model, s: CalibrationSource| cache_key(m, &quick(s)).unwrap().hex;
    assert_eq!(
        key(&with_bn, auto.clone()),
        key(&with_bn, CalibrationSource::ZeroShot)
    );
    assert_eq!(
        key(&without, auto.clone()),
        key(&without, CalibrationSource::Synth(scenes(5)))
    );
    assert_ne!(
        key(&with_bn, CalibrationSource::ZeroShot),
        key(&with_bn, CalibrationSource::Synth(scenes(5)))
    );
}

#[test]
fn mix_calibrates_on_distilled_images_and_generated_scenes_together() {
    let model = detector();
    let settings = QuantizeSettings {
        distill: thermalzsq::zsq::pipeline::DistillSettings {
            iterations: 4,
            batch: 2,
            ..Default::default()
        },
        ..quick(CalibrationSource::Mix(scenes(3)))
    };
    let q = quantize(&model, &settings, &mut |_| {}).unwrap();
    assert_eq!(q.report.settings.source, "mix");
    assert_eq!(q.report.calibration.source, "mix");
    assert_eq!(q.report.calibration.images, 2 + 3);
    assert_eq!(q.report.calibration.seed, Some(0));
    assert!(q.report.distillation.is_some());
    for stage in ["distill", "scenes"] {
        assert!(q.report.timings.iter().any(|t| t.stage == stage), "{stage}");
    }
    // The key names both parts: distillation options and the scenes.
    let canonical = &q.report.settings.canonical;
    assert!(
        canonical.contains("source=mix\n")
            && canonical.contains("distill.batch=2")
            && canonical.contains("synth.count=3"),
        "{canonical}"
    );
    let check = q.report.check.as_ref().unwrap();
    assert!(check.outputs.iter().all(|o| o.cosine >= 0.99), "{check:?}");
    // Its own cache entry: not distill's, not synth's, not another scene count's.
    let key = |s: CalibrationSource| cache_key(&model, &quick(s)).unwrap().hex;
    let mix = key(CalibrationSource::Mix(scenes(5)));
    assert_ne!(mix, key(CalibrationSource::ZeroShot));
    assert_ne!(mix, key(CalibrationSource::Synth(scenes(5))));
    assert_ne!(mix, key(CalibrationSource::Mix(scenes(6))));
    // `auto` never picks it.
    assert_eq!(
        CalibrationSource::Auto(scenes(5)).resolve(&model),
        CalibrationSource::ZeroShot
    );
}

#[test]
fn mixing_on_a_folded_model_is_the_no_bn_error_that_names_synth() {
    let model = folded(&detector());
    let err = quantize(
        &model,
        &quick(CalibrationSource::Mix(scenes(3))),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, ZsqError::NoBatchNorm), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("--calibration synth"), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

fn input(colour: bool) -> ImageInput {
    ImageInput {
        channels: 3,
        height: 64,
        width: 64,
        colour,
    }
}

#[test]
fn thermal_scenes_are_grey_and_letterboxed_like_camera_frames() {
    let s = SynthScenes {
        count: 2,
        seed: 3,
        size: SceneSize::CAMERA,
    };
    let images = generate_scenes(&s, input(false), None, &mut |_, _| {}).unwrap();
    assert_eq!(images.shape(), &[2, 3, 64, 64]);
    // 640x512 into 64x64: 64x51, centred, the border rows at the padding value.
    for image in images.outer_iter() {
        for c in 1..3 {
            assert_eq!(
                image.index_axis(ndarray::Axis(0), c),
                image.index_axis(ndarray::Axis(0), 0)
            );
        }
        assert!(
            image
                .slice(ndarray::s![.., ..6, ..])
                .iter()
                .all(|&v| v == PAD)
        );
        assert!(
            image
                .slice(ndarray::s![.., 58.., ..])
                .iter()
                .all(|&v| v == PAD)
        );
        let inside = image.slice(ndarray::s![0, 6..57, ..]);
        let (lo, hi) = inside
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        // The percentile AGC stretches each frame over (nearly) the whole 0..1.
        assert!(lo <= 0.05 && hi >= 0.95, "{lo}..{hi}");
    }
    // At the input size the scene fills the input.
    let filled = SynthScenes {
        size: SceneSize::Input,
        ..s
    };
    let images = generate_scenes(&filled, input(false), None, &mut |_, _| {}).unwrap();
    assert!(
        images
            .slice(ndarray::s![.., .., ..6, ..])
            .iter()
            .any(|&v| v != PAD)
    );
    // Same scenes, same images.
    let again = generate_scenes(&filled, input(false), None, &mut |_, _| {}).unwrap();
    assert_eq!(images, again);
}

#[test]
fn colour_models_get_the_rgb_twin() {
    let s = scenes(2);
    let rgb = generate_scenes(&s, input(true), None, &mut |_, _| {}).unwrap();
    let differs = rgb.outer_iter().all(|image| {
        image.index_axis(ndarray::Axis(0), 0) != image.index_axis(ndarray::Axis(0), 2)
    });
    assert!(differs, "red and blue planes differ in colour scenes");
}

#[test]
fn a_model_without_bn_or_a_known_modality_is_a_one_line_error() {
    let base = Model::load(fixture("onnx", "no_bn.onnx")).unwrap();
    assert!(!has_batch_norm(&base));
    // Five input channels: not an image any scene (or distillation) could fill.
    let mut five = base.clone();
    let dims = image_input(&base).unwrap().2;
    five.graph_mut().input[0] = ValueInfoProto::tensor(
        &image_input(&base).unwrap().0,
        DataType::Float,
        Some(&[dims[0].max(1), 5, dims[2], dims[3]]),
    );
    let err = quantize(&five, &quick(CalibrationSource::default()), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an image") && !err.contains('\n'), "{err}");
    // A modality no scene is rendered in.
    let mut depth = base.clone();
    depth.set_metadata("modality", "depth");
    let err = quantize(&depth, &quick(CalibrationSource::default()), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("modality `depth`") && err.contains("--calib-images") && !err.contains('\n'),
        "{err}"
    );
    // No scenes at all.
    let err = quantize(
        &base,
        &quick(CalibrationSource::Synth(scenes(0))),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("at least 1"), "{err}");
}

#[test]
fn raising_the_cancel_flag_stops_scene_generation() {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let err = generate_scenes(&scenes(8), input(false), Some(&flag), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, ZsqError::Cancelled), "{err:?}");
}
