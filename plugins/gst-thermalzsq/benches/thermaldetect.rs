//! Frames per second of `thermaldetect` against a bare ONNX Runtime session on the same
//! frames and model: what the element costs on top of inference (AGC, letterbox,
//! decoding, NMS, drawing, metas, messages).
//!
//! Model: `THERMALZSQ_BENCH_MODEL` or the bundled demo detector. Frames: 640x512
//! GRAY16_LE (a FLIR Boson's radiometric stream) with warm objects.
//! Run: `make bench` or `cargo bench -p gst-plugin-thermalzsq`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gst_check::Harness;
use ort::value::TensorRef;
use thermalzsq::detect::{Detector, DetectorConfig};
use thermalzsq::imaging::frame::encode_grey;
use thermalzsq::imaging::preprocess::Preprocess;
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::runtime::{ProviderOptions, load_session};

const W: usize = 640;
const H: usize = 512;

fn model() -> PathBuf {
    std::env::var_os("THERMALZSQ_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/det_thermal_ft.onnx")
        })
}

/// A 640x512 thermal-looking frame: a gradient with a few warm blobs.
fn frame_bytes() -> Vec<u8> {
    let grey: Vec<u8> = (0..W * H)
        .map(|i| {
            let (x, y) = (i % W, i / W);
            let warm = [(150, 300, 40), (400, 250, 60), (520, 380, 30)].iter().any(
                |&(cx, cy, r): &(usize, usize, usize)| {
                    x.abs_diff(cx).pow(2) + y.abs_diff(cy).pow(2) < r * r
                },
            );
            if warm {
                230
            } else {
                (60 + y / 8 + x / 32) as u8
            }
        })
        .collect();
    encode_grey(PixelFormat::Gray16Le, W, H, &grey).remove(0).0
}

fn bench(c: &mut Criterion) {
    gst::init().unwrap();
    gstthermalzsq::plugin_register_static().unwrap();
    let model = model();
    let bytes = frame_bytes();
    let options = ProviderOptions {
        provider: "cpu".parse().unwrap(),
        ..Default::default()
    };

    let mut group = c.benchmark_group(format!(
        "thermaldetect 640x512 GRAY16_LE, {}",
        model.file_name().unwrap().to_string_lossy()
    ));
    group
        .throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(10));

    // Inference alone: the input tensor made once, then only session.run.
    let mut loaded = load_session(&model, &options).expect("model loads");
    let [_, c_, h, w] = {
        let d = &loaded.info.inputs[0].dims;
        [1, d[1] as usize, d[2] as usize, d[3] as usize]
    };
    let frame = Frame::new(PixelFormat::Gray16Le, W, H, vec![(bytes.as_slice(), 2 * W)]).unwrap();
    let mut tensor = vec![0.0f32; c_ * h * w];
    Preprocess::new(w, h, c_, false).run(&frame, &mut tensor);
    let name = loaded.info.inputs[0].name.clone();
    group.bench_function("bare ONNX Runtime session.run", |b| {
        b.iter(|| {
            let input = TensorRef::from_array_view(([1, c_, h, w], tensor.as_slice())).unwrap();
            let out = loaded
                .session
                .run(ort::inputs![name.as_str() => input])
                .unwrap();
            std::hint::black_box(out.len());
        })
    });
    drop(loaded);

    // The engine's detector: AGC + letterbox + inference + decoding + NMS.
    let config = DetectorConfig {
        provider: options.clone(),
        ..Default::default()
    };
    let mut detector = Detector::load(&model, config).unwrap();
    group.bench_function("Detector::detect", |b| {
        b.iter(|| std::hint::black_box(detector.detect(&frame).unwrap()))
    });
    drop(detector);

    // The element in a harness: the above plus buffer mapping, drawing, metas, messages.
    let element = gst::ElementFactory::make("thermaldetect")
        .property("model", model.to_str().unwrap())
        .property_from_str("execution-provider", "cpu")
        .build()
        .unwrap();
    let mut harness = Harness::with_element(&element, Some("sink"), Some("src"));
    harness.set_src_caps_str(&format!(
        "video/x-raw,format=GRAY16_LE,width={W},height={H},framerate=30/1"
    ));
    let buffer = gst::Buffer::from_slice(bytes.clone());
    group.bench_function("thermaldetect element", |b| {
        b.iter(|| std::hint::black_box(harness.push_and_pull(buffer.copy()).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
