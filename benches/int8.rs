//! fp32 vs int8 inference latency of the same detector, side by side in one run:
//! u8s8 (the CPU profile) and s8s8 (the TensorRT profile, which ONNX Runtime's CPU EP
//! does not fuse on x86), each as exported and with its DFL decoding rewritten the way
//! `Detector` loads it (`detect::dfl`, "+dfl"); u8s8 also with its SiLUs as one pass
//! (`detect::silu`, "+dfl+silu", what a CPU `Detector` runs). Run:
//! `cargo bench --bench int8`.
//!
//! The models are `models/det_thermal_ft.onnx` (else the tiny YOLOv8 fixture, 64×64:
//! only a smoke test of the bench) and `ZSQ_BENCH_MODEL` when set (e.g. a YOLOv8n-size
//! export at 320×320, kept out of the repository). Calibration uses
//! `ZSQ_BENCH_IMAGES` (a directory of PNGs, 100 at most) when set, else 16 structured
//! test images. `ZSQ_BENCH_THREADS` sets the intra-op threads (default: one per core).
//! Sessions are built with intra-op spinning off, so that the idle sessions' threads do
//! not steal cores from the one being timed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ort::session::Session;
use ort::value::TensorRef;
use thermalzsq::detect::dfl::rewrite_dfl;
use thermalzsq::detect::silu::rewrite_silu;
use thermalzsq::onnx::Model;
use thermalzsq::runtime::{Provider, ProviderOptions, load_session_with_config};
use thermalzsq::zsq::calibrate::Observer;
use thermalzsq::zsq::images::test_pattern;
use thermalzsq::zsq::pipeline::{CalibrationSource, QuantizeSettings, image_input, quantize};
use thermalzsq::zsq::qparams::Precision;
use thermalzsq::zsq::report::runtime_op_counts;

fn model_paths() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = root.join("models/det_thermal_ft.onnx");
    let mut paths = vec![if demo.exists() {
        demo
    } else {
        root.join("tests/fixtures/onnx/yolov8_c2f_dfl.onnx")
    }];
    paths.extend(std::env::var_os("ZSQ_BENCH_MODEL").map(PathBuf::from));
    paths
}

/// Adds a variant as it is and, when it has a DFL decoding, rewritten ("+dfl"); with
/// `silu`, that one again with its quantized SiLUs as one pass ("+silu").
fn push_rewritten(variants: &mut Vec<(String, Vec<u8>)>, name: String, bytes: Vec<u8>, silu: bool) {
    let mut model = Model::from_bytes(&bytes).expect("model");
    variants.push((name.clone(), bytes));
    let mut name = name;
    if rewrite_dfl(&mut model).applied > 0 {
        name += "+dfl";
        variants.push((name.clone(), model.to_bytes()));
    }
    if silu && rewrite_silu(&mut model).applied > 0 {
        variants.push((format!("{name}+silu"), model.to_bytes()));
    }
}

/// A CPU session as `Detector` makes one (so it has thermalzsq's operators).
fn session(bytes: &[u8], threads: usize) -> Session {
    let options = ProviderOptions {
        provider: Provider::Cpu,
        threads,
        ..ProviderOptions::default()
    };
    let spinning = [("session.intra_op.allow_spinning", "0")];
    load_session_with_config(bytes, &options, &spinning)
        .expect("session")
        .session
}

fn bench(c: &mut Criterion) {
    let threads: usize = std::env::var("ZSQ_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    for path in model_paths() {
        bench_model(c, &path, threads);
    }
}

fn bench_model(c: &mut Criterion, path: &Path, threads: usize) {
    let model = Model::load(path).expect("model");
    let (input_name, input, _) = image_input(&model).expect("an image model");
    let source = match std::env::var_os("ZSQ_BENCH_IMAGES") {
        Some(dir) => CalibrationSource::ImageDir {
            dir: dir.into(),
            count: 100,
        },
        None => CalibrationSource::Tensor(Arc::new(test_pattern(
            16,
            input.channels,
            input.height,
            input.width,
            1,
        ))),
    };
    let image = test_pattern(1, input.channels, input.height, input.width, 99);
    let dims = [1, input.channels, input.height, input.width];
    let data = image.as_slice().unwrap();
    let fp32 = model.to_bytes();
    let mut variants = Vec::new();
    push_rewritten(&mut variants, "fp32".into(), fp32, false);
    for precision in [Precision::U8S8, Precision::S8S8] {
        let settings = QuantizeSettings {
            precision,
            observer: Observer::Percentile(Observer::DEFAULT_PERCENTILE),
            source: source.clone(),
            provider: ProviderOptions {
                threads,
                ..ProviderOptions::default()
            },
            check_images: 0,
            ..QuantizeSettings::default()
        };
        let q = quantize(&model, &settings, &mut |_| {}).expect("quantize");
        let ops = runtime_op_counts(&q.bytes, threads).expect("optimised graph");
        eprintln!("{precision}: ONNX Runtime CPU graph: {ops:?}");
        let silu = precision == Precision::U8S8;
        push_rewritten(&mut variants, precision.to_string(), q.bytes, silu);
    }
    let mut group = c.benchmark_group(format!(
        "{} {}x{}x{}",
        path.file_name().unwrap().to_string_lossy(),
        input.channels,
        input.height,
        input.width
    ));
    for (name, bytes) in &variants {
        let mut s = session(bytes, threads);
        group.bench_function(name.as_str(), |b| {
            b.iter(|| {
                let input = TensorRef::from_array_view((dims, data)).unwrap();
                let out = s.run(ort::inputs![input_name.as_str() => input]).unwrap();
                std::hint::black_box(out.len());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
