//! Distillation on small models: the loss falls and the BN statistics come closer,
//! the same seed gives the same images, the cancel flag stops it, fixed-batch models
//! work, and bad options or models are clear errors.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use support::{Net, ints};
use thermalzsq::onnx::Model;
use thermalzsq::runtime::{Provider, ProviderOptions};
use thermalzsq::zsq::ZsqError;
use thermalzsq::zsq::autodiff::{LossTerms, Statistics};
use thermalzsq::zsq::distill::{DistillOptions, Distilled, PATIENCE, distill};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/onnx");

fn cpu() -> ProviderOptions {
    ProviderOptions {
        provider: Provider::Cpu,
        threads: 2,
        ..ProviderOptions::default()
    }
}

fn fixture(name: &str) -> Model {
    Model::load(format!("{FIXTURES}/{name}")).expect("fixture loads")
}

fn run(model: &Model, options: &DistillOptions) -> Result<Distilled, ZsqError> {
    distill(model, options, &cpu(), &mut |_| {})
}

fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let v: Vec<f32> = values.collect();
    v.iter().sum::<f32>() / v.len() as f32
}

#[test]
fn loss_falls_and_statistics_come_closer() {
    // YOLOv8-style fixture whose BN statistics come from scene images (fixed batch of
    // 1 in the file, 2 images here; metadata says thermal, so the grey prior is on).
    let model = fixture("yolov8_scenes.onnx");
    let options = DistillOptions {
        batch: 2,
        iterations: 30,
        ..DistillOptions::default()
    };
    let mut seen = Vec::new();
    let d = distill(&model, &options, &cpu(), &mut |p| seen.push(*p)).expect("distills");
    let curve = &d.loss_per_iteration;
    eprintln!(
        "yolov8 fixture, 2 images, 30 steps: loss {:.4} -> {:.4} ({:.3} s/step)",
        curve[0],
        curve.last().unwrap(),
        d.seconds_per_step
    );
    assert_eq!(curve.len(), 30);
    assert!(
        *curve.last().unwrap() < 0.5 * curve[0],
        "the loss should fall by half at least: {curve:?}"
    );
    assert_eq!(seen.len(), 30);
    assert_eq!((seen[29].iteration, seen[29].iterations), (30, 30));
    assert_eq!(seen[0].loss, curve[0]);

    let before = mean(
        d.layers
            .iter()
            .map(|l| l.mean_err_before + l.std_err_before),
    );
    let after = mean(d.layers.iter().map(|l| l.mean_err_after + l.std_err_after));
    eprintln!("mean |BN statistics error| per layer: {before:.4} -> {after:.4}");
    assert!(after < 0.7 * before, "{before} -> {after}");
    assert_eq!(d.layers.len(), 53);

    assert_eq!(d.images.shape(), &[2, 3, 64, 64]);
    assert!(d.grey, "the fixture's metadata says thermal");
    assert_eq!(d.images_per_run, 2, "the graph takes the whole batch");
    let (c0, c2) = (
        d.images.index_axis(ndarray::Axis(1), 0),
        d.images.index_axis(ndarray::Axis(1), 2),
    );
    assert_eq!(c0, c2, "grey images have three equal channels");
    assert!(d.images.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn the_same_seed_gives_the_same_images() {
    let model = fixture("resnet_tiny.onnx");
    let options = DistillOptions {
        batch: 2,
        iterations: 5,
        seed: 7,
        ..DistillOptions::default()
    };
    let a = run(&model, &options).unwrap();
    let b = run(&model, &options).unwrap();
    assert!(!a.grey, "no thermal metadata: colour images");
    let bits = |d: &Distilled| d.images.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.loss_per_iteration, b.loss_per_iteration);
    let c = run(&model, &DistillOptions { seed: 8, ..options }).unwrap();
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn the_cancel_flag_stops_at_the_next_step() {
    let model = fixture("mobilenet_tiny.onnx");
    let cancel = Arc::new(AtomicBool::new(false));
    let options = DistillOptions {
        batch: 2,
        iterations: 1000,
        cancel: Some(cancel.clone()),
        ..DistillOptions::default()
    };
    let mut steps = 0;
    let err = distill(&model, &options, &cpu(), &mut |p| {
        steps = p.iteration;
        if p.iteration == 3 {
            cancel.store(true, Ordering::Relaxed);
        }
    })
    .unwrap_err();
    assert!(matches!(err, ZsqError::Cancelled), "{err}");
    assert_eq!(steps, 3);

    // Raised from another thread while steps run: the run stops at the step after the
    // one during which the flag went up (counted in steps, not seconds: machines are noisy).
    cancel.store(false, Ordering::Relaxed);
    let done = Arc::new(AtomicUsize::new(0));
    let (flag, seen) = (cancel.clone(), done.clone());
    let stopper = std::thread::spawn(move || {
        while seen.load(Ordering::SeqCst) < 5 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        flag.store(true, Ordering::SeqCst);
        seen.load(Ordering::SeqCst)
    });
    let mut last = 0;
    let err = distill(&model, &options, &cpu(), &mut |p| {
        last = p.iteration;
        done.store(p.iteration, Ordering::SeqCst);
    })
    .unwrap_err();
    let raised_after = stopper.join().unwrap();
    assert!(matches!(err, ZsqError::Cancelled), "{err}");
    assert!(
        last <= raised_after + 1,
        "flag raised after step {raised_after}, stopped after step {last}"
    );
}

/// x [1,3,8,8] → Conv → BN → Reshape [1,4,64] → Reshape [1,4,8,8] → BN: the batch
/// of 1 is written into the graph.
fn batch_one_model() -> Model {
    let mut net = Net::new(&[1, 3, 8, 8]);
    let c = net.conv("x", 3, 4, 3, vec![ints("pads", &[1, 1, 1, 1])]);
    let a = net.bn(&c, 4);
    let flat = net.ints(&[1, 4, 64]);
    let r = net.node("Reshape", &[&a, &flat], vec![]);
    let back = net.ints(&[1, 4, 8, 8]);
    let r = net.node("Reshape", &[&r, &back], vec![]);
    let c2 = net.conv(&r, 4, 4, 3, vec![ints("pads", &[1, 1, 1, 1])]);
    let out = net.bn(&c2, 4);
    net.model(&out)
}

#[test]
fn a_graph_with_a_fixed_batch_of_one_runs_image_by_image() {
    let model = batch_one_model();
    let options = DistillOptions {
        batch: 3,
        iterations: 10,
        ..DistillOptions::default()
    };
    let d = run(&model, &options).expect("per-image statistics work one image at a time");
    assert_eq!(d.images_per_run, 1);
    assert_eq!(d.images.shape(), &[3, 3, 8, 8]);
    assert!(d.loss_per_iteration.last().unwrap() < &d.loss_per_iteration[0]);

    let err = run(
        &model,
        &DistillOptions {
            statistics: Statistics::Batch,
            ..options
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("only runs batches of 1"), "{err}");
    assert!(err.contains("use per-image statistics"), "{err}");
}

#[test]
fn every_loss_and_prior_runs() {
    let model = fixture("yolov5_c3.onnx");
    for (terms, statistics, tv) in [
        (LossTerms::Mean, Statistics::PerImage, 0.0),
        (LossTerms::Std, Statistics::Batch, 0.0),
        (LossTerms::MeanStd, Statistics::Batch, 0.5),
    ] {
        let options = DistillOptions {
            batch: 2,
            iterations: 8,
            loss: terms,
            statistics,
            total_variation: tv,
            thermal: Some(false),
            pixel_range: None,
            init_smoothness: 1,
            ..DistillOptions::default()
        };
        let d = run(&model, &options).unwrap();
        let curve = &d.loss_per_iteration;
        eprintln!(
            "{terms} over {statistics}, tv {tv}: loss {:.4} -> {:.4}",
            curve[0], curve[7]
        );
        assert!(curve[7] < curve[0], "{terms} {statistics} {tv}: {curve:?}");
        assert!(!d.grey);
    }
}

#[test]
fn distillation_stops_when_the_loss_stops_improving() {
    // The bundled detector, whose loss falls at every step of the default schedule
    // (the fixtures' first steps overshoot, which would stop it at once).
    let model = Model::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/det_thermal_ft.onnx"
    ))
    .expect("bundled model loads");
    let options = DistillOptions {
        batch: 1,
        iterations: 40,
        ..DistillOptions::default()
    };
    let all = run(&model, &options).expect("distills");
    assert_eq!(all.loss_per_iteration.len(), 40);
    assert!(
        all.loss_per_iteration.windows(2).all(|w| w[1] < w[0]),
        "{:?}",
        all.loss_per_iteration
    );
    // The improvement over the last PATIENCE steps, at every step of the full run: the
    // early stop must end at the first step where it falls under the threshold.
    let mut best = Vec::new();
    for &loss in &all.loss_per_iteration {
        best.push(loss.min(best.last().copied().unwrap_or(f32::INFINITY)));
    }
    let gain = |n: usize| 1.0 - best[n] / best[n - PATIENCE];
    let threshold = gain(PATIENCE + 10) + 1e-4;
    let expected = (PATIENCE..40).find(|&n| gain(n) < threshold).unwrap() + 1;
    assert!(expected < 40, "the loss must slow down within 40 steps");
    let early = run(
        &model,
        &DistillOptions {
            min_improvement: threshold,
            ..options.clone()
        },
    )
    .expect("distills");
    eprintln!(
        "min improvement {threshold:.4} over {PATIENCE} steps: {} of 40 steps, loss {:.4} (all steps {:.4})",
        early.loss_per_iteration.len(),
        early.loss_per_iteration.last().unwrap(),
        all.loss_per_iteration.last().unwrap()
    );
    assert_eq!(early.loss_per_iteration.len(), expected);
    // The same steps up to the stop (same seed and schedule), and images to calibrate on.
    assert_eq!(
        early.loss_per_iteration[..],
        all.loss_per_iteration[..expected]
    );
    assert!(early.images.iter().all(|v| v.is_finite()));
    assert_eq!(early.images.shape(), all.images.shape());
}

#[test]
fn bad_models_and_options_are_named() {
    let err = run(&fixture("no_bn.onnx"), &DistillOptions::default()).unwrap_err();
    assert!(matches!(err, ZsqError::NoBatchNorm), "{err}");

    let model = fixture("resnet_tiny.onnx");
    for (options, expected) in [
        (
            DistillOptions {
                batch: 0,
                ..Default::default()
            },
            "at least one image",
        ),
        (
            DistillOptions {
                learning_rate: -1.0,
                ..Default::default()
            },
            "learning rate -1",
        ),
        (
            DistillOptions {
                warmup: 1.5,
                ..Default::default()
            },
            "warmup 1.5",
        ),
        (
            DistillOptions {
                init_smoothness: 0,
                ..Default::default()
            },
            "grid spacing",
        ),
        (
            DistillOptions {
                pixel_range: Some([1.0, 0.0]),
                ..Default::default()
            },
            "not an interval",
        ),
        (
            DistillOptions {
                min_improvement: 1.0,
                ..Default::default()
            },
            "minimum improvement 1",
        ),
        (
            DistillOptions {
                size: Some([0, 32]),
                ..Default::default()
            },
            "size must not be zero",
        ),
    ] {
        let err = run(&model, &options).unwrap_err();
        assert!(matches!(err, ZsqError::Options(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn attention_and_end_to_end_fixtures_distill() {
    // YOLO11: the gradient flows back through C2PSA's MatMuls and Softmax; its export
    // fixed the attention's view sizes for one image, so it runs image by image.
    // YOLOv10: the end-to-end selection (TopK, Gather) is past every BN layer.
    for (file, layers, per_run) in [("yolo11_c2psa.onnx", 76, 1), ("yolov10_e2e.onnx", 59, 2)] {
        let options = DistillOptions {
            batch: 2,
            iterations: 15,
            ..DistillOptions::default()
        };
        let d = run(&fixture(file), &options).unwrap_or_else(|e| panic!("{file}: {e}"));
        let curve = &d.loss_per_iteration;
        eprintln!(
            "{file}: 2 images, 15 steps: loss {:.4} -> {:.4}",
            curve[0],
            curve.last().unwrap()
        );
        assert!(
            *curve.last().unwrap() < 0.7 * curve[0],
            "{file}: the loss should fall: {curve:?}"
        );
        assert_eq!(d.layers.len(), layers, "{file}");
        assert_eq!(d.images_per_run, per_run, "{file}");
        assert_eq!(d.images.shape(), &[2, 3, 64, 64]);
    }
}
