//! Many cameras per box: what N `thermaldetect` streams in one process cost, with one
//! shared ONNX Runtime session (`share-session=true`, the default) or one session per
//! stream. Each stream is a live 640x512 GRAY16_LE source at 30 frames/s (videotestsrc)
//! behind a leaky one-frame queue, so a stream that cannot keep up drops frames instead
//! of falling behind; the frames each detector really ran are counted.
//!
//! ```sh
//! cargo run -p gst-plugin-thermalzsq --example streams -- --streams 4 [--private] \
//!     [--seconds 20] [--warmup 5] [--threads 0] [--model models/det_thermal_ft.onnx]
//! cargo run -p gst-plugin-thermalzsq --example streams -- --calibrate
//! ```
//! One configuration per process, so the peak resident memory (VmHWM) is that
//! configuration's own. Printed: frames/s sustained per stream (after `--warmup`
//! seconds), the process's CPU time over the window as a percentage of one core, its
//! peak and current RSS, its threads, and `session-users` of the first detector.
//!
//! `--calibrate`: one stream with `zsqcalibrate` (a fresh cache directory) in front of
//! the detector instead; runs until the int8 model is made and runs `--seconds` more,
//! to compare the peak RSS of calibrating with detection alone.

mod cli;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;

const USAGE: &str = "usage: streams [--streams N] [--private] [--seconds S] [--warmup S] \
                     [--threads T] [--model M] [--calibrate]";

struct Args {
    streams: usize,
    share: bool,
    seconds: u64,
    warmup: u64,
    threads: u32,
    model: String,
    calibrate: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        streams: 1,
        share: true,
        seconds: 20,
        warmup: 5,
        threads: 0,
        model: "models/det_thermal_ft.onnx".into(),
        calibrate: false,
    };
    cli::each(|mut a| {
        match a.name.as_str() {
            "--streams" => args.streams = a.parse::<usize>()?.max(1),
            "--private" => args.share = false,
            "--seconds" => args.seconds = a.parse()?,
            "--warmup" => args.warmup = a.parse()?,
            "--threads" => args.threads = a.parse()?,
            "--model" => args.model = a.value()?,
            "--calibrate" => args.calibrate = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
        Ok(())
    })?;
    Ok(args)
}

/// A `/proc/self/status` field in kB (or a count, for `Threads`).
fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_string))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process has used: `/proc/self/stat` fields 14 and
/// 15, in clock ticks (100 per second on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces: fields count from after its closing ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn description(args: &Args, cache: &std::path::Path) -> String {
    let mut d = String::new();
    for i in 0..args.streams {
        let calibrate = if args.calibrate {
            format!(
                "zsqcalibrate model={} cache-dir={} ! ",
                args.model,
                cache.display()
            )
        } else {
            String::new()
        };
        let model = if args.calibrate {
            String::new()
        } else {
            format!("model={}", args.model)
        };
        d.push_str(&format!(
            "videotestsrc is-live=true pattern=ball ! \
             video/x-raw,format=GRAY16_LE,width=640,height=512,framerate=30/1 ! \
             queue leaky=downstream max-size-buffers=1 max-size-bytes=0 max-size-time=0 ! \
             {calibrate}thermaldetect name=d{i} {model} execution-provider=cpu \
             threads={} share-session={} post-messages=false ! fakesink sync=false ",
            args.threads, args.share
        ));
    }
    d
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return cli::usage_error(&e),
    };
    gst::init().expect("GStreamer initialises");
    gstthermalzsq::plugin_register_static().expect("the plugin registers");
    let cache = std::env::temp_dir().join(format!("tzsq-streams-{}", std::process::id()));
    let pipeline = gst::parse::launch(&description(&args, &cache))
        .expect("the pipeline parses")
        .downcast::<gst::Pipeline>()
        .unwrap();
    let counters: Vec<Arc<AtomicU64>> = (0..args.streams)
        .map(|i| {
            let n = Arc::new(AtomicU64::new(0));
            let counter = n.clone();
            pipeline
                .by_name(&format!("d{i}"))
                .unwrap()
                .static_pad("src")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
            n
        })
        .collect();
    let bus = pipeline.bus().unwrap();
    let started = Instant::now();
    pipeline
        .set_state(gst::State::Playing)
        .expect("the pipeline plays");

    // Warm-up: the models load and the first runs pay ONNX Runtime's lazy set-up; with
    // --calibrate, until the int8 model is made.
    let mut calibrated = None;
    let warmup_end = Instant::now() + Duration::from_secs(args.warmup);
    loop {
        let timeout = gst::ClockTime::from_mseconds(100);
        if let Some(msg) = bus.timed_pop(timeout) {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    eprintln!("error: {} ({:?})", e.error(), e.debug());
                    let _ = pipeline.set_state(gst::State::Null);
                    return ExitCode::FAILURE;
                }
                gst::MessageView::Element(e)
                    if e.structure()
                        .is_some_and(|s| s.name() == "zsqcalibrate-done") =>
                {
                    let s = e.structure().unwrap();
                    calibrated = Some(s.get::<f64>("seconds").unwrap_or(f64::NAN));
                }
                _ => {}
            }
        }
        if Instant::now() >= warmup_end && (!args.calibrate || calibrated.is_some()) {
            break;
        }
    }
    let peak_while_warming = status("VmHWM");
    let frames0: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    std::thread::sleep(Duration::from_secs(args.seconds));
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let fps: Vec<f64> = counters
        .iter()
        .zip(&frames0)
        .map(|(c, f0)| (c.load(Ordering::Relaxed) - f0) as f64 / wall)
        .collect();
    let users = pipeline
        .by_name("d0")
        .unwrap()
        .property::<u32>("session-users");
    let (hwm, rss, threads) = (status("VmHWM"), status("VmRSS"), status("Threads"));
    let _ = pipeline.set_state(gst::State::Null);
    let _ = std::fs::remove_dir_all(&cache);

    let mean = fps.iter().sum::<f64>() / fps.len() as f64;
    let min = fps.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "streams={} session={} threads={} fps/stream mean={mean:.1} min={min:.1} total={:.1} \
         cpu={:.0}% peak_rss={:.0}MiB rss={:.0}MiB threads_in_process={threads} \
         session_users={users}{}",
        args.streams,
        if args.share { "shared" } else { "private" },
        args.threads,
        fps.iter().sum::<f64>(),
        100.0 * cpu / wall,
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0,
        calibrated.map_or(String::new(), |s| format!(
            " calibrated_in={s:.1}s peak_rss_by_then={:.0}MiB",
            peak_while_warming as f64 / 1024.0
        )),
    );
    eprintln!("(ran {:.0} s in all)", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}
