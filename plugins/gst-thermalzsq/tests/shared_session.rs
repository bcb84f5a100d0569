//! Many cameras per box: one pipeline with three `thermaldetect` branches on the same
//! model runs one ONNX Runtime session (`session-users` says 3, the engine's registry
//! holds one more session), with `share-session=false` three sessions of their own; the
//! detections are the same either way.
//!
//! The registry is process-wide: this file is its own test binary, and its tests take
//! turns, so no other element's session is counted.

mod common;

use std::sync::{Arc, Mutex, MutexGuard};

use gst::prelude::*;
use thermalzsq::runtime::shared_sessions;
use thermalzsq::synth::Scene;

use common::init;

const W: u32 = 640;
const H: u32 = 512;
const BRANCHES: usize = 3;
const FRAMES: u64 = 3;

fn model() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/det_thermal_ft.onnx")
}

fn exclusive() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Per branch, per frame: the ROI metas (label, x, y, w, h).
type Rois = Vec<Vec<Vec<(String, [u32; 4])>>>;

/// What a run reports: `session-users` of each branch, the registry's sessions added
/// while it played, and the ROIs.
struct Report {
    users: Vec<u32>,
    added: usize,
    rois: Rois,
}

/// `appsrc ! tee` into `BRANCHES` × `queue ! thermaldetect PROPS ! fakesink`, fed
/// FRAMES held-out 16-bit scenes.
fn run(props: &str) -> Report {
    init();
    let before = shared_sessions();
    let mut description = format!(
        "appsrc name=src format=time caps=video/x-raw,format=GRAY16_LE,width={W},height={H},framerate=30/1 ! tee name=t"
    );
    for i in 0..BRANCHES {
        description.push_str(&format!(
            " t. ! queue ! thermaldetect name=d{i} model={} execution-provider=cpu post-messages=false {props} ! fakesink name=s{i} sync=false signal-handoffs=true",
            model().display()
        ));
    }
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let rois: Arc<Mutex<Rois>> = Arc::new(Mutex::new(vec![Vec::new(); BRANCHES]));
    for i in 0..BRANCHES {
        let rois = rois.clone();
        pipeline
            .by_name(&format!("s{i}"))
            .unwrap()
            .connect("handoff", false, move |args| {
                let buf = args[1].get::<gst::Buffer>().unwrap();
                let mut frame: Vec<(String, [u32; 4])> = buf
                    .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
                    .map(|m| {
                        let (x, y, w, h) = m.rect();
                        (m.roi_type().to_string(), [x, y, w, h])
                    })
                    .collect();
                frame.sort();
                rois.lock().unwrap()[i].push(frame);
                None
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let src = pipeline.by_name("src").unwrap();
    for index in 0..FRAMES {
        let scene = Scene::generate(2, index, W, H).unwrap();
        let bytes: Vec<u8> = scene.thermal.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut buf = gst::Buffer::from_mut_slice(bytes);
        buf.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(index * 33));
        let flow = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&buf]);
        assert_eq!(flow, gst::FlowReturn::Ok);
    }
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS within two minutes");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    // Read while the elements still hold their detectors.
    let users = (0..BRANCHES)
        .map(|i| {
            pipeline
                .by_name(&format!("d{i}"))
                .unwrap()
                .property::<u32>("session-users")
        })
        .collect();
    let added = shared_sessions() - before;
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(
        shared_sessions(),
        before,
        "the session went with the elements"
    );
    let rois = rois.lock().unwrap().clone();
    Report { users, added, rois }
}

#[test]
fn three_branches_on_one_model_run_one_session_with_the_same_detections() {
    let _turn = exclusive();
    let shared = run("");
    assert_eq!(shared.users, vec![BRANCHES as u32; BRANCHES]);
    assert_eq!(shared.added, 1, "one session for the three branches");

    let private = run("share-session=false");
    assert_eq!(private.users, vec![1; BRANCHES]);
    assert_eq!(private.added, 0, "private sessions are not in the registry");

    let first = &shared.rois[0];
    assert_eq!(first.len(), FRAMES as usize);
    assert!(
        first.iter().map(Vec::len).sum::<usize>() >= 3,
        "the scenes have objects: {first:?}"
    );
    for (what, report) in [("shared", &shared), ("private", &private)] {
        for (i, branch) in report.rois.iter().enumerate() {
            assert_eq!(branch, first, "{what} branch {i}");
        }
    }
}

#[test]
fn share_session_defaults_to_true_and_session_users_to_zero_without_a_model() {
    init();
    let e = gst::ElementFactory::make("thermaldetect").build().unwrap();
    assert!(e.property::<bool>("share-session"));
    assert_eq!(e.property::<u32>("session-users"), 0);
}
