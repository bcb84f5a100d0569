//! Time to the first int8 frame of `zsqcalibrate ! thermaldetect`: from pipeline start to
//! the first frame the int8 model detected on, warm (the cache has the model) and cold
//! (calibration from scratch while frames flow with the fp32 model).
//!
//! Model: `THERMALZSQ_BENCH_MODEL` or the bundled demo detector; default calibration
//! settings. Frames: 640x512 GRAY16_LE. Run: `cargo bench -p gst-plugin-thermalzsq
//! --bench first_int8_frame` (cold takes 10 full calibrations).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gst::prelude::*;
use gst_check::Harness;
use thermalzsq::imaging::PixelFormat;
use thermalzsq::imaging::frame::encode_grey;

const W: usize = 640;
const H: usize = 512;

fn model() -> PathBuf {
    std::env::var_os("THERMALZSQ_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/det_thermal_ft.onnx")
        })
}

/// Starts `zsqcalibrate ! thermaldetect`, feeds frames (30 fps) until one comes out
/// detected by the int8 model, and returns how long that took.
fn first_int8_frame(cache: &std::path::Path, force: bool) -> Duration {
    let frame = gst::Buffer::from_slice(
        encode_grey(PixelFormat::Gray16Le, W, H, &vec![100u8; W * H])
            .remove(0)
            .0,
    );
    let started = Instant::now();
    let bin = gst::parse::bin_from_description(
        &format!(
            "zsqcalibrate model=\"{}\" cache-dir=\"{}\" force={force} ! thermaldetect name=td post-messages=false",
            model().display(),
            cache.display()
        ),
        true,
    )
    .unwrap();
    let td = bin.by_name("td").unwrap();
    let mut h = Harness::with_element(&bin, Some("sink"), Some("src"));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=GRAY16_LE,width={W},height={H},framerate=30/1"
    ));
    loop {
        h.push_and_pull(frame.copy()).unwrap();
        let active = td
            .property::<Option<String>>("active-model")
            .unwrap_or_default();
        if active.starts_with(cache.to_str().unwrap()) {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(33));
    }
}

fn bench(c: &mut Criterion) {
    gst::init().unwrap();
    gstthermalzsq::plugin_register_static().unwrap();
    let cache = std::env::temp_dir().join(format!("thermalzsq-bench-cache-{}", std::process::id()));
    let mut group = c.benchmark_group(format!(
        "first int8 frame, {}",
        model().file_name().unwrap().to_string_lossy()
    ));
    group.sample_size(10);
    first_int8_frame(&cache, true); // fills the cache
    group.bench_function("warm (cache hit)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| first_int8_frame(&cache, false)).sum())
    });
    group.measurement_time(Duration::from_secs(60));
    group.bench_function("cold (zero-shot calibration)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| first_int8_frame(&cache, true)).sum())
    });
    group.finish();
    let _ = std::fs::remove_dir_all(cache);
}

criterion_group!(benches, bench);
criterion_main!(benches);
