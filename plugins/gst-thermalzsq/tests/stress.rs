//! State-change stress: 200 cycles NULL -> PLAYING -> NULL of `zsqcalibrate !
//! thermaldetect`, stopped at moments chosen to hit the elements' background work:
//! while the calibration worker distils, while `thermaldetect` swaps in the int8 model a
//! warm cache announced at start, and right after a calibration finished (its
//! announcement and the detector's load in flight). A watchdog aborts the test binary
//! if one state change does not return (a deadlock); afterwards the process has no more
//! threads or open file descriptors than after the warm-up cycles (nothing leaked per
//! cycle), and no cycle posted an error.
//!
//! One test in its own binary: the thread and fd counts are the process's.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;

use common::{fixture, init};

const CYCLES: u32 = 200;
/// How long one cycle may take before it counts as hung.
const WATCHDOG: Duration = Duration::from_secs(90);

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-stress-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Deterministic delays (a 64-bit LCG; the test must be reproducible).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[derive(Clone, Copy, Debug)]
enum Moment {
    /// Cold cache, a distillation that would run for minutes: stopped mid-calibration.
    Calibrating,
    /// Warm cache: the int8 model is announced at start, stopped while it loads.
    WarmSwap,
    /// Cold cache, a short calibration: stopped right after it is done.
    AfterCalibration,
}

fn pipeline(cache: &Path, iterations: u32) -> gst::Pipeline {
    gst::parse::launch(&format!(
        "videotestsrc pattern=ball ! video/x-raw,format=GRAY8,width=320,height=256,framerate=30/1 \
         ! zsqcalibrate name=zc model={} cache-dir={} iterations={iterations} batch-size=2 \
         ! thermaldetect name=td post-messages=false threads=1 ! fakesink sync=false",
        fixture("hotspot_v8.onnx").display(),
        cache.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap()
}

/// What one cycle saw when it stopped.
struct Seen {
    /// zsqcalibrate's `state` at the moment of the stop.
    calibrating: bool,
    /// Whether thermaldetect ran the int8 model (from the cache) at the stop.
    int8_active: bool,
    errors: Vec<String>,
}

/// Runs one cycle.
fn cycle(moment: Moment, cache: &Path, delay: Duration) -> Seen {
    let iterations = match moment {
        Moment::Calibrating => 100_000,
        Moment::WarmSwap | Moment::AfterCalibration => 3,
    };
    let p = pipeline(cache, iterations);
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    if let Moment::AfterCalibration = moment {
        let deadline = Instant::now() + Duration::from_secs(60);
        let done = std::iter::from_fn(|| {
            let left = deadline.saturating_duration_since(Instant::now());
            bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(left.as_nanos() as u64),
                &[gst::MessageType::Element, gst::MessageType::Error],
            )
        })
        .find(|m| {
            matches!(m.view(), gst::MessageView::Error(_))
                || m.structure()
                    .is_some_and(|s| s.name() == "zsqcalibrate-done")
        });
        assert!(done.is_some(), "a short calibration ends within a minute");
    }
    std::thread::sleep(delay);
    let zc = p.by_name("zc").unwrap();
    let calibrating = gst::glib::EnumValue::from_value(&zc.property_value("state"))
        .is_some_and(|(_, v)| v.nick() == "calibrating");
    let int8_active = p
        .by_name("td")
        .unwrap()
        .property::<Option<String>>("active-model")
        .is_some_and(|m| m.starts_with(cache.to_str().unwrap()));
    p.set_state(gst::State::Null).unwrap();
    let errors = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(format!("{moment:?}: {}", e.error())),
            _ => None,
        })
        .collect();
    drop(p);
    Seen {
        calibrating,
        int8_active,
        errors,
    }
}

#[test]
fn two_hundred_state_cycles_during_calibration_and_swaps_leak_nothing() {
    init();
    let warm = tmp("warm");
    // Fill the warm cache once.
    cycle(Moment::AfterCalibration, &warm, Duration::ZERO);

    let (beat, watch) = mpsc::channel::<(u32, Moment)>();
    std::thread::spawn(move || {
        let mut last = (0, Moment::WarmSwap);
        loop {
            match watch.recv_timeout(WATCHDOG) {
                Ok(b) => last = b,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "watchdog: cycle {} ({:?}) did not finish in {WATCHDOG:?}: deadlock",
                        last.0, last.1
                    );
                    std::process::abort();
                }
            }
        }
    });

    let mut rng = Lcg(13);
    let mut errors = Vec::new();
    let mut baseline = None;
    // (stopped mid-calibration, warm starts stopped before the int8 model ran, after)
    let (mut mid_calibration, mut warm_before, mut warm_after) = (0, 0, 0);
    let started = Instant::now();
    for i in 0..CYCLES {
        let moment = match i % 10 {
            0 => Moment::AfterCalibration,
            1 | 3 | 5 | 7 | 9 => Moment::Calibrating,
            _ => Moment::WarmSwap,
        };
        beat.send((i, moment)).unwrap();
        let cold = tmp("cold");
        let cache = match moment {
            Moment::WarmSwap => &warm,
            Moment::Calibrating | Moment::AfterCalibration => &cold,
        };
        let delay = Duration::from_millis(rng.below(40));
        let seen = cycle(moment, cache, delay);
        match moment {
            Moment::Calibrating => mid_calibration += seen.calibrating as u32,
            Moment::WarmSwap if seen.int8_active => warm_after += 1,
            Moment::WarmSwap => warm_before += 1,
            Moment::AfterCalibration => {}
        }
        errors.extend(seen.errors);
        if i == 9 {
            baseline = Some((threads(), fds()));
        }
    }
    drop(beat);
    let (base_threads, base_fds) = baseline.unwrap();
    // Threads that finish their last words after NULL returned get a moment to exit.
    let settle = Instant::now();
    while (threads() > base_threads || fds() > base_fds)
        && settle.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "{CYCLES} cycles in {:.1} s; stopped mid-calibration {mid_calibration}, warm starts \
         stopped before / after the int8 model ran {warm_before} / {warm_after}; \
         threads {base_threads} -> {}, fds {base_fds} -> {}",
        started.elapsed().as_secs_f64(),
        threads(),
        fds()
    );
    // The stops hit what they aim at (else this test would prove little).
    assert!(
        mid_calibration >= 90,
        "{mid_calibration} of 100 mid-calibration"
    );
    assert!(
        warm_before > 0 && warm_after > 0,
        "{warm_before} / {warm_after}"
    );
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(
        threads() <= base_threads,
        "threads leaked: {base_threads} after warm-up, {} after {CYCLES} cycles",
        threads()
    );
    assert!(
        fds() <= base_fds,
        "file descriptors leaked: {base_fds} after warm-up, {} after {CYCLES} cycles",
        fds()
    );
}
