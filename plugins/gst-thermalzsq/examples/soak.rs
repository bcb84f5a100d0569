//! Soak: does a pipeline that runs for days keep its memory? `thermaldetect !
//! thermaltrack` (drawing, ROI metas, element messages, JSON lines, zones) on a looped
//! `zsq synth` recording for `--frames` frames (default 100,000), as fast as it goes;
//! every 1,000 frames the process's resident memory (VmRSS), its threads and its open
//! file descriptors are sampled. After `--warmup` frames (default 10,000: ONNX Runtime's
//! arenas, the tracker's tables and GStreamer's buffer pools have grown to their size by
//! then) RSS must stay flat: the least-squares slope over the remaining samples is
//! printed in KB per 10,000 frames, with the threads and fds at the start and the end.
//!
//! ```sh
//! cargo run --release -p gst-plugin-thermalzsq --example soak -- \
//!     [--model models/det_thermal_ft.onnx] [--frames 100000] [--warmup 10000] \
//!     [--size 640x512] [--csv out/soak.csv]
//! ```
//! A leak of one 640x512 GRAY8 frame per 1,000 frames would show as ~3,200 KB per 10k
//! frames; a leaked thread or fd per stream start shows in the counts. The pipeline
//! plays the recording forward and back (no jump, so tracks live long and die and are
//! born again as objects wrap). Exit status 1 if the pipeline posts an error.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use thermalzsq::synth::Recording;

const USAGE: &str = "usage: soak [--model M] [--frames N] [--warmup N] [--size WxH] [--csv FILE]";

struct Args {
    model: String,
    frames: u64,
    warmup: u64,
    size: (u32, u32),
    csv: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: "models/det_thermal_ft.onnx".into(),
        frames: 100_000,
        warmup: 10_000,
        size: (640, 512),
        csv: None,
    };
    cli::each(|mut a| {
        match a.name.as_str() {
            "--model" => args.model = a.value()?,
            "--frames" => args.frames = a.parse()?,
            "--warmup" => args.warmup = a.parse()?,
            "--csv" => args.csv = Some(a.value()?.into()),
            "--size" => args.size = a.size()?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
        Ok(())
    })?;
    if args.warmup + 2_000 > args.frames {
        return Err("--frames must exceed --warmup by at least 2,000 (two samples)".into());
    }
    Ok(args)
}

/// One reading every 1,000 frames.
#[derive(Clone, Copy)]
struct Sample {
    frame: u64,
    rss_kb: u64,
    threads: u64,
    fds: u64,
    seconds: f64,
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Least-squares slope of RSS (KB) per frame over `samples`.
fn slope(samples: &[Sample]) -> f64 {
    let n = samples.len() as f64;
    let mx = samples.iter().map(|s| s.frame as f64).sum::<f64>() / n;
    let my = samples.iter().map(|s| s.rss_kb as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for s in samples {
        let dx = s.frame as f64 - mx;
        sxy += dx * (s.rss_kb as f64 - my);
        sxx += dx * dx;
    }
    sxy / sxx
}

/// 300 frames of a rendered recording as GRAY16_LE bytes.
fn recording(width: u32, height: u32) -> Result<Vec<Vec<u8>>, String> {
    let rec = Recording::new(101, width, height).map_err(|e| e.to_string())?;
    Ok((0..300)
        .map(|i| {
            rec.frame(i)
                .thermal
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        })
        .collect())
}

fn run(args: &Args) -> Result<Vec<Sample>, String> {
    gst::init().map_err(|e| e.to_string())?;
    gstthermalzsq::plugin_register_static().map_err(|e| e.to_string())?;
    let (w, h) = args.size;
    let dir = std::env::temp_dir().join(format!("thermalzsq-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let zones = dir.join("zones.json");
    std::fs::write(
        &zones,
        format!(
            r#"{{"zones":[{{"name":"gate","polygon":[[{a},0],[{b},0],[{b},{h}],[{a},{h}]]}}],
                "lines":[{{"name":"entry","points":[[{c},0],[{c},{h}]]}}]}}"#,
            a = w / 3,
            b = 2 * w / 3,
            c = 5 * w / 6,
        ),
    )
    .map_err(|e| e.to_string())?;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc name=src num-buffers={frames} pattern=black \
         ! video/x-raw,format=GRAY16_LE,width={w},height={h},framerate=30/1 \
         ! thermaldetect model={model} threads=2 json-location={djson} \
         ! thermaltrack zones={zones} json-location={tjson} \
         ! fakesink name=sink sync=false",
        frames = args.frames,
        model = args.model,
        djson = dir.join("detections.jsonl").display(),
        zones = zones.display(),
        tjson = dir.join("tracks.jsonl").display(),
    ))
    .map_err(|e| e.to_string())?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let pad = |element: &str, pad: &str| {
        pipeline
            .by_name(element)
            .and_then(|e| e.static_pad(pad))
            .ok_or(format!("no {element}.{pad}"))
    };

    // The source's black frames become the recording's, played forward then back
    // (0..299, 298..1, 0..): no jump, so tracks live long, end and start again.
    let frames = recording(w, h)?;
    let played = std::sync::atomic::AtomicU64::new(0);
    pad("src", "src")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let i = played.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let k = (i % 598) as usize;
        let frame = &frames[if k < 300 { k } else { 598 - k }];
        if let Some(gst::PadProbeData::Buffer(buf)) = &mut info.data
            && let Ok(mut map) = buf.make_mut().map_writable()
        {
            map.copy_from_slice(frame);
        }
        gst::PadProbeReturn::Ok
    });

    let samples = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let every = 1_000u64;
    let seen = std::sync::atomic::AtomicU64::new(0);
    let recorded = samples.clone();
    pad("sink", "sink")?.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n.is_multiple_of(every) {
            let s = Sample {
                frame: n,
                rss_kb: status_field("VmRSS:"),
                threads: status_field("Threads:"),
                fds: open_fds(),
                seconds: started.elapsed().as_secs_f64(),
            };
            println!(
                "{:>7} frames  RSS {:>7} KB  threads {:>3}  fds {:>3}  {:>6.1} fps",
                s.frame,
                s.rss_kb,
                s.threads,
                s.fds,
                s.frame as f64 / s.seconds
            );
            recorded.lock().unwrap().push(s);
        }
        gst::PadProbeReturn::Ok
    });

    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("start: {e}"))?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let mut result = Ok(());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                result = Err(format!("{}: {:?}", e.error(), e.debug()));
                break;
            }
            _ => {}
        }
    }
    pipeline
        .set_state(gst::State::Null)
        .map_err(|e| format!("stop: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let samples = samples.lock().unwrap().clone();
    Ok(samples)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return cli::usage_error(&e),
    };
    let samples = match run(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(csv) = &args.csv {
        let text: String = std::iter::once("frame,rss_kb,threads,fds,seconds\n".to_string())
            .chain(samples.iter().map(|s| {
                format!(
                    "{},{},{},{},{:.3}\n",
                    s.frame, s.rss_kb, s.threads, s.fds, s.seconds
                )
            }))
            .collect();
        if let Err(e) = std::fs::write(csv, text) {
            eprintln!("soak: {}: {e}", csv.display());
        }
    }
    let after: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.frame > args.warmup)
        .collect();
    let (first, last) = (after[0], after[after.len() - 1]);
    println!(
        "after {} warm-up frames: RSS {} -> {} KB, slope {:+.1} KB per 10k frames; \
         threads {} -> {}, fds {} -> {}; {:.1} fps overall",
        args.warmup,
        first.rss_kb,
        last.rss_kb,
        slope(&after) * 10_000.0,
        first.threads,
        last.threads,
        first.fds,
        last.fds,
        last.frame as f64 / last.seconds
    );
    ExitCode::SUCCESS
}
