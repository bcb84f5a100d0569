//! Pre-processing cost per frame and format: AGC (16-bit), colour conversion and the
//! letterbox resample into a 3x320x320 input. Run: `cargo bench --bench preprocess`.
//!
//! The formats carry a smooth 256-level gradient; `GRAY16_LE recording` is a frame of a
//! `zsq synth` recording (sensor noise, thousands of distinct counts), which is what the
//! AGC's histogram and lookup table see from a real camera.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use thermalzsq::imaging::frame::encode_grey;
use thermalzsq::imaging::preprocess::Preprocess;
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::synth::Recording;

fn bench(c: &mut Criterion) {
    let (w, h) = (640, 512);
    let grey: Vec<u8> = (0..w * h)
        .map(|i| ((i % w) / 3 + (i / w) / 4) as u8)
        .collect();
    let mut group = c.benchmark_group("preprocess 640x512 -> 3x320x320");
    group.throughput(Throughput::Elements(1));
    for format in [
        PixelFormat::Gray16Le,
        PixelFormat::Gray8,
        PixelFormat::I420,
        PixelFormat::Yuy2,
        PixelFormat::Bgrx,
    ] {
        let planes = encode_grey(format, w, h, &grey);
        let frame = Frame::new(
            format,
            w,
            h,
            planes.iter().map(|(d, s)| (d.as_slice(), *s)).collect(),
        )
        .unwrap();
        let mut pre = Preprocess::new(320, 320, 3, false);
        let mut out = vec![0.0; pre.tensor_len()];
        group.bench_function(format.name(), |b| b.iter(|| pre.run(&frame, &mut out)));
    }
    let counts = Recording::new(7, w as u32, h as u32)
        .expect("recording")
        .frame(0)
        .thermal;
    let bytes: Vec<u8> = counts.iter().flat_map(|v| v.to_le_bytes()).collect();
    let frame = Frame::new(PixelFormat::Gray16Le, w, h, vec![(bytes.as_slice(), 2 * w)]).unwrap();
    let mut pre = Preprocess::new(320, 320, 3, false);
    let mut out = vec![0.0; pre.tensor_len()];
    group.bench_function("GRAY16_LE recording", |b| {
        b.iter(|| pre.run(&frame, &mut out))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
