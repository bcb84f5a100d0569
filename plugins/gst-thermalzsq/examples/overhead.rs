//! What `thermaldetect` costs on top of inference, measured so that a busy machine
//! biases neither side: rounds alternate a bare ONNX Runtime `session.run` loop over
//! ready-made input tensors with the element (AGC, letterbox, decoding, NMS, drawing,
//! metas, messages) on the same frames, through the same shared session, and the
//! element's share of bare throughput is the median of the rounds' ratios. The engine's
//! `Detector::detect` (pre-processing, inference, decoding, NMS) is timed in the same
//! rounds, to tell the engine's share of the overhead from the element's, and so is the
//! element with `pipelined=true` (the next frame pre-processed during inference).
//!
//! ```sh
//! cargo run --release -p gst-plugin-thermalzsq --example overhead -- \
//!     [--model models/det_thermal_ft.onnx] [--threads 0] [--frames 30] [--rounds 20]
//! ```
//! Frames: a `zsq synth` recording, 640x512 GRAY16_LE (sensor noise, moving people,
//! cars and bicycles), what a radiometric camera delivers. The criterion bench
//! `benches/thermaldetect.rs` measures the same three things one after another.

mod cli;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_check::Harness;
use ort::value::TensorRef;
use thermalzsq::detect::{Detector, DetectorConfig};
use thermalzsq::imaging::{Frame, FrameRef, PixelFormat};
use thermalzsq::runtime::ProviderOptions;
use thermalzsq::synth::Recording;

const USAGE: &str = "usage: overhead [--model M] [--threads T] [--frames N] [--rounds R]";
const W: usize = 640;
const H: usize = 512;

struct Args {
    model: String,
    threads: u64,
    frames: u64,
    rounds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: "models/det_thermal_ft.onnx".into(),
        threads: 0,
        frames: 30,
        rounds: 20,
    };
    cli::each(|mut a| {
        match a.name.as_str() {
            "--model" => args.model = a.value()?,
            "--threads" => args.threads = a.parse()?,
            "--frames" => args.frames = a.parse::<u64>()?.max(1),
            "--rounds" => args.rounds = a.parse::<u64>()?.max(1),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
        Ok(())
    })?;
    Ok(args)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return cli::usage_error(&e),
    };
    gst::init().expect("GStreamer initialises");
    gstthermalzsq::plugin_register_static().expect("the plugin registers");

    let recording = Recording::new(7, W as u32, H as u32).expect("a recording");
    let frames: Vec<Vec<u8>> = (0..args.frames as u32)
        .map(|i| {
            let counts = recording.frame(i).thermal;
            counts.iter().flat_map(|v| v.to_le_bytes()).collect()
        })
        .collect();

    // The element's settings, so that it shares this detector's session: the bare loop
    // then runs the very graph (DFL tail rewritten) and thread pool the element runs.
    let config = DetectorConfig {
        provider: ProviderOptions {
            provider: "cpu".parse().unwrap(),
            threads: args.threads as usize,
            ..Default::default()
        },
        share_session: true,
        ..Default::default()
    };
    let mut detector = match Detector::load(args.model.as_ref(), config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", args.model);
            return ExitCode::FAILURE;
        }
    };
    let [n, c, h, w] = detector.input_shape();
    let mut pre = detector.preprocess();
    let tensors: Vec<Vec<f32>> = frames
        .iter()
        .map(|bytes| {
            let frame = Frame::new(PixelFormat::Gray16Le, W, H, vec![(bytes.as_slice(), 2 * W)])
                .expect("a frame");
            let mut t = vec![0.0; pre.tensor_len()];
            pre.run(&frame, &mut t);
            t
        })
        .collect();
    let input_name = detector.session().info().inputs[0].name.clone();

    let thermaldetect = |pipelined: bool| {
        let element = gst::ElementFactory::make("thermaldetect")
            .property("model", args.model.as_str())
            .property_from_str("execution-provider", "cpu")
            .property("threads", args.threads as u32)
            .property("pipelined", pipelined)
            .build()
            .expect("thermaldetect");
        let mut harness = Harness::with_element(&element, Some("sink"), Some("src"));
        harness.set_src_caps_str(&format!(
            "video/x-raw,format=GRAY16_LE,width={W},height={H},framerate=30/1"
        ));
        (element, harness)
    };
    let (element, mut harness) = thermaldetect(false);
    let (_, mut pipelined) = thermaldetect(true);
    let buffers = || -> Vec<gst::Buffer> {
        frames
            .iter()
            .map(|f| gst::Buffer::from_slice(f.clone()))
            .collect()
    };
    // Frames in, whatever came out taken: one frame out per frame in, except the
    // pipelined element's very first (it holds one frame from then on).
    let element_run = |harness: &mut Harness, buffers: Vec<gst::Buffer>| -> Duration {
        let started = Instant::now();
        for b in buffers {
            harness.push(b).expect("the element runs");
            while let Some(out) = harness.try_pull() {
                std::hint::black_box(out);
            }
        }
        started.elapsed()
    };
    // Warm-up: the elements load their model (sharing the session) and every path runs
    // once.
    element_run(&mut harness, buffers());
    element_run(&mut pipelined, buffers());
    let users = element.property::<u32>("session-users");
    if users != 3 {
        eprintln!("warning: the elements do not share the bare loop's session ({users} users)");
    }

    let session = detector.session().clone();
    let bare = |tensors: &[Vec<f32>]| -> Duration {
        let started = Instant::now();
        for t in tensors {
            let input = TensorRef::from_array_view(([n, c, h, w], t.as_slice())).unwrap();
            let mut session = session.lock();
            let out = session
                .run(ort::inputs![input_name.as_str() => input])
                .expect("the session runs");
            std::hint::black_box(out.len());
        }
        started.elapsed()
    };
    let frame_refs: Vec<FrameRef> = frames
        .iter()
        .map(|b| Frame::new(PixelFormat::Gray16Le, W, H, vec![(b.as_slice(), 2 * W)]).unwrap())
        .collect();
    let mut engine = |frames: &[FrameRef]| -> Duration {
        let started = Instant::now();
        for f in frames {
            std::hint::black_box(detector.detect(f).expect("the detector runs"));
        }
        started.elapsed()
    };
    bare(&tensors);
    engine(&frame_refs);

    let per_frame = |d: Duration| d.as_secs_f64() * 1e3 / args.frames as f64;
    // Per round: bare, Detector, element, pipelined element, in an order that rotates.
    let mut times: [Vec<Duration>; 4] = Default::default();
    for round in 0..args.rounds {
        for k in 0..4 {
            let which = (k + round as usize) % 4;
            times[which].push(match which {
                0 => bare(&tensors),
                1 => engine(&frame_refs),
                2 => element_run(&mut harness, buffers()),
                _ => element_run(&mut pipelined, buffers()),
            });
        }
    }
    let ms = |t: &[Duration]| median(t.iter().map(|&d| per_frame(d)).collect());
    // Each round's bare time over the element's: the share of bare throughput.
    let share = |t: &[Duration]| {
        let ratios: Vec<f64> = times[0]
            .iter()
            .zip(t)
            .map(|(b, e)| b.as_secs_f64() / e.as_secs_f64())
            .collect();
        let (lowest, highest) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
        format!(
            "{:.1} % of bare ({:.1}..{:.1} %)",
            100.0 * median(ratios),
            100.0 * lowest,
            100.0 * highest
        )
    };
    println!(
        "{} frames x {} rounds, threads {}: bare session.run {:.2} ms/frame, Detector::detect {:.2}, \
         thermaldetect {:.2} = {}, pipelined {:.2} = {} (medians of rounds)",
        args.frames,
        args.rounds,
        args.threads,
        ms(&times[0]),
        ms(&times[1]),
        ms(&times[2]),
        share(&times[2]),
        ms(&times[3]),
        share(&times[3]),
    );
    ExitCode::SUCCESS
}
