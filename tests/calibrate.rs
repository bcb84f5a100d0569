//! Calibration on ONNX Runtime: the streamed statistics equal a direct computation over
//! every value of every image, observers pick what their definitions say, and bad
//! calibration input is refused clearly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Axis;
use ort::value::TensorRef;
use thermalzsq::onnx::{DataType, DimValue, Model};
use thermalzsq::runtime::{ProviderOptions, load_session_from_memory};
use thermalzsq::zsq::calibrate::{BINS_PER_SIGN, CalibrationOptions, Observer, calibrate};
use thermalzsq::zsq::images::test_pattern;
use thermalzsq::zsq::pipeline::{CalibrationSource, QuantizeSettings, quantize};
use thermalzsq::zsq::quantize::{fold_batch_norms, plan_qdq};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

/// The folded YOLOv8 fixture and the tensors the quantizer observes.
fn yolo() -> (Model, Vec<String>) {
    let mut model = Model::load(fixture("yolov8_c2f_dfl.onnx")).unwrap();
    fold_batch_norms(&mut model).unwrap();
    let plan = plan_qdq(model.graph()).unwrap();
    (model, plan.activations)
}

/// Every value of each tensor over all images, the slow way.
fn all_values(model: &Model, tensors: &[String], images: &ndarray::Array4<f32>) -> Vec<Vec<f32>> {
    let mut exposed = model.clone();
    for t in tensors {
        if !exposed.graph().output.iter().any(|o| o.name() == t) {
            exposed.graph_mut().add_output(t, DataType::Float).unwrap();
        }
    }
    let mut s = load_session_from_memory(&exposed.to_bytes(), &ProviderOptions::default()).unwrap();
    let mut values = vec![Vec::new(); tensors.len()];
    for image in images.axis_chunks_iter(Axis(0), 1) {
        let image = image.as_standard_layout();
        let shape: Vec<usize> = image.shape().to_vec();
        let out = s
            .session
            .run(ort::inputs!["images" => TensorRef::from_array_view((shape, image.as_slice().unwrap())).unwrap()])
            .unwrap();
        for (t, v) in tensors.iter().zip(values.iter_mut()) {
            v.extend_from_slice(out[t.as_str()].try_extract_tensor::<f32>().unwrap().1);
        }
    }
    values
}

fn options(observer: Observer, symmetric: bool) -> CalibrationOptions {
    CalibrationOptions {
        observer,
        symmetric,
        provider: ProviderOptions {
            threads: 2,
            ..ProviderOptions::default()
        },
        cancel: None,
    }
}

#[test]
fn streamed_statistics_equal_a_direct_computation() {
    let (model, tensors) = yolo();
    let images = test_pattern(5, 3, 64, 64, 11);
    let direct = all_values(&model, &tensors, &images);
    let mut calls = Vec::new();
    let minmax = calibrate(
        &model,
        &tensors,
        images.view(),
        &options(Observer::MinMax, false),
        &mut |d, t| calls.push((d, t)),
    )
    .unwrap();
    assert_eq!(calls.last(), Some(&(5, 5)), "one pass for minmax");
    assert_eq!(minmax.passes, 1);
    for (t, values) in tensors.iter().zip(&direct) {
        let r = minmax.tensors[t];
        let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!((r.observed.min, r.observed.max), (lo, hi), "{t}");
        assert_eq!((r.range.min, r.range.max), (lo, hi), "{t}");
    }
    // Percentiles from the streamed histograms, against sorting every value.
    let p = 99.9;
    for symmetric in [false, true] {
        let cal = calibrate(
            &model,
            &tensors,
            images.view(),
            &options(Observer::Percentile(p), symmetric),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(cal.passes, 2);
        // (The image input keeps its observed range: see the next test.)
        for (t, values) in tensors.iter().zip(&direct).filter(|(t, _)| *t != "images") {
            let r = cal.tensors[t].range;
            let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            // Within a bin the histogram interpolates linearly: at most a bin off,
            // plus the gap to the neighbouring sorted value.
            let bin = amax / BINS_PER_SIGN as f32;
            let at = |v: &mut Vec<f32>, q: f64| {
                v.sort_by(f32::total_cmp);
                v[((q * (v.len() - 1) as f64).round()) as usize]
            };
            if symmetric {
                let mut abs: Vec<f32> = values.iter().map(|v| v.abs()).collect();
                let t_direct = at(&mut abs, p / 100.0);
                assert!(
                    (r.max - t_direct).abs() <= 2.0 * bin + 1e-6,
                    "{t}: {r:?} vs {t_direct}"
                );
                assert_eq!(r.min, -r.max);
            } else {
                let mut v = values.clone();
                let (lo, hi) = (at(&mut v, 1.0 - p / 100.0), at(&mut v, p / 100.0));
                assert!((r.max - hi).abs() <= 2.0 * bin + 1e-6, "{t}: {r:?} vs {hi}");
                assert!((r.min - lo).abs() <= 2.0 * bin + 1e-6, "{t}: {r:?} vs {lo}");
            }
        }
    }
}

#[test]
fn histogram_observers_clip_inside_the_observed_range_but_not_the_image_input() {
    let (model, tensors) = yolo();
    let images = test_pattern(4, 3, 64, 64, 2);
    for observer in [Observer::Entropy, Observer::Mse] {
        for symmetric in [false, true] {
            let cal = calibrate(
                &model,
                &tensors,
                images.view(),
                &options(observer, symmetric),
                &mut |_, _| {},
            )
            .unwrap();
            let mut clipped = 0;
            for (t, r) in &cal.tensors {
                let (o, c) = (r.observed, r.range);
                let amax = o.min.abs().max(o.max.abs());
                let slack = 2.0 * amax / BINS_PER_SIGN as f32 + 1e-6;
                if symmetric {
                    assert!(
                        c.max <= amax + slack && c.min == -c.max,
                        "{observer} {t}: {r:?}"
                    );
                } else {
                    assert!(
                        c.min >= o.min.min(0.0) - slack && c.max <= o.max.max(0.0) + slack,
                        "{observer} {t}: {r:?}"
                    );
                }
                assert!(c.max > c.min || amax == 0.0, "{observer} {t}: {r:?}");
                clipped += usize::from(c.max < o.max - slack);
            }
            if observer == Observer::Entropy {
                assert!(clipped > 0, "entropy clips some tails");
            }
            // ...but never the image input: pixels have no outliers to clip.
            let input = &cal.tensors["images"];
            let observed = if symmetric {
                let a = input.observed.max.abs().max(input.observed.min.abs());
                (-a, a)
            } else {
                (input.observed.min, input.observed.max)
            };
            assert_eq!(
                (input.range.min, input.range.max),
                observed,
                "{observer} symmetric={symmetric}"
            );
        }
    }
}

#[test]
fn calibration_input_must_fit_the_model() {
    let (model, tensors) = yolo();
    let wrong = test_pattern(2, 3, 32, 32, 1);
    let err = calibrate(
        &model,
        &tensors,
        wrong.view(),
        &options(Observer::MinMax, false),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("3x32x32") && err.contains("images"), "{err}");
    let none = test_pattern(0, 3, 64, 64, 1);
    let err = calibrate(
        &model,
        &tensors,
        none.view(),
        &options(Observer::MinMax, false),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("0 calibration images"), "{err}");
}

#[test]
fn a_symbolic_batch_is_calibrated_one_image_at_a_time() {
    let mut model = Model::load(fixture("resnet_tiny.onnx")).unwrap();
    let shape = model.graph_mut().input[0]
        .r#type
        .as_mut()
        .and_then(|t| match &mut t.value {
            Some(thermalzsq::onnx::TypeValue::Tensor(t)) => t.shape.as_mut(),
            _ => None,
        })
        .unwrap();
    shape.dim[0].value = Some(DimValue::Param("batch".into()));
    let settings = QuantizeSettings {
        observer: Observer::Mse,
        source: CalibrationSource::Tensor(Arc::new(test_pattern(3, 3, 32, 32, 4))),
        check_images: 2,
        ..QuantizeSettings::default()
    };
    let q = quantize(&model, &settings, &mut |_| {}).unwrap();
    assert_eq!(q.report.calibration.images, 3);
    assert_eq!(q.report.model.shape, [-1, 3, 32, 32]);
    assert!(
        q.report.min_cosine().unwrap() > 0.99,
        "{:?}",
        q.report.check
    );
}
