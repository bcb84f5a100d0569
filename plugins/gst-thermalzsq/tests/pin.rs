//! Behaviour pin for refactors: `thermaldetect`'s JSON lines and drawn pixels on a fixed
//! generated recording, through the bundled thermal detector, as sha256 digests per CPU
//! instruction set (tests/support/pin.rs at the repository root says why and how to
//! record them).

mod common;

#[path = "../../../tests/support/pin.rs"]
mod pin;

use gst_check::Harness;
use thermalzsq::synth::Recording;
use thermalzsq::zsq::cache::sha256_hex;

use common::{init, recording_buffer};

const FRAMES: u32 = 12;

/// The digests of the JSON lines and of every output frame's pixels.
fn run_recording(name: &str, pipelined: bool) -> (String, String) {
    init();
    let dir = std::env::temp_dir().join(format!("tzsq-pin-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("dets.jsonl");
    let element = gst::ElementFactory::make("thermaldetect")
        // Relative, so the JSON lines name the same model in every checkout.
        .property("model", "../../models/det_thermal_ft.onnx")
        .property("threads", 1u32)
        .property("json-location", json.to_str().unwrap())
        .property("pipelined", pipelined)
        .build()
        .unwrap();
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    let recording = Recording::new(3, 640, 512).unwrap();
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray16Le, 640, 512)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    let mut pixels = Vec::new();
    for i in 0..FRAMES {
        h.push(recording_buffer(&recording, i)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    for out in std::iter::from_fn(|| h.try_pull()) {
        pixels.extend_from_slice(&out.map_readable().unwrap());
    }
    drop(h);
    assert_eq!(
        pixels.len(),
        FRAMES as usize * 640 * 512 * 2,
        "every frame came out"
    );
    let lines = std::fs::read(&json).unwrap();
    assert_eq!(
        lines.iter().filter(|&&b| b == b'\n').count(),
        FRAMES as usize,
        "one JSON line per frame"
    );
    (sha256_hex(&lines), sha256_hex(&pixels))
}

#[test]
fn thermaldetect_keeps_its_json_lines_and_drawn_frames_on_a_recording() {
    check_recording(false);
}

/// `pipelined` changes when frames leave, not what they hold.
#[test]
fn pipelined_thermaldetect_keeps_the_same_json_lines_and_frames() {
    check_recording(true);
}

fn check_recording(pipelined: bool) {
    let (json, pixels) = run_recording(&format!("first-{pipelined}"), pipelined);
    let mut again = None;
    let mut rerun = || {
        again
            .get_or_insert_with(|| run_recording(&format!("again-{pipelined}"), pipelined))
            .clone()
    };
    pin::check(
        "thermaldetect det_thermal_ft recording 3 json",
        &json,
        || rerun().0,
    );
    pin::check(
        "thermaldetect det_thermal_ft recording 3 pixels",
        &pixels,
        || rerun().1,
    );
}
