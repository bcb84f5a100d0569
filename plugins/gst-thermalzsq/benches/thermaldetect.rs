//! Frames per second of `thermaldetect` against a bare ONNX Runtime session on the same
//! frame and model: what the element costs on top of inference (AGC, letterbox,
//! decoding, NMS, drawing, metas, messages), without and with `pipelined`.
//!
//! Model: `THERMALZSQ_BENCH_MODEL` or the bundled demo detector; inference threads:
//! `THERMALZSQ_BENCH_THREADS` (default 0, one per core; `pipelined` pays when the
//! helper has a core of its own, e.g. 1 on this 2-core machine). Frame: 640x512
//! GRAY16_LE of a `zsq synth` recording (a FLIR Boson's radiometric stream). The bare
//! loop runs the session the element runs (shared: the same rewritten graph and
//! threads). The three run one after another; `examples/overhead.rs` interleaves them,
//! which a busy machine needs for a fair ratio.
//! Run: `make bench` or `cargo bench -p gst-plugin-thermalzsq`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gst_check::Harness;
use ort::value::TensorRef;
use thermalzsq::detect::{Detector, DetectorConfig};
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::runtime::ProviderOptions;
use thermalzsq::synth::Recording;

const W: usize = 640;
const H: usize = 512;

fn model() -> PathBuf {
    std::env::var_os("THERMALZSQ_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/det_thermal_ft.onnx")
        })
}

/// Frame 0 of a `zsq synth` recording as GRAY16_LE bytes.
fn frame_bytes() -> Vec<u8> {
    let recording = Recording::new(7, W as u32, H as u32).expect("a recording");
    recording
        .frame(0)
        .thermal
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn bench(c: &mut Criterion) {
    gst::init().unwrap();
    gstthermalzsq::plugin_register_static().unwrap();
    let model = model();
    let bytes = frame_bytes();
    let threads: u32 = std::env::var("THERMALZSQ_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let options = ProviderOptions {
        provider: "cpu".parse().unwrap(),
        threads: threads as usize,
        ..Default::default()
    };

    let mut group = c.benchmark_group(format!(
        "thermaldetect 640x512 GRAY16_LE, {}, threads {threads}",
        model.file_name().unwrap().to_string_lossy()
    ));
    group
        .throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(10));

    // The engine's detector (AGC + letterbox + inference + decoding + NMS), sharing its
    // session with the element below.
    let config = DetectorConfig {
        provider: options,
        share_session: true,
        ..Default::default()
    };
    let mut detector = Detector::load(&model, config).unwrap();
    let frame = Frame::new(PixelFormat::Gray16Le, W, H, vec![(bytes.as_slice(), 2 * W)]).unwrap();

    // Inference alone: the input tensor made once, then only session.run.
    let shape = detector.input_shape();
    let mut pre = detector.preprocess();
    let mut tensor = vec![0.0f32; pre.tensor_len()];
    pre.run(&frame, &mut tensor);
    let session = detector.session().clone();
    let name = session.info().inputs[0].name.clone();
    group.bench_function("bare ONNX Runtime session.run", |b| {
        b.iter(|| {
            let input = TensorRef::from_array_view((shape, tensor.as_slice())).unwrap();
            let mut session = session.lock();
            let out = session.run(ort::inputs![name.as_str() => input]).unwrap();
            std::hint::black_box(out.len());
        })
    });

    group.bench_function("Detector::detect", |b| {
        b.iter(|| std::hint::black_box(detector.detect(&frame).unwrap()))
    });

    // The element in a harness: the above plus buffer mapping, drawing, metas, messages.
    let harness = |pipelined: bool| {
        let element = gst::ElementFactory::make("thermaldetect")
            .property("model", model.to_str().unwrap())
            .property_from_str("execution-provider", "cpu")
            .property("threads", threads)
            .property("pipelined", pipelined)
            .build()
            .unwrap();
        let mut harness = Harness::with_element(&element, Some("sink"), Some("src"));
        harness.set_src_caps_str(&format!(
            "video/x-raw,format=GRAY16_LE,width={W},height={H},framerate=30/1"
        ));
        harness
    };
    let buffer = gst::Buffer::from_slice(bytes.clone());
    let mut plain = harness(false);
    // A fresh writable buffer per frame, as a source hands over; its copy is not timed.
    group.bench_function("thermaldetect element", |b| {
        b.iter_batched(
            || buffer.copy(),
            |buf| std::hint::black_box(plain.push_and_pull(buf).unwrap()),
            BatchSize::SmallInput,
        )
    });
    // Pipelined: one frame stays held, so each frame in sends the one before out.
    let mut pipelined = harness(true);
    pipelined.push(buffer.copy()).unwrap();
    group.bench_function("thermaldetect element pipelined", |b| {
        b.iter_batched(
            || buffer.copy(),
            |buf| std::hint::black_box(pipelined.push_and_pull(buf).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
