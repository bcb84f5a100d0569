//! Many streams, one session: detectors of the same model with the same session
//! settings run on one ONNX Runtime session (`runtime::shared_session`), other models or
//! settings get their own, the session dies with its last detector, and detectors taking
//! turns on a shared session from several threads detect exactly what a private session
//! does.
//!
//! The registry is process-wide and the tests of this file run in parallel threads, so
//! the ones that count its sessions take turns (`exclusive`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use thermalzsq::detect::{Detection, Detector, DetectorConfig};
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::onnx::InputSize;
use thermalzsq::runtime::{ProviderOptions, shared_sessions};
use thermalzsq::synth::Scene;

const W: u32 = 640;
const H: u32 = 512;

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn shared() -> DetectorConfig {
    DetectorConfig {
        share_session: true,
        ..DetectorConfig::default()
    }
}

/// One test at a time counts the registry's sessions.
fn exclusive() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The 16-bit radiometric frame of held-out scene `index` (objects to find).
fn scene(index: u64) -> Vec<u8> {
    let scene = Scene::generate(2, index, W, H).unwrap();
    scene.thermal.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn detect(detector: &mut Detector, bytes: &[u8]) -> Vec<Detection> {
    let frame = Frame::new(
        PixelFormat::Gray16Le,
        W as usize,
        H as usize,
        vec![(bytes, 2 * W as usize)],
    )
    .unwrap();
    detector.detect(&frame).unwrap()
}

#[test]
fn detectors_of_the_same_model_and_settings_share_one_session() {
    let _turn = exclusive();
    let before = shared_sessions();
    let path = model("det_thermal_ft.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let a = Detector::load(&path, shared()).unwrap();
    let b = Detector::from_bytes(&bytes, shared()).unwrap();
    assert!(
        a.shares_session_with(&b),
        "a file and its bytes: one session"
    );
    assert_eq!(shared_sessions(), before + 1);

    // Per-stream settings are not the session's: still one.
    let c = Detector::load(
        &path,
        DetectorConfig {
            conf_threshold: 0.6,
            labels: Some(vec!["a".into(), "b".into(), "c".into()]),
            ..shared()
        },
    )
    .unwrap();
    assert!(a.shares_session_with(&c));
    assert_eq!(
        c.labels(),
        ["a", "b", "c"],
        "the labels stay the stream's own"
    );
    assert_eq!(a.labels(), ["person", "car", "bicycle"]);

    let threads = Detector::load(
        &path,
        DetectorConfig {
            provider: ProviderOptions {
                threads: 1,
                ..ProviderOptions::default()
            },
            ..shared()
        },
    )
    .unwrap();
    let other_model = Detector::load(&model("det_thermal_scratch.onnx"), shared()).unwrap();
    let private = Detector::load(&path, DetectorConfig::default()).unwrap();
    for (what, d) in [
        ("threads=1", &threads),
        ("another model", &other_model),
        ("share_session=false", &private),
    ] {
        assert!(!a.shares_session_with(d), "{what}: a session of its own");
    }
    assert_eq!(
        shared_sessions(),
        before + 3,
        "a private session is not shared"
    );
}

#[test]
fn a_model_run_at_another_input_size_gets_another_session() {
    let _turn = exclusive();
    let path = fixture("hotspot_v8_dynamic.onnx");
    let at = |w, h| DetectorConfig {
        input_size: Some(InputSize {
            width: w,
            height: h,
        }),
        ..shared()
    };
    let a = Detector::load(&path, at(320, 256)).unwrap();
    let b = Detector::load(&path, at(320, 256)).unwrap();
    let c = Detector::load(&path, at(320, 320)).unwrap();
    assert!(a.shares_session_with(&b));
    assert!(!a.shares_session_with(&c));
    assert_eq!(c.input_shape()[2..], [320, 320]);
}

#[test]
fn the_session_dies_with_its_last_detector() {
    let _turn = exclusive();
    let before = shared_sessions();
    let path = fixture("hotspot_v8.onnx");
    let a = Detector::load(&path, shared()).unwrap();
    let b = Detector::load(&path, shared()).unwrap();
    assert_eq!(std::sync::Arc::strong_count(a.session()), 2);
    assert_eq!(shared_sessions(), before + 1);
    drop(a);
    assert_eq!(shared_sessions(), before + 1, "b still runs on it");
    assert_eq!(std::sync::Arc::strong_count(b.session()), 1);
    drop(b);
    assert_eq!(shared_sessions(), before, "freed with its last user");
    // And made again for the next one.
    let c = Detector::load(&path, shared()).unwrap();
    assert_eq!(shared_sessions(), before + 1);
    drop(c);
    assert_eq!(shared_sessions(), before);
}

#[test]
fn four_threads_on_a_shared_session_detect_exactly_what_a_private_session_does() {
    let path = model("det_thermal_ft.onnx");
    let frames: Vec<Vec<u8>> = (0..6).map(scene).collect();
    let mut private = Detector::load(&path, DetectorConfig::default()).unwrap();
    let expected: Vec<Vec<Detection>> = frames.iter().map(|f| detect(&mut private, f)).collect();
    assert!(
        expected.iter().map(Vec::len).sum::<usize>() >= 10,
        "scenes with objects: {expected:?}"
    );

    let mut detectors: Vec<Detector> = (0..4)
        .map(|_| Detector::load(&path, shared()).unwrap())
        .collect();
    assert!(
        detectors
            .iter()
            .all(|d| d.shares_session_with(&detectors[0]))
    );
    assert!(!private.shares_session_with(&detectors[0]));
    std::thread::scope(|scope| {
        for (t, detector) in detectors.iter_mut().enumerate() {
            let (frames, expected) = (&frames, &expected);
            scope.spawn(move || {
                // Each thread its own order, so runs of different frames interleave.
                for round in 0..3 {
                    for i in 0..frames.len() {
                        let k = (i + t + round) % frames.len();
                        assert_eq!(
                            detect(detector, &frames[k]),
                            expected[k],
                            "thread {t}, frame {k}"
                        );
                    }
                }
            });
        }
    });
}
