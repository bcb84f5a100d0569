//! Helpers every plugin test file shares.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::sync::Once;

/// GStreamer initialised and the plugin registered (once per test binary).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstthermalzsq::plugin_register_static().unwrap();
    });
}

/// A test model in tests/fixtures/models.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

/// target/<profile>: where `cargo test` put `zsq` and the examples.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf()
}

/// The bundled thermal detector (exported at 320×320).
pub const BUNDLED_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/det_thermal_ft.onnx"
);

/// Frame `i` of `recording` as a GRAY16_LE buffer of its centikelvin counts, stamped
/// `i` frames of 30 fps in (33 333 333 ns each).
pub fn recording_buffer(recording: &thermalzsq::synth::Recording, i: u32) -> gst::Buffer {
    let bytes: Vec<u8> = recording
        .frame(i)
        .thermal
        .iter()
        .flat_map(|k| k.to_le_bytes())
        .collect();
    let mut buf = gst::Buffer::from_mut_slice(bytes);
    buf.get_mut()
        .expect("a new buffer is writable")
        .set_pts(gst::ClockTime::from_nseconds(i as u64 * 33_333_333));
    buf
}

/// A directory holding only the plugin this `cargo test` built, for GST_PLUGIN_PATH.
///
/// `cargo test` leaves the cdylib in target/<profile>/deps (only `cargo build` copies it up
/// to target/<profile>, where it may be stale or absent), next to proc-macro libraries
/// GStreamer should not be made to open; so the fresh plugin is copied out on its own.
pub fn plugin_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let name = format!(
            "{}gstthermalzsq{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        let built = target_dir().join("deps").join(&name);
        let dir = std::env::temp_dir().join(format!("tzsq-plugin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&built, dir.join(&name))
            .unwrap_or_else(|e| panic!("the plugin cargo test built, {}: {e}", built.display()));
        dir
    })
    .clone()
}

/// `videotestsrc num-buffers=1 ! ELEMENT ! fakesink` with `props` set on the element must
/// fail to start; the error message it posted (bad properties are errors at start).
pub fn start_error(element: &str, props: &[(&str, &str)]) -> gst::Message {
    use gst::prelude::*;
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! {element} name=e ! fakesink"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let e = pipeline.by_name("e").unwrap();
    for (name, value) in props {
        e.set_property_from_str(name, value);
    }
    assert!(
        pipeline.set_state(gst::State::Paused).is_err(),
        "start must fail"
    );
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error message");
    pipeline.set_state(gst::State::Null).unwrap();
    msg
}

/// A `thermaldetect` on the hot/cold fixture detector in a Harness (which starts it at
/// once), with a bus of its own for the messages it posts.
pub struct DetectRun {
    pub h: gst_check::Harness,
    pub bus: gst::Bus,
}

/// [`DetectRun`] with `props` set as gst-launch spells them.
pub fn detect_harness(props: &[(&str, &str)]) -> DetectRun {
    use gst::prelude::*;
    init();
    let element = gst::ElementFactory::make("thermaldetect")
        .property("model", fixture("hotspot_v8.onnx").to_str().unwrap())
        .build()
        .unwrap();
    for (name, value) in props {
        element.set_property_from_str(name, value);
    }
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    DetectRun {
        h: gst_check::Harness::with_element(&element, Some("sink"), Some("src")),
        bus,
    }
}
