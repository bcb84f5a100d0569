//! Distillation cost: building the gradient graph, one step (loss + gradient of 8
//! images, Adam on the host) and, once, a whole default distillation.
//!
//! Run: `cargo bench --bench distill`. Models: the committed YOLOv8-style fixture
//! (8×3×64×64), the bundled demo detector `models/det_thermal_ft.onnx` when present,
//! and any model named by `THERMALZSQ_BENCH_MODEL` (e.g. a YOLOv8n-size export at
//! 320×320), each at batch 8 and its own resolution.

use std::path::PathBuf;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use thermalzsq::onnx::Model;
use thermalzsq::runtime::{Provider, ProviderOptions};
use thermalzsq::zsq::autodiff::{GradientSession, ImageInput, LossSpec, build_gradient_graph};
use thermalzsq::zsq::bn::find_bn_layers;
use thermalzsq::zsq::distill::{DistillOptions, distill};

const BATCH: usize = 8;

fn cpu() -> ProviderOptions {
    ProviderOptions {
        provider: Provider::Cpu,
        ..ProviderOptions::default()
    }
}

/// (label, path) of every model to measure.
fn models() -> Vec<(String, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut models = vec![(
        "yolov8 fixture".to_string(),
        root.join("tests/fixtures/onnx/yolov8_scenes.onnx"),
    )];
    let bundled = root.join("models/det_thermal_ft.onnx");
    if bundled.exists() {
        models.push(("det_thermal_ft".into(), bundled));
    }
    if let Some(path) = std::env::var_os("THERMALZSQ_BENCH_MODEL") {
        let path = PathBuf::from(path);
        let label = path
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned());
        models.push((label, path));
    }
    models
}

fn shape(model: &Model) -> [usize; 4] {
    let input = ImageInput::of(model).expect("image input");
    [
        BATCH,
        input.channels,
        input.height.expect("fixed height"),
        input.width.expect("fixed width"),
    ]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("distill");
    group.sample_size(10);
    for (label, path) in models() {
        let model = Model::load(&path).expect("model loads");
        let layers = find_bn_layers(&model).expect("BN layers");
        let shape = shape(&model);
        let spec = LossSpec::default();
        let name = format!(
            "{label} {}x{}x{}x{}",
            shape[0], shape[1], shape[2], shape[3]
        );
        group.bench_function(format!("build gradient graph / {name}"), |b| {
            b.iter(|| build_gradient_graph(&model, &layers, shape, &spec, &cpu()).unwrap())
        });
        let graph = build_gradient_graph(&model, &layers, shape, &spec, &cpu()).unwrap();
        eprintln!(
            "{name}: {} forward nodes, {} loss and backward nodes",
            graph.forward_nodes, graph.backward_nodes
        );
        group.bench_function(format!("create session / {name}"), |b| {
            b.iter(|| GradientSession::new(&graph, &cpu()).unwrap())
        });
        let mut session = GradientSession::new(&graph, &cpu()).unwrap();
        let len: usize = shape.iter().product();
        let images: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let mut gradient = vec![0.0; len];
        group.bench_function(format!("loss + gradient / {name}"), |b| {
            b.iter(|| session.run(&images, &mut gradient).unwrap())
        });
    }
    group.finish();
}

/// One default distillation per model (too long for criterion's repeated samples):
/// what `zsq quantize` pays before calibration.
fn whole_distillation() {
    for (label, path) in models() {
        let model = Model::load(&path).expect("model loads");
        let options = DistillOptions {
            batch: BATCH,
            ..DistillOptions::default()
        };
        let start = Instant::now();
        let d = distill(&model, &options, &cpu(), &mut |_| {}).expect("distills");
        let curve = &d.loss_per_iteration;
        let at = |i: usize| curve[i.min(curve.len() - 1)];
        println!(
            "distill {label}: {} images × {} steps in {:.1} s (graph + session {:.2} s, {:.3} s/step); \
             loss {:.4} → {:.4} (step 10: {:.4}, 30: {:.4})",
            BATCH,
            options.iterations,
            start.elapsed().as_secs_f64(),
            d.build_seconds,
            d.seconds_per_step,
            curve[0],
            curve[curve.len() - 1],
            at(10),
            at(30),
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    whole_distillation();
    Criterion::default().configure_from_args().final_summary();
}
