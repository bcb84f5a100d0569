//! Inputs other than a fixed 1×3×H×W: a single-channel detector
//! (tests/fixtures/models/hotspot_v8_mono.onnx) and one exported with a symbolic height
//! and width (hotspot_v8_dynamic.onnx), in `thermaldetect` and `zsqcalibrate`. Both
//! are the hot/cold grid-cell test detector: a bright square on a 64-pixel cell of a
//! 640×512 frame is a `hot` object boxed exactly on its cell, a dark one `cold`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_check::Harness;
use thermalzsq::imaging::PixelFormat;
use thermalzsq::imaging::frame::encode_grey;
use thermalzsq::onnx::Model;

use common::{BUNDLED_MODEL, detect_harness, fixture, init, recording_buffer, start_error};

const W: usize = 640;
const H: usize = 512;
const HOT: (u32, u32, u32, u32) = (192, 64, 64, 64);
const COLD: (u32, u32, u32, u32) = (448, 320, 64, 64);

/// A frame in `format` (GRAY8 or GRAY16_LE): mid-grey, a hot square at HOT and a cold
/// one at COLD.
fn frame(format: PixelFormat) -> gst::Buffer {
    let inside = |r: (u32, u32, u32, u32), x: usize, y: usize| {
        let (x, y) = (x as u32, y as u32);
        (r.0..r.0 + r.2).contains(&x) && (r.1..r.1 + r.3).contains(&y)
    };
    let grey: Vec<u8> = (0..W * H)
        .map(|i| match (i % W, i / W) {
            (x, y) if inside(HOT, x, y) => 250,
            (x, y) if inside(COLD, x, y) => 5,
            _ => 128,
        })
        .collect();
    gst::Buffer::from_slice(encode_grey(format, W, H, &grey).remove(0).0)
}

fn caps(format: PixelFormat) -> gst::Caps {
    format!(
        "video/x-raw,format={},width={W},height={H},framerate=30/1",
        format.name()
    )
    .parse()
    .unwrap()
}

/// (type, rect) of the region-of-interest metas, sorted by type.
fn rois(buf: &gst::BufferRef) -> Vec<(String, (u32, u32, u32, u32))> {
    let mut rois: Vec<_> = buf
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| (m.roi_type().to_string(), m.rect()))
        .collect();
    rois.sort();
    rois
}

fn hot_and_cold() -> Vec<(String, (u32, u32, u32, u32))> {
    vec![("cold".into(), COLD), ("hot".into(), HOT)]
}

/// The boxes `thermaldetect` with `props` finds in one `format` frame.
fn detect(props: &[(&str, &str)], format: PixelFormat) -> Vec<(String, (u32, u32, u32, u32))> {
    let mut run = detect_harness(props);
    run.h.set_src_caps(caps(format));
    let out = run.h.push_and_pull(frame(format)).unwrap();
    rois(&out)
}

fn path(name: &str) -> String {
    fixture(name).to_str().unwrap().to_string()
}

fn error_text(msg: &gst::Message) -> String {
    match msg.view() {
        gst::MessageView::Error(e) => e.error().to_string(),
        _ => unreachable!("an error message"),
    }
}

#[test]
fn a_single_channel_model_boxes_the_bright_square_in_gray16_and_gray8_frames() {
    let mono = path("hotspot_v8_mono.onnx");
    for format in [PixelFormat::Gray16Le, PixelFormat::Gray8] {
        assert_eq!(
            detect(&[("model", &mono)], format),
            hot_and_cold(),
            "{format}"
        );
    }
}

#[test]
fn input_size_runs_a_dynamic_model_with_the_boxes_of_the_fixed_one() {
    let fixed = detect(&[], PixelFormat::Gray8);
    assert_eq!(fixed, hot_and_cold());
    let dynamic = path("hotspot_v8_dynamic.onnx");
    // 320x320 letterboxes the 640x512 frame as the fixed model does; 320x256 fits it
    // with no border, and the cells still fall on the squares.
    for size in ["320x320", "320x256"] {
        assert_eq!(
            detect(
                &[("model", &dynamic), ("input-size", size)],
                PixelFormat::Gray16Le
            ),
            fixed,
            "input-size={size}"
        );
    }
}

#[test]
fn a_dynamic_model_without_input_size_is_an_error_at_start_that_says_what_to_set() {
    let msg = start_error(
        "thermaldetect",
        &[("model", &path("hotspot_v8_dynamic.onnx"))],
    );
    let text = error_text(&msg);
    assert!(
        text.contains("symbolic") && text.contains("input-size=WxH"),
        "{text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn a_bad_input_size_is_an_error_at_start_that_names_the_fix() {
    let dynamic = path("hotspot_v8_dynamic.onnx");
    let fixed = path("hotspot_v8.onnx");
    for (model, size, expected) in [
        (
            &dynamic,
            "300x320",
            "not a multiple of the model's stride 32; use e.g. 320x320",
        ),
        (
            &fixed,
            "640x640",
            "exported at 320x320 and cannot run at 640x640",
        ),
        (&fixed, "big", "expected WIDTHxHEIGHT"),
    ] {
        let text = error_text(&start_error(
            "thermaldetect",
            &[("model", model), ("input-size", size)],
        ));
        assert!(text.contains(expected), "input-size={size}: {text}");
    }
    // The model's own size is accepted.
    assert_eq!(
        detect(&[("input-size", "320x320")], PixelFormat::Gray8),
        hot_and_cold()
    );
}

#[test]
fn zsqcalibrate_needs_input_size_for_a_dynamic_model() {
    let text = error_text(&start_error(
        "zsqcalibrate",
        &[("model", &path("hotspot_v8_dynamic.onnx"))],
    ));
    assert!(
        text.contains("symbolic") && text.contains("set input-size=WxH, a multiple of 32"),
        "{text}"
    );
}

fn cache_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-inputs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (location, precision) of each model `thermaldetect` switched to, from `bus`.
fn switches(bus: &gst::Bus, seen: &mut Vec<(String, String)>) {
    while let Some(m) = bus.pop() {
        if let gst::MessageView::Element(e) = m.view()
            && let Some(s) = e.structure().filter(|s| s.name() == "thermaldetect-model")
        {
            seen.push((s.get("location").unwrap(), s.get("precision").unwrap()));
        }
    }
}

#[test]
fn zsqcalibrate_with_input_size_announces_sized_models_and_thermaldetect_needs_none() {
    init();
    let cache = cache_dir("dynamic");
    let bin = gst::parse::bin_from_description(
        &format!(
            "zsqcalibrate model={} input-size=320x256 cache-dir={} iterations=3 batch-size=2 \
             ! thermaldetect post-messages=false",
            fixture("hotspot_v8_dynamic.onnx").display(),
            cache.display()
        ),
        true,
    )
    .unwrap();
    let bus = gst::Bus::new();
    bin.set_bus(Some(&bus));
    let mut h = Harness::with_element(&bin, Some("sink"), Some("src"));
    h.set_src_caps(caps(PixelFormat::Gray8));
    let mut seen = Vec::new();
    let start = Instant::now();
    // Every frame, fp32 (sized by zsqcalibrate) and then int8, finds both squares.
    while !seen.iter().any(|(_, p): &(String, String)| p == "u8s8") {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no int8 model: {seen:?}"
        );
        let out = h.push_and_pull(frame(PixelFormat::Gray8)).unwrap();
        assert_eq!(rois(&out), hot_and_cold(), "after {seen:?}");
        switches(&bus, &mut seen);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen[0].1, "fp32", "{seen:?}");
    let int8 = Model::load(&seen[1].0).unwrap();
    assert!(!int8.has_symbolic_input_size(), "the int8 model is fixed");
    let dims = int8.graph().input[0]
        .r#type
        .as_ref()
        .and_then(|t| t.shape())
        .and_then(|s| s.static_dims());
    assert_eq!(dims, Some(vec![1, 3, 256, 320]));
}

/// Region-of-interest metas `thermaldetect` with `props` attaches to frame 0 of a
/// generated 640×512 recording (the bundled thermal detector, exported at 320×320).
fn recording_rois(props: &[(&str, &str)]) -> usize {
    init();
    let recording = thermalzsq::synth::Recording::new(7, W as u32, H as u32).unwrap();
    let element = gst::ElementFactory::make("thermaldetect")
        .property("model", BUNDLED_MODEL)
        .build()
        .unwrap();
    for (name, value) in props {
        element.set_property_from_str(name, value);
    }
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=GRAY16_LE,width={W},height={H},framerate=30/1"
    ));
    let out = h.push_and_pull(recording_buffer(&recording, 0)).unwrap();
    out.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .count()
}

#[test]
fn a_detector_exported_at_a_fixed_size_runs_at_the_cameras_size_with_input_size() {
    let at_320 = recording_rois(&[]);
    let at_640 = recording_rois(&[("input-size", "640x512")]);
    assert!(
        at_640 > at_320,
        "objects found at 640x512: {at_640}, at the model's 320x320: {at_320}"
    );
    // Both sizes, merged: at least the larger size's finds, give or take NMS merging two.
    let both = recording_rois(&[("input-size", "640x512"), ("extra-input-sizes", "320x320")]);
    assert!(both + 1 >= at_640 && both > at_320, "both sizes: {both}");
    let text = error_text(&start_error(
        "thermaldetect",
        &[
            ("model", &path("hotspot_v8.onnx")),
            ("extra-input-sizes", "320x320,big"),
        ],
    ));
    assert!(
        text.contains("extra-input-sizes") && text.contains("expected WIDTHxHEIGHT"),
        "{text}"
    );
}
