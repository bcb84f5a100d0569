//! Embedding the detector and the tracker in an application: build the pipeline in code,
//! read the `thermaltrack-event` messages from the bus and print what a security desk
//! wants to hear — "person 12 entered zone gate", "person 12 loitered 2.0 s in zone
//! gate" — instead of raw boxes per frame. Identities, zones and dwell times come from
//! `thermaltrack`; this program only words its events.
//!
//! ```sh
//! cargo run --release -p gst-plugin-thermalzsq --example alerts -- \
//!     --model models/det_thermal_ft.onnx --zone 200,150,450,400 --label person --seconds 2 \
//!     out/demo/recording.gray16le          # or /dev/video0, or rtsp://camera/stream
//! ```
//! `--zone x0,y0,x1,y1` watches one rectangle (named by `--zone-name`, default "watched")
//! for objects labelled `--label` (default: every label); `--zones FILE` takes a
//! thermaltrack zones file instead (polygons, lines, labels per zone). A track is in a
//! zone when its box's bottom centre is. `--seconds` is how long it must stay before a
//! loiter alert. A `.gray16le` (or `.gray8`) file is read as raw 640x512 frames at
//! 30 fps (`--size WxH` changes it); an `rtsp://` URL is decoded from the network;
//! anything else is taken as a V4L2 device.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use gst::prelude::*;

struct Args {
    source: String,
    model: String,
    zones: Option<PathBuf>,
    zone: Option<[f64; 4]>,
    zone_name: String,
    label: Option<String>,
    seconds: f64,
    size: (u32, u32),
}

const USAGE: &str = "usage: alerts [--model M] [--zone x0,y0,x1,y1 [--zone-name N] [--label L] | --zones FILE] [--seconds S] [--size WxH] FILE.gray16le|FILE.gray8|/dev/videoN|rtsp://URL";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        source: String::new(),
        model: "models/det_thermal_ft.onnx".into(),
        zones: None,
        zone: None,
        zone_name: "watched".into(),
        label: None,
        seconds: 2.0,
        size: (640, 512),
    };
    cli::each(|mut a| {
        match a.name.as_str() {
            "--model" => args.model = a.value()?,
            "--zones" => args.zones = Some(a.value()?.into()),
            "--zone-name" => args.zone_name = a.value()?,
            "--label" => args.label = Some(a.value()?),
            "--seconds" => args.seconds = a.parse()?,
            "--zone" => {
                let v: Vec<f64> = a
                    .value()?
                    .split(',')
                    .map(|x| x.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--zone: {e}"))?;
                args.zone = Some(
                    v.try_into()
                        .map_err(|_| "--zone takes x0,y0,x1,y1".to_string())?,
                );
            }
            "--size" => args.size = a.size()?,
            "-h" | "--help" => return Err(USAGE.into()),
            s if !s.starts_with("--") && args.source.is_empty() => args.source = s.into(),
            other => return Err(format!("unknown argument {other}; {USAGE}")),
        }
        Ok(())
    })?;
    if args.source.is_empty() {
        return Err(USAGE.into());
    }
    if args.zones.is_some() && (args.zone.is_some() || args.label.is_some()) {
        return Err(
            "--zones FILE holds the zones and their labels; --zone and --label build one instead"
                .into(),
        );
    }
    Ok(args)
}

/// The thermaltrack zones file for `--zone`: one rectangle, for one label or all.
fn zone_file(args: &Args, [x0, y0, x1, y1]: [f64; 4]) -> Result<PathBuf, String> {
    let mut zone = serde_json::json!({
        "name": args.zone_name,
        "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
    });
    if let Some(label) = &args.label {
        zone["labels"] = serde_json::json!([label]);
    }
    let path = std::env::temp_dir().join(format!("alerts-zones-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::json!({ "zones": [zone] }).to_string())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn pipeline(args: &Args, zones: Option<&PathBuf>) -> Result<gst::Pipeline, String> {
    let mut track = format!(
        "thermaltrack name=track loiter-seconds={} draw=false",
        args.seconds
    );
    if let Some(z) = zones {
        track += &format!(" zones=\"{}\"", z.display());
    }
    let chain = format!(
        "thermaldetect model=\"{}\" draw=false post-messages=false ! {track} ! fakesink",
        args.model
    );
    let (w, h) = args.size;
    let source = &args.source;
    let description = if let Some(format) = [("gray16le", "gray16-le"), ("gray8", "gray8")]
        .iter()
        .find_map(|(ext, f)| source.ends_with(&format!(".{ext}")).then_some(f))
    {
        format!(
            "filesrc location=\"{source}\" ! rawvideoparse format={format} width={w} height={h} framerate=30/1 ! {chain}"
        )
    } else if source.starts_with("rtsp://") {
        format!(
            "rtspsrc location=\"{source}\" latency=200 ! application/x-rtp,media=video ! decodebin \
             ! videoconvert ! video/x-raw,format=I420 ! {chain}"
        )
    } else {
        format!("v4l2src device=\"{source}\" ! {chain}")
    };
    gst::parse::launch(&description)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())
}

/// One `thermaltrack-event` in words; `None` for the events a desk does not watch
/// (`new`, `end`: a track starting or ending without a zone or a line).
fn describe(event: &gst::StructureRef) -> Option<String> {
    let kind = event.get::<&str>("type").ok()?;
    let who = format!(
        "{} {}",
        event.get::<&str>("label").unwrap_or("object"),
        event.get::<u64>("track-id").ok()?
    );
    let zone = event.get::<&str>("zone").unwrap_or("?");
    Some(match kind {
        "enter" => format!("{who} entered zone {zone}"),
        "exit" => format!("{who} left zone {zone}"),
        "loiter" => format!(
            "{who} loitered {:.1} s in zone {zone}",
            event.get::<f64>("dwell").unwrap_or(0.0)
        ),
        "cross" => format!(
            "{who} crossed line {} ({})",
            event.get::<&str>("line").unwrap_or("?"),
            event.get::<&str>("direction").unwrap_or("?")
        ),
        _ => return None,
    })
}

fn run(args: &Args) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    let generated = args.zone.map(|z| zone_file(args, z)).transpose()?;
    let pipeline = pipeline(args, generated.as_ref().or(args.zones.as_ref()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the pipeline cannot start (see the error above)".to_string())?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(line) = e
                    .structure()
                    .filter(|s| s.name() == "thermaltrack-event")
                    .and_then(describe)
                {
                    println!("{line}");
                }
            }
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => {
                break Err(format!("{} ({})", e.error(), e.debug().unwrap_or_default()));
            }
            _ => {}
        }
    };
    pipeline
        .set_state(gst::State::Null)
        .map_err(|e| e.to_string())?;
    if let Some(path) = generated {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return cli::usage_error(&e),
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alerts: {e}");
            ExitCode::FAILURE
        }
    }
}
