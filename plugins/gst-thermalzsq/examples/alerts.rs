//! Embedding `thermaldetect` in an application: build the pipeline in code, read the
//! per-frame `thermaldetect` messages from the bus and raise an alert when an object of
//! a class stays inside a zone for longer than a few seconds — what a security camera
//! system does with the detections.
//!
//! ```sh
//! cargo run --release -p gst-plugin-thermalzsq --example alerts -- \
//!     --model models/det_thermal_ft.onnx --zone 200,150,450,400 --label person --seconds 2 \
//!     out/demo/recording.gray16le          # or /dev/video0 for a camera
//! ```
//! A `.gray16le` file is read as raw 640x512 GRAY16_LE at 30 fps (`--size WxH` changes
//! it); anything else is taken as a V4L2 device.

use std::process::ExitCode;

use gst::prelude::*;

struct Args {
    source: String,
    model: String,
    zone: [f64; 4],
    label: String,
    seconds: f64,
    size: (u32, u32),
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        source: String::new(),
        model: "models/det_thermal_ft.onnx".into(),
        zone: [0.0, 0.0, f64::MAX, f64::MAX],
        label: "person".into(),
        seconds: 2.0,
        size: (640, 512),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--model" => args.model = value()?,
            "--label" => args.label = value()?,
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--zone" => {
                let v: Vec<f64> = value()?
                    .split(',')
                    .map(|x| x.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--zone: {e}"))?;
                args.zone = v
                    .try_into()
                    .map_err(|_| "--zone takes x0,y0,x1,y1".to_string())?;
            }
            "--size" => {
                let v = value()?;
                let (w, h) = v.split_once('x').ok_or("--size takes WxH")?;
                args.size = (
                    w.parse().map_err(|e| format!("--size: {e}"))?,
                    h.parse().map_err(|e| format!("--size: {e}"))?,
                );
            }
            s if !s.starts_with("--") && args.source.is_empty() => args.source = s.into(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.source.is_empty() {
        return Err("usage: alerts [--model M] [--zone x0,y0,x1,y1] [--label L] [--seconds S] [--size WxH] FILE.gray16le|/dev/videoN".into());
    }
    Ok(args)
}

fn pipeline(args: &Args) -> Result<gst::Pipeline, String> {
    let detect = format!(
        "thermaldetect name=detect model=\"{}\" draw=false",
        args.model
    );
    let description = if args.source.ends_with(".gray16le") {
        format!(
            "filesrc location=\"{}\" ! rawvideoparse format=gray16-le width={} height={} framerate=30/1 ! {detect} ! fakesink",
            args.source, args.size.0, args.size.1
        )
    } else {
        format!("v4l2src device=\"{}\" ! {detect} ! fakesink", args.source)
    };
    gst::parse::launch(&description)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())
}

/// How long an object of the watched class has been in the zone.
struct Zone {
    since: Option<gst::ClockTime>,
    alerted: bool,
}

impl Zone {
    /// One frame's detections; returns the line to print, if any.
    fn update(
        &mut self,
        args: &Args,
        pts: gst::ClockTime,
        detections: &gst::List,
    ) -> Option<String> {
        let [zx0, zy0, zx1, zy1] = args.zone;
        let inside = detections
            .iter()
            .filter_map(|v| v.get::<gst::Structure>().ok())
            .any(|d| {
                let f = |k: &str| d.get::<f64>(k).unwrap_or(0.0);
                let (cx, cy) = (f("x") + f("width") / 2.0, f("y") + f("height") / 2.0);
                d.get::<String>("label").is_ok_and(|l| l == args.label)
                    && (zx0..zx1).contains(&cx)
                    && (zy0..zy1).contains(&cy)
            });
        match (inside, self.since) {
            (true, None) => {
                self.since = Some(pts);
                None
            }
            (true, Some(since)) if !self.alerted && (pts - since).seconds_f64() >= args.seconds => {
                self.alerted = true;
                Some(format!(
                    "ALERT {} in zone for {:.1} s (since {since})",
                    args.label,
                    (pts - since).seconds_f64()
                ))
            }
            (false, Some(_)) => {
                let was = std::mem::replace(
                    self,
                    Zone {
                        since: None,
                        alerted: false,
                    },
                );
                was.alerted
                    .then(|| format!("clear: no {} in zone at {pts}", args.label))
            }
            _ => None,
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    let pipeline = pipeline(args)?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the pipeline cannot start (see the error above)".to_string())?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let mut zone = Zone {
        since: None,
        alerted: false,
    };
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure().filter(|s| s.name() == "thermaldetect") else {
                    continue;
                };
                let pts = gst::ClockTime::from_nseconds(s.get::<u64>("pts").unwrap_or(0));
                if let Ok(dets) = s.get::<gst::List>("detections")
                    && let Some(line) = zone.update(args, pts, &dets)
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
    result
}

fn main() -> ExitCode {
    match parse_args().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alerts: {e}");
            ExitCode::FAILURE
        }
    }
}
