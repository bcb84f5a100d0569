//! `zsq`: the thermalzsq command-line tool.
//!
//! Each subcommand is a thin shell over an engine module; errors are one line on stderr
//! and a non-zero exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thermalzsq::detect::{Detector, DetectorConfig};
use thermalzsq::{eval, synth};

#[derive(Parser)]
#[command(
    name = "zsq",
    version,
    about = "Zero-shot int8 quantization and thermal detection tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what thermaldetect sees in a detector: input, output layout, classes, provider.
    Inspect {
        /// The ONNX detector.
        model: PathBuf,
    },
    /// Synthetic radiometric thermal street scenes with COCO labels (and a recording).
    Synth {
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Number of scenes (thermal16/, thermal8/, rgb/ PNGs and annotations.json).
        #[arg(long, value_name = "N")]
        scenes: u64,
        /// Seed: the same seed gives the same bytes.
        #[arg(long, value_name = "S")]
        seed: u64,
        /// Frame size.
        #[arg(long, value_name = "WxH", default_value = "640x512", value_parser = parse_size)]
        size: (u32, u32),
        /// Also write recording.gray16le with this many frames of moving objects.
        #[arg(long, value_name = "FRAMES", default_value_t = 0)]
        recording: u32,
    },
    /// COCO mAP of detections against ground truth, computed as pycocotools does.
    Eval {
        /// Ground truth: a COCO dataset json (e.g. annotations.json of `zsq synth`).
        #[arg(long, value_name = "GT.json")]
        coco: PathBuf,
        /// Detections: COCO results ([{image_id, category_id, bbox, score}]) or the JSON
        /// lines thermaldetect writes (json-location), frame N = image N.
        #[arg(long, value_name = "DETS.json", conflicts_with_all = ["model", "images"], required_unless_present = "model")]
        detections: Option<PathBuf>,
        /// Run this detector (same pre-processing as thermaldetect) instead of reading detections.
        #[arg(long, value_name = "M.onnx", requires = "images")]
        model: Option<PathBuf>,
        /// Directory of the dataset's images (8-bit or 16-bit PNG), for --model.
        #[arg(long, value_name = "DIR")]
        images: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Inspect { model } => inspect(&model),
        Command::Synth {
            out,
            scenes,
            seed,
            size,
            recording,
        } => run_synth(synth::DatasetSpec {
            out,
            scenes,
            seed,
            width: size.0,
            height: size.1,
            recording,
        }),
        Command::Eval {
            coco,
            detections,
            model,
            images,
            json,
        } => run_eval(
            &coco,
            detections.as_deref(),
            model.as_deref().zip(images.as_deref()),
            json,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zsq: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn inspect(model: &std::path::Path) -> Result<(), String> {
    let detector = Detector::load(model, DetectorConfig::default()).map_err(|e| e.to_string())?;
    let [_, c, h, w] = detector.input_shape();
    println!("model:    {}", model.display());
    println!("input:    {c}x{h}x{w}");
    println!(
        "layout:   {} with {} classes",
        detector.layout().name(),
        detector.layout().classes()
    );
    println!("classes:  {}", detector.labels().join(", "));
    println!("provider: {}", detector.provider());
    for why in detector.fallbacks() {
        println!("          ({why})");
    }
    Ok(())
}

fn run_eval(
    coco: &Path,
    detections: Option<&Path>,
    model: Option<(&Path, &Path)>,
    json: bool,
) -> Result<(), String> {
    let gt = eval::CocoGt::from_file(coco).map_err(|e| e.to_string())?;
    let dets = match (detections, model) {
        (Some(path), _) => eval::read_detections(path, &gt),
        (None, Some((model, images))) => {
            let mut detector =
                Detector::load(model, eval::eval_config()).map_err(|e| e.to_string())?;
            eval::detect_dataset(&mut detector, &gt, images, &mut |done, total| {
                eprint!("\rdetecting {done}/{total}");
                if done == total {
                    eprintln!();
                }
            })
        }
        (None, None) => unreachable!("clap requires --detections or --model"),
    }
    .map_err(|e| e.to_string())?;
    let result = eval::evaluate(&gt, &dets).map_err(|e| e.to_string())?;
    if json {
        println!("{}", result.to_json());
    } else {
        print!("{result}");
    }
    Ok(())
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))?;
    let num = |v: &str| v.trim().parse::<u32>().map_err(|e| format!("`{s}`: {e}"));
    Ok((num(w)?, num(h)?))
}

fn run_synth(spec: synth::DatasetSpec) -> Result<(), String> {
    let summary = synth::write_dataset(&spec).map_err(|e| e.to_string())?;
    let [p, c, b] = summary.objects;
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "{} scenes ({p} persons, {c} cars, {b} bicycles), {} recording frames ({} labels) in {}: {secs:.1} s",
        summary.scenes,
        summary.recording_frames,
        summary.recording_objects,
        spec.out.display()
    );
    Ok(())
}
