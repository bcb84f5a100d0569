//! `zsqcalibrate ! thermaldetect` in a Harness: cold start (progress, int8 swapped in
//! between frames), warm start from the cache, NULL during calibration, a corrupt cache
//! entry, an unwritable cache, a model without BN (distill fails, generated scenes
//! calibrate it), `block`, two pipelines at once (one calibrates, the other waits for
//! its result; a waiter can stop, and takes over when the leader stops).
//!
//! The model is the hot/cold grid-cell test detector (tests/fixtures/models): real
//! Conv/BN layers to distil and quantize, and boxes known exactly, so detections can be
//! checked before and after the switch to int8.

mod common;
#[path = "../../../tests/support/tmpfs.rs"]
mod tmpfs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_check::Harness;
use thermalzsq::imaging::PixelFormat;
use thermalzsq::imaging::frame::encode_grey;

use common::{fixture, init};
use tmpfs::Mount;

const W: usize = 640;
const H: usize = 512;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-zc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A GRAY8 frame: mid-grey, a hot square on the grid cell at (192, 64), a cold one at
/// (448, 320).
fn frame(pts_ms: u64) -> gst::Buffer {
    let mut grey = vec![128u8; W * H];
    for y in 0..H {
        for x in 0..W {
            if (192..256).contains(&x) && (64..128).contains(&y) {
                grey[y * W + x] = 250;
            } else if (448..512).contains(&x) && (320..384).contains(&y) {
                grey[y * W + x] = 5;
            }
        }
    }
    let mut buf = gst::Buffer::from_slice(encode_grey(PixelFormat::Gray8, W, H, &grey).remove(0).0);
    buf.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(pts_ms));
    buf
}

fn caps() -> gst::Caps {
    format!("video/x-raw,format=GRAY8,width={W},height={H},framerate=30/1")
        .parse()
        .unwrap()
}

struct Run {
    h: Harness,
    bus: gst::Bus,
    pushed: u64,
    /// Element messages seen so far (name, structure).
    seen: Vec<gst::Structure>,
}

/// `zsqcalibrate PROPS ! thermaldetect` (the detector takes its model from the
/// announcements alone).
fn run(zsqcalibrate_props: &str) -> Run {
    init();
    run_on_bus(zsqcalibrate_props, gst::Bus::new())
}

/// [`run`] posting to `bus` (prepared beforehand, e.g. with a sync handler that sees
/// the first messages).
fn run_on_bus(zsqcalibrate_props: &str, bus: gst::Bus) -> Run {
    init();
    let bin = gst::parse::bin_from_description(
        &format!(
            "zsqcalibrate name=zc {zsqcalibrate_props} ! thermaldetect name=td post-messages=false"
        ),
        true,
    )
    .unwrap();
    bin.set_bus(Some(&bus));
    let mut h = Harness::with_element(&bin, Some("sink"), Some("src"));
    h.set_src_caps(caps());
    Run {
        h,
        bus,
        pushed: 0,
        seen: Vec::new(),
    }
}

impl Run {
    fn element(&self, name: &str) -> gst::Element {
        self.h
            .element()
            .unwrap()
            .downcast::<gst::Bin>()
            .unwrap()
            .by_name(name)
            .unwrap()
    }

    fn collect(&mut self) {
        while let Some(m) = self.bus.pop() {
            let s = match m.view() {
                gst::MessageView::Element(e) => e.structure().map(|s| s.to_owned()),
                gst::MessageView::Warning(w) => Some(
                    gst::Structure::builder("warning")
                        .field("text", w.error().to_string())
                        .build(),
                ),
                gst::MessageView::Error(e) => Some(
                    gst::Structure::builder("error")
                        .field("text", e.error().to_string())
                        .build(),
                ),
                _ => None,
            };
            self.seen.extend(s);
        }
    }

    fn messages(&mut self, name: &str) -> Vec<gst::Structure> {
        self.collect();
        self.seen
            .iter()
            .filter(|s| s.name() == name)
            .cloned()
            .collect()
    }

    fn texts(&mut self, name: &str) -> Vec<String> {
        self.messages(name)
            .iter()
            .map(|s| s.get::<String>("text").unwrap())
            .collect()
    }

    /// Pushes one frame and checks it comes out with the hot and cold boxes.
    fn push_frame(&mut self) {
        let out = self.h.push_and_pull(frame(self.pushed * 33)).unwrap();
        self.pushed += 1;
        let mut rois: Vec<(String, (u32, u32, u32, u32))> = out
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| (m.roi_type().to_string(), m.rect()))
            .collect();
        rois.sort();
        assert_eq!(
            rois,
            vec![
                ("cold".into(), (448, 320, 64, 64)),
                ("hot".into(), (192, 64, 64, 64))
            ],
            "frame {}",
            self.pushed - 1
        );
    }

    /// Pushes frames until `done` holds (frames keep flowing meanwhile), at most `limit`.
    fn push_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Run) -> bool) {
        let start = Instant::now();
        while !done(self) {
            if start.elapsed() > limit {
                self.collect();
                let seen: Vec<String> = self
                    .seen
                    .iter()
                    .filter(|s| s.name() != "zsqcalibrate-progress")
                    .map(|s| s.to_string())
                    .collect();
                panic!(
                    "gave up after {limit:?} and {} frames; messages: {seen:#?}",
                    self.pushed
                );
            }
            self.push_frame();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// (location, precision, frame) of each model thermaldetect switched to.
    fn switches(&mut self) -> Vec<(String, String, u64)> {
        self.messages("thermaldetect-model")
            .iter()
            .map(|s| {
                (
                    s.get("location").unwrap(),
                    s.get("precision").unwrap(),
                    s.get("frame").unwrap(),
                )
            })
            .collect()
    }
}

fn state(e: &gst::Element) -> String {
    let v = e.property_value("state");
    gst::glib::EnumValue::from_value(&v)
        .unwrap()
        .1
        .nick()
        .to_string()
}

fn quick(model: &str, cache: &Path) -> String {
    format!(
        "model={} cache-dir={} iterations=3 batch-size=2",
        fixture(model).display(),
        cache.display()
    )
}

#[test]
fn cold_start_swaps_to_int8_between_frames_and_warm_start_hits_the_cache() {
    let cache = tmp("coldwarm");
    let mut cold = run(&quick("hotspot_v8.onnx", &cache));
    assert_eq!(state(&cold.element("zc")), "calibrating");
    cold.push_until(Duration::from_secs(120), |r| {
        r.switches().iter().any(|s| s.1 == "u8s8")
    });
    for _ in 0..3 {
        cold.push_frame();
    }
    let switches = cold.switches();
    assert_eq!(
        switches[0].1, "fp32",
        "the fp32 model runs from frame 0: {switches:?}"
    );
    assert_eq!(switches[0].2, 0);
    let int8 = &switches[1];
    assert!(
        int8.0.starts_with(cache.to_str().unwrap()) && int8.0.ends_with(".onnx"),
        "{int8:?}"
    );
    assert!(
        int8.2 > 0 && int8.2 < cold.pushed,
        "swapped between frames: {int8:?}"
    );

    let progress = cold.messages("zsqcalibrate-progress");
    assert!(!progress.is_empty());
    let stages: Vec<String> = progress.iter().map(|s| s.get("stage").unwrap()).collect();
    assert!(
        stages.contains(&"distill".to_string()) && stages.contains(&"calibrate".to_string()),
        "{stages:?}"
    );
    let last = progress.last().unwrap();
    assert!(last.get::<f64>("percent").unwrap() <= 100.0);
    let distill = progress
        .iter()
        .find(|s| s.get::<String>("stage").unwrap() == "distill")
        .unwrap();
    assert!(distill.get::<f64>("loss").unwrap().is_finite());
    assert_eq!(distill.get::<u32>("iterations").unwrap(), 3);

    let done = cold.messages("zsqcalibrate-done");
    assert_eq!(done.len(), 1);
    assert!(!done[0].get::<bool>("cache-hit").unwrap());
    // auto, on a model with BN layers.
    assert_eq!(done[0].get::<String>("calibration").unwrap(), "distill");
    assert!(done[0].get::<f64>("seconds").unwrap() > 0.0);
    let zc = cold.element("zc");
    assert_eq!(state(&zc), "ready");
    assert_eq!(
        zc.property::<Option<String>>("output-location").unwrap(),
        int8.0
    );
    assert_eq!(
        cold.element("td")
            .property::<Option<String>>("active-model")
            .unwrap(),
        int8.0
    );
    drop(cold);

    let mut warm = run(&quick("hotspot_v8.onnx", &cache));
    let done = warm.messages("zsqcalibrate-done");
    assert_eq!(done.len(), 1, "the cache answers during start-up");
    assert!(done[0].get::<bool>("cache-hit").unwrap());
    warm.push_frame();
    let switches = warm.switches();
    assert_eq!(
        switches,
        vec![(int8.0.clone(), "u8s8".into(), 0)],
        "int8 from the first frame"
    );
}

#[test]
fn going_to_null_mid_calibration_stops_the_worker_and_leaves_no_file() {
    let cache = tmp("null");
    let mut r = run(&format!(
        "{} iterations=100000",
        quick("hotspot_v8.onnx", &cache)
    ));
    r.push_until(Duration::from_secs(60), |r| {
        !r.messages("zsqcalibrate-progress").is_empty()
    });
    let started = Instant::now();
    r.h.element().unwrap().set_state(gst::State::Null).unwrap();
    let took = started.elapsed();
    eprintln!("NULL during calibration took {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "the worker must stop promptly: {took:?}"
    );
    let files: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(files.is_empty(), "no partial cache entry: {files:?}");
}

/// Calibrates `hotspot_v8.onnx` into `cache` (pushing frames until done); the entry's
/// model path.
fn calibrated_entry(cache: &Path) -> String {
    let mut r = run(&quick("hotspot_v8.onnx", cache));
    r.push_until(Duration::from_secs(120), |r| {
        !r.messages("zsqcalibrate-done").is_empty()
    });
    r.element("zc")
        .property::<Option<String>>("output-location")
        .unwrap()
}

#[test]
fn a_corrupt_cache_entry_is_detected_and_recalibrated() {
    let cache = tmp("corrupt");
    let entry = calibrated_entry(&cache);
    let bytes = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &bytes[..bytes.len() / 3]).unwrap();

    let mut again = run(&quick("hotspot_v8.onnx", &cache));
    again.push_until(Duration::from_secs(120), |r| {
        !r.messages("zsqcalibrate-done").is_empty()
    });
    let done = again.messages("zsqcalibrate-done");
    assert!(
        !done[0].get::<bool>("cache-hit").unwrap(),
        "a damaged entry is a miss"
    );
    assert_eq!(
        std::fs::read(&entry).unwrap().len(),
        bytes.len(),
        "and is made again whole"
    );
}

#[test]
fn an_unwritable_cache_keeps_the_int8_model_in_memory() {
    let dir = tmp("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let mut r = run(&quick("hotspot_v8.onnx", &file.join("cache")));
    let warnings = r.texts("warning");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("No cache") && w.contains("in memory")),
        "{warnings:?}"
    );
    r.push_until(Duration::from_secs(120), |r| {
        r.switches().iter().any(|s| s.1 == "u8s8")
    });
    r.push_frame();
    let active = r
        .element("td")
        .property::<Option<String>>("active-model")
        .unwrap();
    assert!(
        active.starts_with("memory://") && active.ends_with(".onnx"),
        "{active}"
    );
}

#[test]
fn distilling_a_model_without_bn_warns_and_keeps_fp32_or_errors() {
    let cache = tmp("nobn");
    let mut r = run(&format!(
        "{} calibration=distill",
        quick("hotspot_v8_nobn.onnx", &cache)
    ));
    r.push_until(Duration::from_secs(60), |r| {
        r.messages("warning").iter().any(|w| {
            w.get::<String>("text")
                .unwrap()
                .contains("calibration failed")
        })
    });
    for _ in 0..3 {
        r.push_frame(); // the fp32 model keeps detecting
    }
    let warning = r
        .texts("warning")
        .into_iter()
        .find(|w| w.contains("calibration failed"))
        .unwrap();
    assert!(warning.contains("BatchNormalization"), "{warning}");
    assert_eq!(state(&r.element("zc")), "failed");
    assert!(r.switches().iter().all(|s| s.1 == "fp32"));
    drop(r);

    let mut r = run(&format!(
        "{} calibration=distill on-failure=error",
        quick("hotspot_v8_nobn.onnx", &cache)
    ));
    let start = Instant::now();
    while r.texts("error").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "no error posted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(r.texts("error")[0].contains("Zero-shot calibration failed"));
}

/// The hot/cold detector with its BatchNormalization folded into the convolutions by
/// the quantizer's own folding: what a default YOLO export gives.
fn folded_fixture(dir: &Path) -> PathBuf {
    let mut model = thermalzsq::onnx::Model::load(fixture("hotspot_v8.onnx")).unwrap();
    let folded = thermalzsq::zsq::quantize::fold_batch_norms(&mut model).unwrap();
    assert!(folded.folded > 0 && folded.kept.is_empty(), "{folded:?}");
    let path = dir.join("hotspot_v8_folded.onnx");
    model.save(&path).unwrap();
    path
}

#[test]
fn a_folded_model_goes_int8_on_generated_scenes() {
    let dir = tmp("synth");
    let model = folded_fixture(&dir);
    for (calibration, cache) in [("synth", "cache-synth"), ("auto", "cache-auto")] {
        let mut r = run(&format!(
            "model={} cache-dir={} calibration={calibration} synth-count=6",
            model.display(),
            dir.join(cache).display()
        ));
        r.push_until(Duration::from_secs(120), |r| {
            r.switches().iter().any(|s| s.1 == "u8s8")
        });
        for _ in 0..3 {
            r.push_frame(); // the int8 model finds the hot and cold squares
        }
        let done = r.messages("zsqcalibrate-done");
        assert_eq!(done.len(), 1, "{calibration}");
        assert_eq!(
            done[0].get::<String>("calibration").unwrap(),
            "synth",
            "calibration={calibration}"
        );
        let stages: Vec<String> = r
            .messages("zsqcalibrate-progress")
            .iter()
            .map(|s| s.get("stage").unwrap())
            .collect();
        assert!(
            stages.contains(&"scenes".to_string()) && !stages.contains(&"distill".to_string()),
            "{stages:?}"
        );
        let location = done[0].get::<String>("location").unwrap();
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(PathBuf::from(location).with_extension("json")).unwrap(),
        )
        .unwrap();
        assert_eq!(report["calibration"]["source"], "synth");
        assert_eq!(report["calibration"]["images"], 6);
        assert_eq!(state(&r.element("zc")), "ready");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mix_distills_and_generates_scenes_and_says_so() {
    let cache = tmp("mix");
    let mut r = run(&format!(
        "{} calibration=mix synth-count=3",
        quick("hotspot_v8.onnx", &cache)
    ));
    r.push_until(Duration::from_secs(120), |r| {
        r.switches().iter().any(|s| s.1 == "u8s8")
    });
    let done = r.messages("zsqcalibrate-done");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].get::<String>("calibration").unwrap(), "mix");
    let stages: Vec<String> = r
        .messages("zsqcalibrate-progress")
        .iter()
        .map(|s| s.get("stage").unwrap())
        .collect();
    assert!(
        stages.contains(&"distill".to_string()) && stages.contains(&"scenes".to_string()),
        "{stages:?}"
    );
    let location = done[0].get::<String>("location").unwrap();
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(PathBuf::from(location).with_extension("json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["calibration"]["source"], "mix");
    assert_eq!(report["calibration"]["images"], 2 + 3);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn block_holds_frames_until_the_int8_model_is_ready() {
    let cache = tmp("block");
    let mut r = run(&format!("{} block=true", quick("hotspot_v8.onnx", &cache)));
    r.push_frame(); // returns only once calibration is done
    let switches = r.switches();
    assert_eq!(
        switches.first().map(|s| (s.1.as_str(), s.2)),
        Some(("u8s8", 0)),
        "int8 from the first frame: {switches:?} {:?}",
        r.seen
            .iter()
            .filter(|s| s.name() != "zsqcalibrate-progress")
            .collect::<Vec<_>>()
    );
    assert!(!r.messages("zsqcalibrate-done").is_empty());
}

#[test]
fn two_pipelines_calibrating_one_model_make_one_valid_entry() {
    let cache = tmp("two");
    let props = quick("hotspot_v8.onnx", &cache);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let props = props.clone();
            std::thread::spawn(move || {
                let mut r = run(&props);
                r.push_until(Duration::from_secs(180), |r| {
                    !r.messages("zsqcalibrate-done").is_empty()
                });
                let done = &r.messages("zsqcalibrate-done")[0];
                (
                    done.get::<String>("location").unwrap(),
                    done.get::<bool>("cache-hit").unwrap(),
                )
            })
        })
        .collect();
    let results: Vec<(String, bool)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results[0].0, results[1].0, "the same entry");
    assert_eq!(
        results.iter().filter(|r| !r.1).count(),
        1,
        "calibrated once: {results:?}"
    );
    let models = std::fs::read_dir(&cache)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "onnx")
        })
        .count();
    assert_eq!(models, 1);
    thermalzsq::onnx::Model::load(&results[0].0).expect("a valid model");
}

/// Holds a calibration worker where it posts its first distillation progress, so a
/// second element started meanwhile surely finds it calibrating.
#[derive(Default)]
struct Gate {
    /// The worker is held.
    held: AtomicBool,
    /// The worker may go on.
    open: AtomicBool,
}

/// A bus whose sync handler (it runs on the posting thread: the worker) holds the
/// worker at `gate` until it opens (a minute at most: a failing test must not hang).
fn bus_held_at_first_progress(gate: &Arc<Gate>) -> gst::Bus {
    init();
    let bus = gst::Bus::new();
    let gate = gate.clone();
    bus.set_sync_handler(move |_, msg| {
        let distill = |s: &gst::StructureRef| {
            s.name() == "zsqcalibrate-progress" && s.get::<&str>("stage").ok() == Some("distill")
        };
        if let gst::MessageView::Element(e) = msg.view()
            && e.structure().is_some_and(distill)
        {
            gate.held.store(true, Ordering::SeqCst);
            let since = Instant::now();
            while !gate.open.load(Ordering::SeqCst) && since.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        gst::BusSyncReply::Pass
    });
    bus
}

/// Waits (a minute at most) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let since = Instant::now();
    while !done() {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "gave up waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stages of the progress messages `r` posted so far.
fn stages(r: &mut Run) -> Vec<String> {
    r.messages("zsqcalibrate-progress")
        .iter()
        .map(|s| s.get::<String>("stage").unwrap())
        .collect()
}

/// A leader held mid-calibration with `props`, and a second element on the same
/// model and settings that waits for it.
fn leader_and_waiter(props: &str) -> (Run, Run, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let leader = run_on_bus(props, bus_held_at_first_progress(&gate));
    wait_until("the leader distills", || gate.held.load(Ordering::SeqCst));
    let mut waiter = run(props);
    assert_eq!(state(&waiter.element("zc")), "calibrating");
    wait_until("the second element waits", || {
        stages(&mut waiter).iter().any(|s| s == "wait")
    });
    (leader, waiter, gate)
}

/// Sets `r` to NULL on another thread; a hang is a failure, not a stuck test.
fn to_null(r: Run) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        r.h.element().unwrap().set_state(gst::State::Null).unwrap();
        drop(r);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("going to NULL must not hang");
}

#[test]
fn two_elements_without_a_cache_calibrate_once_and_both_run_int8() {
    // No usable cache: no file lock either, only the in-process flight keeps the
    // second element from calibrating again.
    let dir = tmp("shared-memory");
    let file = dir.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let props = format!("{} seed=11", quick("hotspot_v8.onnx", &file.join("cache")));
    let (mut leader, mut waiter, gate) = leader_and_waiter(&props);
    gate.open.store(true, Ordering::SeqCst);
    for r in [&mut leader, &mut waiter] {
        r.push_until(Duration::from_secs(120), |r| {
            r.switches().iter().any(|s| s.1 == "u8s8")
        });
        r.push_frame();
    }
    let done = |r: &mut Run| {
        let d = &r.messages("zsqcalibrate-done")[0];
        (
            d.get::<bool>("cache-hit").unwrap(),
            d.get::<bool>("shared").unwrap(),
        )
    };
    assert_eq!(done(&mut leader), (false, false), "the leader calibrated");
    assert_eq!(done(&mut waiter), (true, true), "the waiter got its model");
    assert!(stages(&mut leader).iter().any(|s| s == "distill"));
    assert_eq!(
        stages(&mut waiter),
        ["wait"],
        "the waiter distilled nothing"
    );
    let active = |r: &Run| {
        r.element("td")
            .property::<Option<String>>("active-model")
            .unwrap()
    };
    assert!(
        active(&leader).starts_with("memory://"),
        "{}",
        active(&leader)
    );
    assert_eq!(active(&leader), active(&waiter), "one int8 model");
}

#[test]
fn a_waiting_element_stops_at_once_and_the_leader_goes_on() {
    let cache = tmp("shared-cancel");
    let props = format!("{} seed=12", quick("hotspot_v8.onnx", &cache));
    let (mut leader, waiter, gate) = leader_and_waiter(&props);
    to_null(waiter);
    gate.open.store(true, Ordering::SeqCst);
    leader.push_until(Duration::from_secs(120), |r| {
        !r.messages("zsqcalibrate-done").is_empty()
    });
    let done = &leader.messages("zsqcalibrate-done")[0];
    assert!(!done.get::<bool>("shared").unwrap());
    assert!(!done.get::<bool>("cache-hit").unwrap());
    thermalzsq::onnx::Model::load(done.get::<String>("location").unwrap()).unwrap();
}

#[test]
fn a_waiting_element_calibrates_itself_when_the_leader_stops() {
    let cache = tmp("shared-takeover");
    let props = format!(
        "{} seed=13 iterations=100000",
        quick("hotspot_v8.onnx", &cache)
    );
    let (leader, mut waiter, gate) = leader_and_waiter(&props);
    gate.open.store(true, Ordering::SeqCst);
    to_null(leader);
    wait_until("the waiter distills", || {
        stages(&mut waiter).iter().any(|s| s == "distill")
    });
    assert_eq!(state(&waiter.element("zc")), "calibrating");
    to_null(waiter);
}

#[test]
fn force_recalibrates_and_replaces_the_cached_entry() {
    use std::os::unix::fs::MetadataExt;
    let cache = tmp("force");
    let entry = calibrated_entry(&cache);
    let report = PathBuf::from(&entry).with_extension("json");
    let stored = std::fs::metadata(&report).unwrap().ino();

    let mut forced = run(&format!("{} force=true", quick("hotspot_v8.onnx", &cache)));
    assert_eq!(state(&forced.element("zc")), "calibrating");
    forced.push_until(Duration::from_secs(120), |r| {
        !r.messages("zsqcalibrate-done").is_empty()
    });
    let done = &forced.messages("zsqcalibrate-done")[0];
    eprintln!(
        "forced recalibration: {:.2} s",
        done.get::<f64>("seconds").unwrap()
    );
    assert!(
        !done.get::<bool>("cache-hit").unwrap(),
        "force calibrates although the cache holds the model"
    );
    assert_eq!(done.get::<String>("location").unwrap(), entry);
    assert_ne!(
        std::fs::metadata(&report).unwrap().ino(),
        stored,
        "the entry is replaced"
    );
    thermalzsq::onnx::Model::load(&entry).expect("a whole model");
    drop(forced);

    let mut warm = run(&quick("hotspot_v8.onnx", &cache));
    let done = warm.messages("zsqcalibrate-done");
    assert!(
        done[0].get::<bool>("cache-hit").unwrap(),
        "the new entry hits"
    );
}

/// `gst-launch-1.0 -v` (property changes printed) of a GRAY8 test source through
/// zsqcalibrate with `props` and its calibration worker made to panic (the element's
/// test hook); killed by `timeout` after 60 s.
fn launch_with_a_panicking_worker(name: &str, props: &str) -> (Option<i32>, String) {
    let dir = tmp(name);
    let out = std::process::Command::new("timeout")
        .args([
            "60",
            "gst-launch-1.0",
            "-v",
            "videotestsrc",
            "num-buffers=30",
            "!",
        ])
        .args([
            "video/x-raw,format=GRAY8,width=64,height=64",
            "!",
            "zsqcalibrate",
        ])
        .arg("name=zc")
        .args(quick("hotspot_v8.onnx", &dir.join("cache")).split_whitespace())
        .args(props.split_whitespace())
        .args(["!", "fakesink"])
        .env("GST_PLUGIN_PATH", common::plugin_dir())
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .env("THERMALZSQ_TEST_PANIC_IN_CALIBRATION", "1")
        .output()
        .expect("gst-launch-1.0 runs (apt install gstreamer1.0-tools)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn a_panicking_worker_fails_calibration_and_releases_blocked_frames() {
    // block=true: frames wait for calibration; the panic must release them, so the
    // pipeline reaches EOS on fp32 instead of waiting until `timeout` kills it.
    let (code, text) = launch_with_a_panicking_worker("panic-warn", "block=true on-failure=warn");
    assert_ne!(code, Some(124), "the pipeline hung: {text}");
    assert_eq!(code, Some(0), "EOS reached: {text}");
    assert!(text.contains("zc: state = failed"), "{text}");
    let warning = text
        .lines()
        .find(|l| l.contains("WARNING: from element") && l.contains("zc"))
        .unwrap_or_else(|| panic!("no warning: {text}"));
    assert!(
        warning.contains("Zero-shot calibration failed"),
        "{warning}"
    );
    assert!(text.contains("panicked"), "{text}");

    let (code, text) = launch_with_a_panicking_worker("panic-error", "block=true on-failure=error");
    assert_ne!(code, Some(124), "the pipeline hung: {text}");
    assert_ne!(code, Some(0), "on-failure=error stops the pipeline: {text}");
    // (gst-launch stops at the error, posted before `state` changes: no state line.)
    let error = text
        .lines()
        .find(|l| l.contains("ERROR: from element") && l.contains("zc"))
        .unwrap_or_else(|| panic!("no error: {text}"));
    assert!(error.contains("Zero-shot calibration failed"), "{error}");
}

#[test]
fn blocked_frames_are_released_by_a_flushing_seek_and_by_going_to_null() {
    init();
    let cache = tmp("block-flush");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc ! video/x-raw,format=GRAY8,width=64,height=64 \
         ! zsqcalibrate {} iterations=100000 block=true ! fakesink",
        quick("hotspot_v8.onnx", &cache)
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing); // async: the first frame waits
    let progress = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Element],
    );
    assert!(progress.is_some(), "calibration started");
    // A watchdog: each step must return while the frame is still held for calibration.
    let within = |what: &str, f: Box<dyn FnOnce() -> bool + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        let ok = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what} hung"));
        assert!(ok, "{what} failed");
    };
    let p = pipeline.clone();
    within(
        "a flushing seek",
        Box::new(move || {
            p.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO)
                .is_ok()
        }),
    );
    let p = pipeline.clone();
    within(
        "going to NULL",
        Box::new(move || p.set_state(gst::State::Null).is_ok()),
    );
}

/// Runs `zsqcalibrate ! thermaldetect` on `cache` until int8 runs; the int8 model must
/// be the in-memory one, announced with a warning containing `warning`, and detect.
fn runs_on_the_in_memory_model(cache: &Path, warning: &str) {
    let mut r = run(&quick("hotspot_v8.onnx", cache));
    r.push_until(Duration::from_secs(120), |r| {
        r.switches().iter().any(|s| s.1 == "u8s8")
    });
    for _ in 0..3 {
        r.push_frame(); // detections on int8 (push_frame checks the boxes)
    }
    let active = r
        .element("td")
        .property::<Option<String>>("active-model")
        .unwrap();
    assert!(active.starts_with("memory://"), "{active}");
    let warnings = r.texts("warning");
    assert!(warnings.iter().any(|w| w.contains(warning)), "{warnings:?}");
    assert_eq!(state(&r.element("zc")), "ready");
}

#[test]
fn a_full_cache_filesystem_keeps_the_model_in_memory_and_leaves_no_partial_file() {
    let dir = tmp("full-fs");
    let Some(mount) = Mount::tmpfs(&dir.join("fs"), "size=64k") else {
        return;
    };
    // Full but one page: the cache opens (its probe fits), the entry does not.
    mount.fill_leaving_one_page();
    runs_on_the_in_memory_model(&mount.0, "Cannot cache the int8 model");
    let mut left: Vec<String> = std::fs::read_dir(&mount.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler" && !n.ends_with(".lock"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "no partial entry or temporary: {left:?}");
}

#[test]
fn a_read_only_cache_directory_keeps_the_model_in_memory() {
    let dir = tmp("ro-fs");
    let Some(mount) = Mount::tmpfs(&dir.join("fs"), "ro,size=64k") else {
        return;
    };
    runs_on_the_in_memory_model(&mount.0, "Read-only file system");
}

#[test]
fn min_improvement_ends_distillation_when_the_loss_stops_improving() {
    // A million steps would not finish within the test's limit: only the early stop
    // brings the int8 model.
    let cache = tmp("early-stop");
    let mut r = run(&format!(
        "model={} cache-dir={} iterations=1000000 batch-size=2 min-improvement=0.9",
        fixture("hotspot_v8.onnx").display(),
        cache.display()
    ));
    assert_eq!(r.element("zc").property::<f64>("min-improvement"), 0.9);
    r.push_until(Duration::from_secs(120), |r| {
        r.switches().iter().any(|s| s.1 == "u8s8")
    });
    // Progress is posted at most every 250 ms: the last step seen is a lower bound.
    let seen = r
        .messages("zsqcalibrate-progress")
        .iter()
        .filter(|s| s.get::<String>("stage").unwrap() == "distill")
        .map(|s| s.get::<u32>("iteration").unwrap())
        .max()
        .unwrap();
    assert!(
        seen < 1000,
        "step {seen} of a distillation that should have stopped"
    );
    assert_eq!(
        gst::ElementFactory::make("zsqcalibrate")
            .build()
            .unwrap()
            .property::<f64>("min-improvement"),
        0.0
    );
}
