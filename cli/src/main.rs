//! `zsq`: the thermalzsq command-line tool.
//!
//! Each subcommand is a thin shell over an engine module; errors are one line on stderr
//! and a non-zero exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thermalzsq::detect::labels::read_labels_file;
use thermalzsq::detect::temperature::TemperatureGate;
use thermalzsq::detect::{Detector, DetectorConfig};
use thermalzsq::imaging::agc::{Agc, AgcMode};
use thermalzsq::imaging::radiometry::Radiometry;
use thermalzsq::onnx::{InputSize, Model};
use thermalzsq::runtime::ProviderOptions;
use thermalzsq::zsq::cache::{Cache, CacheOutcome, write_atomically};
use thermalzsq::zsq::pipeline::{
    CalibrationSource, DistillSettings, Progress, QuantizeSettings, Stage, quantize,
    quantize_cached,
};
use thermalzsq::zsq::qparams::{Precision, cpu_saturates_int8};
use thermalzsq::zsq::report::QuantizeReport;
use thermalzsq::zsq::scenes::SynthScenes;
use thermalzsq::{eval, synth};
use zsq::figure;
use zsq::results::{Plan, ReportOptions, SynthSet, run_report as run_report_with};

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
    /// The zero-shot vs real-data results table (`make report`): docs/results.md and
    /// its figures, every measurement cached under --out.
    Report(ReportArgs),
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
        /// Also write a recording with this many frames of moving objects (30 fps).
        #[arg(long, value_name = "FRAMES", default_value_t = 0)]
        recording: u32,
        /// How the recording is stored: gray16le (raw radiometric, centikelvin), gray8
        /// (the 8-bit AGC view), yuy2-p2pro (InfiRay P2 Pro: AGC image over raw counts in
        /// 1/64 K), png16 (recording/frame_NNNNNN.png).
        #[arg(long, value_name = "FORMAT", default_value = "gray16le")]
        recording_format: synth::RecordingFormat,
        /// The laws of the thermal frames: legacy (what the bundled detectors were
        /// trained on) or lwir (band radiance, emissivity, reflected sky, atmosphere,
        /// clothing heat balance; docs/synth-eval.md). Same layout and labels in both.
        #[arg(long, value_name = "legacy|lwir", default_value = "legacy")]
        radiometry: synth::RadiometryModel,
        /// AGC of the 8-bit views (thermal8/, gray8 and YUY2 recordings): percentile
        /// (1-99 % linear stretch) or equalize (plateau histogram equalisation, as FLIR
        /// cameras), minmax or none.
        #[arg(
            long,
            value_name = "percentile|equalize|minmax|none",
            default_value = "percentile"
        )]
        agc: AgcMode,
    },
    /// COCO mAP of detections against ground truth, computed as pycocotools does; or,
    /// with --tracks, the MOT metrics of a tracker as py-motmetrics computes them.
    Eval {
        /// Ground truth: a COCO dataset json (e.g. annotations.json of `zsq synth`).
        #[arg(long, value_name = "GT.json", required_unless_present = "tracks")]
        coco: Option<PathBuf>,
        /// Score tracks: MOTChallenge ground truth (the gt.txt of `zsq synth
        /// --recording`) and the tracker's output, thermaltrack JSON lines
        /// (json-location, frame N = gt frame N + 1) or MOTChallenge result rows. Prints
        /// MOTA, MOTP, IDF1, ID switches, mostly tracked/lost (IoU >= 0.5).
        #[arg(long, num_args = 2, value_names = ["GT.txt", "TRACKS"], conflicts_with_all = ["coco", "detections", "model"])]
        tracks: Option<Vec<PathBuf>>,
        /// Detections: COCO results ([{image_id, category_id, bbox, score}]) or the JSON
        /// lines thermaldetect writes (json-location), frame N = image N.
        #[arg(long, value_name = "DETS.json", conflicts_with_all = ["model", "images"], required_unless_present_any = ["model", "tracks"])]
        detections: Option<PathBuf>,
        /// Run this detector (same pre-processing as thermaldetect) instead of reading detections.
        #[arg(long, value_name = "M.onnx", requires = "images")]
        model: Option<PathBuf>,
        /// Directory of the dataset's images (8-bit or 16-bit PNG), for --model.
        #[arg(long, value_name = "DIR")]
        images: Option<PathBuf>,
        /// The model's class names, one per line (as thermaldetect's `labels`): they
        /// replace its `names` metadata with --model, and name the classes of JSON lines
        /// with --detections (needed for a model without names).
        #[arg(long, value_name = "FILE")]
        labels: Option<PathBuf>,
        /// With --model: write each image with its ground truth (magenta) and the
        /// detections scoring at least 0.25 (labelled) as PNGs into DIR.
        #[arg(long, value_name = "DIR", requires = "model")]
        draw: Option<PathBuf>,
        /// With --model on 16-bit images: read each detection's temperature with this
        /// law (centikelvin, p2pro or linear:GAIN:OFFSET), as thermaldetect's
        /// `radiometry` does.
        #[arg(long, value_name = "LAW", requires = "model")]
        radiometry: Option<Radiometry>,
        /// With --radiometry: drop detections whose hottest temperature is outside
        /// their class's range, as thermaldetect's `temperature-gate` (e.g.
        /// "person:25-42,car:-40-120", °C).
        #[arg(long, value_name = "GATE", requires = "radiometry")]
        temperature_gate: Option<TemperatureGate>,
        /// Also print precision and recall (IoU 0.5) of the detections scoring at least
        /// this: the operating point of a deployment (thermaldetect's conf-threshold).
        #[arg(long, value_name = "SCORE")]
        score_threshold: Option<f64>,
        /// With --model: run it at this input size, as thermaldetect's `input-size`
        /// (a symbolic size fixed, or a YOLOv8-family head exported at another size
        /// rewritten for it; e.g. 640x512, a camera's own size).
        #[arg(long, value_name = "WxH", requires = "model")]
        input_size: Option<InputSize>,
        /// With --model: also run it at these sizes (comma-separated) and merge the boxes
        /// of every size with one NMS, as thermaldetect's `extra-input-sizes` (e.g.
        /// --input-size 640x512 --extra-input-sizes 320x320).
        #[arg(
            long,
            value_name = "WxH,...",
            requires = "model",
            value_delimiter = ','
        )]
        extra_input_sizes: Vec<InputSize>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Quantize a float32 ONNX detector to int8 (QDQ): data-free by default (distilled
    /// from its BatchNorm statistics, or generated scenes when BN was folded away), or
    /// calibrated on real images with --calib-images.
    Quantize(Box<QuantizeArgs>),
}

#[derive(clap::Args)]
struct QuantizeArgs {
    /// The float32 ONNX model.
    model: PathBuf,
    /// Where to write the int8 model.
    #[arg(short = 'o', long = "output", value_name = "OUT.onnx")]
    output: PathBuf,
    /// Calibration images: distilled from the model's BN statistics, generated scenes
    /// (thermal or RGB, as the model's modality), both (mix: distilled images and
    /// generated scenes; needs BN), or real images (--calib-images).
    /// auto: distill when the model has BatchNormalization layers, synth otherwise.
    #[arg(
        long,
        value_name = "auto|distill|synth|mix|images",
        default_value = "auto"
    )]
    calibration: String,
    /// Calibrate on real PNG images of this directory (or of a `zsq synth` dataset
    /// root); implies --calibration images.
    #[arg(long, value_name = "DIR")]
    calib_images: Option<PathBuf>,
    /// Generated scenes to calibrate on (--calibration synth or mix).
    #[arg(long, value_name = "N", default_value_t = SynthScenes::DEFAULT_COUNT)]
    synth_count: usize,
    /// Seed of the generated scenes.
    #[arg(long, value_name = "S", default_value_t = SynthScenes::default().seed)]
    synth_seed: u64,
    /// Frame size the scenes are rendered at, then letterboxed into the input like a
    /// camera's frames (input: render at the model's input size).
    #[arg(long, value_name = "WxH|input", default_value_t = SynthScenes::default().size.to_string())]
    synth_size: String,
    /// Real images to use: the first N sorted by name.
    #[arg(long, value_name = "N", default_value_t = CalibrationSource::DEFAULT_IMAGES, requires = "calib_images")]
    calib_count: usize,
    /// Distillation loss: BN means, standard deviations, or both.
    #[arg(long, value_name = "mean|std|mean+std", default_value = "mean+std")]
    loss: String,
    /// Distillation steps (at most: see --min-improvement).
    #[arg(long, value_name = "N", default_value_t = DistillSettings::default().iterations)]
    iterations: usize,
    /// Adam's peak step size in pixel units (warm-up, then a cosine to 1 %).
    #[arg(long, value_name = "LR", default_value_t = DistillSettings::default().learning_rate)]
    learning_rate: f32,
    /// Stop distilling once the loss improved by less than this fraction over
    /// the last 5 steps (0: run them all).
    #[arg(long, value_name = "F", default_value_t = DistillSettings::default().min_improvement)]
    min_improvement: f32,
    /// Distilled images.
    #[arg(long, value_name = "N", default_value_t = DistillSettings::default().batch)]
    batch: usize,
    /// u8s8 for CPUs (ONNX Runtime), s8s8 for TensorRT.
    #[arg(long, value_name = "u8s8|s8s8", default_value = "u8s8")]
    precision: String,
    /// How activation ranges are chosen: minmax, percentile (99.999, or percentile:P),
    /// entropy (KL, 2048 bins) or mse.
    #[arg(long, value_name = "NAME", default_value = "minmax")]
    observer: String,
    /// Seed of the distillation (--synth-seed seeds the generated scenes).
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// BN statistics per image (ZeroQ) or over the batch (DeepInversion, Genie).
    #[arg(long, value_name = "image|batch", default_value = "image")]
    statistics: String,
    /// Weight of a total-variation prior on the distilled images (0: off).
    #[arg(long, value_name = "W", default_value_t = 0.0)]
    tv: f32,
    /// Optimise one grey channel broadcast to three (default: for thermal models).
    #[arg(long, value_name = "auto|on|off", default_value = "auto")]
    thermal_prior: String,
    /// Input width and height for a model exported with a symbolic size (a multiple
    /// of its stride, metadata `stride` or 32); the int8 model keeps it. Default: the
    /// model's own.
    #[arg(long, value_name = "WxH")]
    size: Option<String>,
    /// Weights on 7 bits: for CPUs whose int8 kernels saturate (x86 without VNNI).
    /// auto: on for u8s8 when this CPU is one of them; off for s8s8 (TensorRT).
    #[arg(long, value_name = "auto|on|off", default_value = "auto")]
    reduce_range: String,
    /// ONNX Runtime intra-op threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Write the report (timings, ranges per tensor, agreement with fp32) as JSON.
    #[arg(long, value_name = "R.json")]
    report: Option<PathBuf>,
    /// Write a PNG grid of the calibration images (distilled or real; nothing is
    /// written on a cache hit: add --no-cache).
    #[arg(long, value_name = "P.png")]
    preview: Option<PathBuf>,
    /// Cache directory (default: $XDG_CACHE_HOME/thermalzsq or ~/.cache/thermalzsq).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Always quantize, neither reading nor writing the cache.
    #[arg(long)]
    no_cache: bool,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// The fp32 detectors (default: the three demo models under models/).
    #[arg(value_name = "MODEL.onnx")]
    models: Vec<PathBuf>,
    /// Data sets and the measurement cache.
    #[arg(long, value_name = "DIR", default_value = "out/report")]
    out: PathBuf,
    /// The Markdown report.
    #[arg(long, value_name = "FILE.md", default_value = "docs/results.md")]
    doc: PathBuf,
    /// Its figures.
    #[arg(long, value_name = "DIR", default_value = "docs/results")]
    figures: PathBuf,
    /// Recompute every measurement (the cache is rewritten).
    #[arg(long)]
    fresh: bool,
    /// Every measurement on every model (W4A8 on all three, not only on the main
    /// RGB->thermal fine-tuned one).
    #[arg(long)]
    full: bool,
    /// Held-out scenes (zsq synth --seed 2).
    #[arg(long, value_name = "N", default_value_t = Plan::default().eval.scenes)]
    eval_scenes: u64,
    /// Distillation seeds (every zero-shot number is their mean ± std).
    #[arg(long, value_name = "N", default_value_t = Plan::default().seeds.len())]
    seeds: usize,
    /// Distillation steps of the zero-shot configurations.
    #[arg(long, value_name = "N", default_value_t = Plan::default().iterations)]
    iterations: usize,
    /// ONNX Runtime intra-op threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
}

fn run_report(args: &ReportArgs) -> Result<(), String> {
    let models = if args.models.is_empty() {
        ["det_rgb", "det_thermal_ft", "det_thermal_scratch"]
            .iter()
            .map(|m| PathBuf::from(format!("models/{m}.onnx")))
            .collect()
    } else {
        args.models.clone()
    };
    for m in &models {
        if !m.exists() {
            return Err(format!("{}: no such model", m.display()));
        }
    }
    let defaults = Plan::default();
    let plan = Plan {
        eval: SynthSet {
            scenes: args.eval_scenes,
            ..defaults.eval
        },
        seeds: (0..args.seeds as u64).collect(),
        iterations: args.iterations,
        full: args.full,
        ..defaults
    };
    let options = ReportOptions {
        models,
        out: args.out.clone(),
        doc: args.doc.clone(),
        figures: args.figures.clone(),
        fresh: args.fresh,
        plan,
        provider: ProviderOptions {
            threads: args.threads,
            ..ProviderOptions::default()
        },
    };
    run_report_with(&options, &mut |line| eprintln!("{line}"))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Report(args) => run_report(&args),
        Command::Inspect { model } => inspect(&model),
        Command::Synth {
            out,
            scenes,
            seed,
            size,
            recording,
            recording_format,
            radiometry,
            agc,
        } => synth_agc(agc).and_then(|agc| {
            run_synth(synth::DatasetSpec {
                out,
                scenes,
                seed,
                width: size.0,
                height: size.1,
                recording,
                recording_format,
                radiometry,
                agc,
            })
        }),
        Command::Eval {
            tracks: Some(tracks),
            json,
            ..
        } => run_eval_tracks(&tracks[0], &tracks[1], json),
        Command::Eval {
            coco,
            detections,
            model,
            images,
            labels,
            draw,
            radiometry,
            temperature_gate,
            score_threshold,
            input_size,
            extra_input_sizes,
            json,
            tracks: None,
        } => run_eval(
            &coco.expect("clap requires --coco without --tracks"),
            match (detections.as_deref(), model.as_deref(), images.as_deref()) {
                (Some(path), ..) => EvalSource::Detections(path),
                (None, Some(model), Some(images)) => EvalSource::Model { model, images },
                _ => unreachable!("clap requires --detections, or --model with --images"),
            },
            labels.as_deref(),
            DetectorConfig {
                radiometry,
                gate: temperature_gate.unwrap_or_default(),
                input_size,
                extra_input_sizes,
                ..eval::eval_config()
            },
            draw.as_deref(),
            score_threshold,
            json,
        ),
        Command::Quantize(args) => run_quantize(&args),
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
    let meta = detector.metadata();
    if detector.labels().is_empty() {
        println!("classes:  (no names: labels read \"class N\")");
    } else {
        println!("classes:  {}", detector.labels().join(", "));
    }
    if let Some(task) = &meta.task {
        println!("task:     {task}");
    }
    if let Some([h, w]) = meta.imgsz {
        println!("imgsz:    {h}x{w} (height x width, as exported)");
    }
    if let Some(stride) = meta.stride {
        println!("stride:   {stride}");
    }
    println!("provider: {}", detector.provider());
    for why in detector.fallbacks() {
        println!("          ({why})");
    }
    Ok(())
}

/// What `zsq eval` scores: detections read from a file, or a detector run over images.
enum EvalSource<'a> {
    Detections(&'a Path),
    Model { model: &'a Path, images: &'a Path },
}

fn run_eval(
    coco: &Path,
    source: EvalSource,
    labels: Option<&Path>,
    mut config: DetectorConfig,
    draw: Option<&Path>,
    score_threshold: Option<f64>,
    json: bool,
) -> Result<(), String> {
    let gt = eval::CocoGt::from_file(coco).map_err(|e| e.to_string())?;
    config.labels = labels
        .map(read_labels_file)
        .transpose()
        .map_err(|e| e.to_string())?;
    let dets = match source {
        EvalSource::Detections(path) => eval::read_detections(path, &gt, config.labels.as_deref()),
        EvalSource::Model { model, images } => {
            let mut detector = Detector::load(model, config).map_err(|e| e.to_string())?;
            let classes =
                eval::CategoryMap::for_detector(&detector, &gt).map_err(|e| e.to_string())?;
            if let Some(warning) = classes.warning() {
                eprintln!("zsq: warning: {warning}");
            }
            eval::detect_dataset(&mut detector, &gt, &classes, images, &mut |done, total| {
                eprint!("\rdetecting {done}/{total}");
                if done == total {
                    eprintln!();
                }
            })
        }
    }
    .map_err(|e| e.to_string())?;
    if let (Some(dir), EvalSource::Model { images, .. }) = (draw, source) {
        draw_figures(dir, images, &gt, &dets)?;
    }
    let result = eval::evaluate(&gt, &dets).map_err(|e| e.to_string())?;
    let point = score_threshold.map(|s| (s, eval::operating_point(&gt, &dets, s)));
    if json {
        let mut out = result.to_json();
        if let Some((score, p)) = point {
            out["operating_point"] = serde_json::json!({
                "score_threshold": score,
                "precision": p.precision(),
                "recall": p.recall(),
                "true_positives": p.true_positives,
                "false_positives": p.false_positives,
                "ground_truth": p.ground_truth,
            });
        }
        println!("{out}");
    } else {
        print!("{result}");
        if let Some((score, p)) = point {
            println!(
                "at score >= {score}, IoU 0.50: precision {:.4} recall {:.4} ({} true positives, {} false positives, {} objects)",
                p.precision(),
                p.recall(),
                p.true_positives,
                p.false_positives,
                p.ground_truth
            );
        }
    }
    Ok(())
}

/// `zsq eval --tracks GT.txt TRACKS`: the MOT metrics of one sequence.
fn run_eval_tracks(gt: &Path, tracks: &Path, json: bool) -> Result<(), String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let gt_boxes =
        eval::parse_mot_ground_truth(&read(gt)?).map_err(|e| format!("{}: {e}", gt.display()))?;
    let hypotheses =
        eval::parse_tracks(&read(tracks)?).map_err(|e| format!("{}: {e}", tracks.display()))?;
    let summary = eval::evaluate_mot(&gt_boxes, &hypotheses).map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&summary).map_err(|e| e.to_string())?
        );
    } else {
        print!("{summary}");
    }
    Ok(())
}

/// `zsq eval --draw`: every image with its ground truth and detections, as PNG.
fn draw_figures(
    dir: &Path,
    images: &Path,
    gt: &eval::CocoGt,
    dets: &[eval::Detection],
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for image in &gt.images {
        let frame = thermalzsq::imaging::image::read_png(&images.join(&image.file_name))
            .map_err(|e| e.to_string())?;
        let (w, h, rgb) = figure::render(&frame, image.id, gt, dets, 0.25);
        let out = dir.join(Path::new(&image.file_name).with_extension("png"));
        thermalzsq::imaging::image::write_png(
            &out,
            w as u32,
            h as u32,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &rgb,
        )
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    eprintln!("drew {} images into {}", gt.images.len(), dir.display());
    Ok(())
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))?;
    let num = |v: &str| v.trim().parse::<u32>().map_err(|e| format!("`{s}`: {e}"));
    Ok((num(w)?, num(h)?))
}

/// The AGC `zsq synth --agc` names (the percentile one with the camera's 1-99 %).
fn synth_agc(mode: AgcMode) -> Result<Agc, String> {
    match mode {
        AgcMode::Percentile => Ok(Agc::Percentile {
            low: synth::AGC_LOW_PERCENTILE,
            high: synth::AGC_HIGH_PERCENTILE,
        }),
        AgcMode::Equalize => Ok(Agc::Equalize),
        AgcMode::MinMax => Ok(Agc::MinMax),
        AgcMode::None => Ok(Agc::None),
        AgcMode::Fixed => Err(
            "zsq synth --agc fixed: a fixed range depends on the scene; \
             use percentile, equalize, minmax or none"
                .into(),
        ),
    }
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

fn run_quantize(args: &QuantizeArgs) -> Result<(), String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let thermal_prior = match args.thermal_prior.as_str() {
        "auto" => None,
        "on" => Some(true),
        "off" => Some(false),
        other => {
            return Err(format!(
                "unknown --thermal-prior `{other}` (expected auto, on or off)"
            ));
        }
    };
    let precision: Precision = args.precision.parse().map_err(|e| text(&e))?;
    let reduce_range = match args.reduce_range.as_str() {
        "auto" => precision == Precision::U8S8 && cpu_saturates_int8(),
        "on" => true,
        "off" => false,
        other => {
            return Err(format!(
                "unknown --reduce-range `{other}` (expected auto, on or off)"
            ));
        }
    };
    let scenes = SynthScenes {
        count: args.synth_count,
        seed: args.synth_seed,
        size: args.synth_size.parse().map_err(|e| text(&e))?,
    };
    let source = match (args.calibration.as_str(), &args.calib_images) {
        ("auto" | "images", Some(dir)) => CalibrationSource::ImageDir {
            dir: dir.clone(),
            count: args.calib_count,
        },
        ("images", None) => {
            return Err("--calibration images needs --calib-images DIR".into());
        }
        (other @ ("distill" | "synth" | "mix"), Some(_)) => {
            return Err(format!(
                "--calib-images calibrates on real images: it cannot go with --calibration {other}"
            ));
        }
        ("auto", None) => CalibrationSource::Auto(scenes),
        ("distill", None) => CalibrationSource::ZeroShot,
        ("synth", None) => CalibrationSource::Synth(scenes),
        ("mix", None) => CalibrationSource::Mix(scenes),
        (other, _) => {
            return Err(format!(
                "unknown --calibration `{other}` (expected auto, distill, synth, mix or images)"
            ));
        }
    };
    let settings = QuantizeSettings {
        precision,
        observer: args.observer.parse().map_err(|e| text(&e))?,
        source,
        distill: DistillSettings {
            loss: args.loss.parse().map_err(|e| text(&e))?,
            iterations: args.iterations,
            learning_rate: args.learning_rate,
            min_improvement: args.min_improvement,
            batch: args.batch,
            seed: args.seed,
            thermal_prior,
            statistics: args.statistics.parse().map_err(|e| text(&e))?,
            total_variation: args.tv,
        },
        provider: ProviderOptions {
            threads: args.threads,
            ..ProviderOptions::default()
        },
        preview: args.preview.clone(),
        reduce_range,
        input_size: match &args.size {
            Some(size) => Some(size.parse().map_err(|e| format!("--size: {e}"))?),
            None => None,
        },
        ..QuantizeSettings::default()
    };
    let model = Model::load(&args.model).map_err(|e| text(&e))?;
    eprintln!(
        "zsq: calibration: {}",
        describe_source(&settings.source, &model)
    );
    if settings.precision == Precision::S8S8 {
        eprintln!(
            "zsq: note: s8s8 is the TensorRT profile; ONNX Runtime's CPU EP does not fuse it on \
             x86 and runs it slower than fp32: use u8s8 for CPUs"
        );
    }
    let cache = if args.no_cache {
        None
    } else {
        let opened = match &args.cache_dir {
            Some(dir) => Cache::open(dir),
            None => Cache::open_default(),
        };
        match opened {
            Ok(cache) => Some(cache),
            Err(e) => {
                eprintln!("zsq: warning: {e}; going on without the cache");
                None
            }
        }
    };
    let mut bar = ProgressBar::new();
    let mut progress = |p: &Progress| bar.update(p);
    let (bytes, report_json, hit) = match &cache {
        Some(cache) => {
            let (entry, hit) = match quantize_cached(cache, &model, &settings, &mut progress)
                .map_err(|e| text(&e))?
            {
                CacheOutcome::Hit(entry) => (entry, true),
                CacheOutcome::Made(entry) => (entry, false),
                CacheOutcome::MadeNotStored { error, .. } => return Err(text(&error)),
            };
            let bytes = std::fs::read(&entry.model)
                .map_err(|e| format!("cannot read {}: {e}", entry.model.display()))?;
            (bytes, entry.report_json, hit.then_some(entry.model))
        }
        None => {
            let q = quantize(&model, &settings, &mut progress).map_err(|e| text(&e))?;
            let json = serde_json::to_value(&q.report).map_err(|e| text(&e))?;
            (q.bytes, json, None)
        }
    };
    bar.finish();
    write_atomically(&args.output, &bytes).map_err(|e| text(&e))?;
    if let Some(path) = &args.report {
        let pretty = serde_json::to_vec_pretty(&report_json).map_err(|e| text(&e))?;
        write_atomically(path, &pretty).map_err(|e| text(&e))?;
    }
    let report: QuantizeReport = serde_json::from_value(report_json).map_err(|e| text(&e))?;
    if hit.is_some() && args.preview.is_some() {
        eprintln!("zsq: note: cache hit, nothing was distilled: no preview (add --no-cache)");
    }
    print_summary(&args.output, &report, hit.as_deref());
    Ok(())
}

/// The calibration source that runs for `model`, in words (`auto` resolved).
fn describe_source(source: &CalibrationSource, model: &Model) -> String {
    let resolved = source.resolve(model);
    let why = match source {
        CalibrationSource::Auto(_) if resolved == CalibrationSource::ZeroShot => {
            " (auto: the model has BatchNormalization layers)"
        }
        CalibrationSource::Auto(_) => " (auto: the model has no BatchNormalization layers)",
        _ => "",
    };
    match &resolved {
        CalibrationSource::Synth(s) => format!(
            "synth, {} generated scenes (seed {}, {}){why}",
            s.count, s.seed, s.size
        ),
        CalibrationSource::Mix(s) => format!(
            "mix, distilled images and {} generated scenes (seed {}, {}){why}",
            s.count, s.seed, s.size
        ),
        CalibrationSource::ImageDir { dir, count } => {
            format!("images, the first {count} of {}", dir.display())
        }
        other => format!("{}{why}", other.kind()),
    }
}

fn print_summary(output: &Path, r: &QuantizeReport, cached: Option<&Path>) {
    let c = &r.calibration;
    let source = match (&c.dir, c.source.as_str()) {
        (Some(dir), _) => format!("{} real images from {dir}", c.images),
        (None, "synth") => format!(
            "{} generated scenes (synth, seed {})",
            c.images,
            c.seed.unwrap_or_default()
        ),
        (None, "distill") => format!("{} distilled images", c.images),
        (None, "mix") => format!(
            "{} images (mix: distilled and generated scenes, seed {})",
            c.images,
            c.seed.unwrap_or_default()
        ),
        (None, other) => format!("{} {other} images", c.images),
    };
    println!(
        "wrote {}: {}, observer {}, {source}",
        output.display(),
        r.settings.precision,
        r.settings.observer
    );
    let p = &r.placement;
    let tail: usize = p.tail_ops.values().sum();
    println!(
        "  {} int8 layers ({} with float output), {} activations quantized, {} BN folded, tail of {tail} float nodes",
        p.int8_layers,
        p.float_output_layers.len(),
        p.qdq_tensors,
        r.folding.folded
    );
    if let Some(check) = &r.check {
        let agreement: Vec<String> = check
            .outputs
            .iter()
            .map(|o| {
                let selected = if o.selected {
                    " (selected rows: near-equal scores reorder, see the head logits)"
                } else {
                    ""
                };
                format!("{} cosine {:.5}{selected}", o.name, o.cosine)
            })
            .collect();
        let head = check
            .head
            .iter()
            .map(|o| o.cosine)
            .min_by(f64::total_cmp)
            .map(|c| format!("; head logits ({}) cosine >= {c:.5}", check.head.len()))
            .unwrap_or_default();
        println!(
            "  int8 vs fp32 on {} images: {}{head}",
            check.images,
            agreement.join(", ")
        );
        let fused: Vec<String> = check
            .runtime_ops
            .iter()
            .filter(|(op, _)| op.contains("QLinear") || op.contains("QGemm"))
            .map(|(op, n)| format!("{n} {}", op.rsplit('.').next().unwrap_or(op)))
            .collect();
        if !fused.is_empty() {
            println!("  ONNX Runtime CPU kernels: {}", fused.join(", "));
        }
    }
    let stages: Vec<String> = r
        .timings
        .iter()
        .map(|t| format!("{} {:.1}", t.stage, t.seconds))
        .collect();
    println!("  {:.1} s ({})", r.total_seconds(), stages.join(", "));
    if let Some(path) = cached {
        println!("  from the cache: {}", path.display());
    }
}

/// A progress bar on stderr, redrawn in place with `\r` on a terminal; elsewhere one
/// line per finished stage.
struct ProgressBar {
    tty: bool,
    stage: Option<Stage>,
    drawn: Option<std::time::Instant>,
}

impl ProgressBar {
    fn new() -> Self {
        use std::io::IsTerminal;
        ProgressBar {
            tty: std::io::stderr().is_terminal(),
            stage: None,
            drawn: None,
        }
    }

    fn update(&mut self, p: &Progress) {
        if self.stage != Some(p.stage) {
            self.finish();
            self.stage = Some(p.stage);
        }
        let last = p.done >= p.total;
        if self.tty {
            let now = std::time::Instant::now();
            if !last
                && self
                    .drawn
                    .is_some_and(|t| now - t < std::time::Duration::from_millis(100))
            {
                return;
            }
            self.drawn = Some(now);
            let width = 30;
            let filled = (p.done * width)
                .checked_div(p.total)
                .unwrap_or(width)
                .min(width);
            eprint!(
                "\r{:>9} [{}{}] {}/{}",
                p.stage,
                "#".repeat(filled),
                "-".repeat(width - filled),
                p.done,
                p.total
            );
        } else if last {
            eprintln!("{}: {}/{}", p.stage, p.done, p.total);
        }
    }

    fn finish(&mut self) {
        if self.tty && self.stage.is_some() && self.drawn.is_some() {
            eprintln!();
        }
        self.stage = None;
        self.drawn = None;
    }
}
