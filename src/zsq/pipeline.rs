//! The end-to-end quantization that `zsq quantize` and the `zsqcalibrate` element run:
//! check the model, fold BN, plan the QDQ placement, get calibration images (distilled
//! from the model's BN statistics, generated scenes for models without BN, or real
//! ones), calibrate, insert QDQ, check the int8 model against the float one, report. [`quantize_cached`] puts the content-addressed
//! cache in front of it.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::{Array4, ArrayView4, Axis};
use ort::value::TensorRef;

use super::ZsqError;
use super::autodiff::{LossTerms, Statistics};
use super::build_id::onnxruntime_identity;
use super::cache::{Cache, CacheKey, CacheOutcome, sha256_hex};
use super::calibrate::{Calibration, CalibrationOptions, Observer, calibrate};
use super::distill::{DistillOptions, distill};
use super::images::{ImageInput, images_digest, load_calibration_images};
use super::qparams::{Precision, QParams, Range, cpu_saturates_int8};
use super::quantize::{
    QdqPlan, fold_batch_norms, insert_qdq, insert_qdq_with_weights, plan_qdq, reduced_range_weights,
};
use super::report::{
    CheckReport, DistillationReport, FoldReport, ModelReport, OutputAgreement, QuantizeReport,
    RangeReport, SettingsReport, StageTiming, cosine, runtime_op_counts,
};
use super::scenes::{SynthScenes, generate_scenes, scene_colour};
use crate::onnx::{DEFAULT_STRIDE, DataType, InputSize, Model};
use crate::runtime::{Provider, ProviderOptions, load_session_from_memory};

/// Where calibration images come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CalibrationSource {
    /// Data-free, whatever the export: distilled from the model's BatchNormalization
    /// statistics when it has BN layers ([`CalibrationSource::ZeroShot`]), generated
    /// scenes otherwise ([`CalibrationSource::Synth`], with these scenes).
    Auto(SynthScenes),
    /// Distilled from the model's BatchNormalization statistics: no data at all.
    ZeroShot,
    /// Scenes generated in process in the model's modality ([`super::scenes`]).
    Synth(SynthScenes),
    /// Both data-free sources at once: the distilled images (as [`CalibrationSource::ZeroShot`]
    /// makes them) followed by these generated scenes. The ranges cover what the BN
    /// statistics describe and what a camera-like scene drives; needs BN, as distillation.
    Mix(SynthScenes),
    /// The first `count` PNG images of a directory, sorted by name.
    ImageDir { dir: PathBuf, count: usize },
    /// Images already in the model's input space (N, C, H, W).
    Tensor(Arc<Array4<f32>>),
}

impl Default for CalibrationSource {
    fn default() -> Self {
        CalibrationSource::Auto(SynthScenes::default())
    }
}

impl CalibrationSource {
    /// The number of real images `--calib-images` takes by default.
    pub const DEFAULT_IMAGES: usize = 100;

    /// The source's name, as `--calibration`, the report and the cache key spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            CalibrationSource::Auto(_) => "auto",
            CalibrationSource::ZeroShot => "distill",
            CalibrationSource::Synth(_) => "synth",
            CalibrationSource::Mix(_) => "mix",
            CalibrationSource::ImageDir { .. } => "images",
            CalibrationSource::Tensor(_) => "tensor",
        }
    }

    /// The source that runs for `model`: `Auto` becomes distillation when the model
    /// has BatchNormalization layers and generated scenes otherwise; the others stay.
    pub fn resolve(&self, model: &Model) -> CalibrationSource {
        match self {
            CalibrationSource::Auto(scenes) if !has_batch_norm(model) => {
                CalibrationSource::Synth(*scenes)
            }
            CalibrationSource::Auto(_) => CalibrationSource::ZeroShot,
            other => other.clone(),
        }
    }
}

/// Whether the model has BatchNormalization layers (statistics to distill from).
pub fn has_batch_norm(model: &Model) -> bool {
    model
        .graph()
        .node
        .iter()
        .any(|n| n.op_type() == "BatchNormalization" && n.is_default_domain())
}

/// Which BN statistics the distillation loss matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DistillLoss {
    Mean,
    Std,
    #[default]
    MeanStd,
}

impl fmt::Display for DistillLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DistillLoss::Mean => "mean",
            DistillLoss::Std => "std",
            DistillLoss::MeanStd => "mean+std",
        })
    }
}

impl FromStr for DistillLoss {
    type Err = ZsqError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mean" => Ok(DistillLoss::Mean),
            "std" => Ok(DistillLoss::Std),
            "mean+std" | "both" => Ok(DistillLoss::MeanStd),
            _ => Err(ZsqError::Options(format!(
                "unknown loss `{s}` (expected mean, std or mean+std)"
            ))),
        }
    }
}

/// Settings of the zero-shot source (distillation).
#[derive(Debug, Clone, PartialEq)]
pub struct DistillSettings {
    pub loss: DistillLoss,
    pub iterations: usize,
    /// Adam's peak step size ([`DistillOptions::learning_rate`]).
    pub learning_rate: f32,
    /// Early stop ([`DistillOptions::min_improvement`]).
    pub min_improvement: f32,
    /// Distilled images.
    pub batch: usize,
    pub seed: u64,
    /// One grey channel broadcast to three; `None`: on for models whose metadata says
    /// thermal (a one-channel model has nothing to broadcast: no prior either way).
    pub thermal_prior: Option<bool>,
    /// Per-image (ZeroQ) or batch (DeepInversion/Genie) statistics.
    pub statistics: Statistics,
    /// Weight of the total-variation prior (0: off).
    pub total_variation: f32,
}

impl Default for DistillSettings {
    fn default() -> Self {
        let engine = DistillOptions::default();
        DistillSettings {
            loss: DistillLoss::MeanStd,
            iterations: engine.iterations,
            learning_rate: engine.learning_rate,
            min_improvement: engine.min_improvement,
            batch: engine.batch,
            seed: 0,
            thermal_prior: None,
            statistics: engine.statistics,
            total_variation: engine.total_variation,
        }
    }
}

/// Everything that decides how a model is quantized.
#[derive(Debug, Clone)]
pub struct QuantizeSettings {
    pub precision: Precision,
    pub observer: Observer,
    pub source: CalibrationSource,
    pub distill: DistillSettings,
    /// Where the calibration and check sessions run (threads: 0 = one per core).
    pub provider: ProviderOptions,
    /// Calibration images the int8 model is checked on against the float model (0: no
    /// check).
    pub check_images: usize,
    /// Raised by another thread to stop (e.g. a pipeline going to NULL): distillation
    /// and calibration stop within one run and return [`ZsqError::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// Write a PNG grid of the calibration images here (not part of the cache key).
    pub preview: Option<PathBuf>,
    /// Weights on 7 bits instead of 8, for CPUs whose int8 kernels saturate
    /// ([`cpu_saturates_int8`]); the default is whether this CPU does.
    pub reduce_range: bool,
    /// The size to fix a symbolic image height and width to, before anything runs
    /// ([`Model::fix_input_size`]); the int8 model keeps it. `None`: the model's own
    /// (which must then be fixed).
    pub input_size: Option<InputSize>,
}

impl QuantizeSettings {
    fn check_cancelled(&self) -> Result<(), ZsqError> {
        match &self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(ZsqError::Cancelled),
            _ => Ok(()),
        }
    }
}

impl Default for QuantizeSettings {
    fn default() -> Self {
        QuantizeSettings {
            precision: Precision::U8S8,
            observer: Observer::default(),
            source: CalibrationSource::default(),
            distill: DistillSettings::default(),
            provider: ProviderOptions::default(),
            check_images: 4,
            cancel: None,
            preview: None,
            reduce_range: cpu_saturates_int8(),
            input_size: None,
        }
    }
}

impl QuantizeSettings {
    /// One `name=value` line per input of the result, in a fixed order: the settings
    /// part of the cache key. Every field is named (a new one does not compile until
    /// it is placed here); so are the options distillation really runs with (learning
    /// rate, warm-up, starting noise: fixed today, but part of what makes the model),
    /// the execution provider (GPU kernels compute otherwise than the CPU's) and the
    /// loaded ONNX Runtime. Left out, because they change neither the model nor its
    /// report: the cancel flag, the preview path, the thread count, the GPU index and
    /// TensorRT's engine cache. The source is named as it runs for this model (`auto`
    /// resolved: the same model, the same key); real images by the sha256 of their
    /// names and contents, generated scenes by their count, seed, size and modality.
    /// An input size is named when one was given (keys made without one stay as they
    /// were). Loads ONNX Runtime if need be (to name it).
    pub fn canonical(&self, model: &Model) -> Result<String, ZsqError> {
        let source = &self.source.resolve(model);
        let QuantizeSettings {
            precision,
            observer,
            source: _,  // resolved for the model, below
            distill: _, // through `distill_options`, below
            provider,
            check_images,
            cancel: _,
            preview: _,
            reduce_range,
            input_size,
        } = self;
        let mut lines = vec![
            format!("onnxruntime={}", onnxruntime_identity()?),
            canonical_provider(provider)?,
            format!("trt_fp16={}", provider.trt_fp16),
            format!("precision={precision}"),
            format!("observer={}", canonical_observer(*observer)),
            format!("source={}", source.kind()),
            format!("reduce_range={reduce_range}"),
            format!("check_images={check_images}"),
        ];
        if let Some(size) = input_size {
            lines.push(format!("input_size={size}"));
        }
        lines.extend(self.source_lines(source, model)?);
        Ok(lines.join("\n"))
    }

    /// The canonical lines of calibration `source` for `model`.
    fn source_lines(
        &self,
        source: &CalibrationSource,
        model: &Model,
    ) -> Result<Vec<String>, ZsqError> {
        Ok(match source {
            CalibrationSource::Auto(_) => self.source_lines(&source.resolve(model), model)?,
            CalibrationSource::ZeroShot => canonical_distill(&distill_options(model, self)),
            CalibrationSource::Synth(scenes) => canonical_scenes(scenes, model)?,
            CalibrationSource::Mix(scenes) => {
                let mut lines = canonical_distill(&distill_options(model, self));
                lines.extend(canonical_scenes(scenes, model)?);
                lines
            }
            CalibrationSource::ImageDir { dir, count } => {
                let digest = images_digest(dir, *count, is_colour(model))?;
                vec![format!("images={count}"), format!("images_sha256={digest}")]
            }
            CalibrationSource::Tensor(t) => {
                let bytes: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
                vec![
                    format!("tensor_shape={:?}", t.shape()),
                    format!("tensor_sha256={}", sha256_hex(&bytes)),
                ]
            }
        })
    }
}

/// `provider=…`: the provider asked for; for `auto`, also the providers this runtime
/// offers, which are what `auto` chooses among (the first that starts). The device
/// index, threads and TensorRT's cache directory change where and how fast, not what.
fn canonical_provider(options: &ProviderOptions) -> Result<String, ZsqError> {
    let ProviderOptions {
        provider,
        device_id: _,
        threads: _,
        trt_cache_dir: _,
        trt_fp16: _, // its own line
    } = options;
    Ok(match provider {
        Provider::Auto => {
            let mut offered = Vec::new();
            for p in Provider::AUTO_ORDER {
                if p.is_compiled_in()? {
                    offered.push(p.as_str());
                }
            }
            format!("provider=auto({})", offered.join(","))
        }
        explicit => format!("provider={explicit}"),
    })
}

/// One `synth.name=value` line per input of the generated scenes.
fn canonical_scenes(scenes: &SynthScenes, model: &Model) -> Result<Vec<String>, ZsqError> {
    let SynthScenes { count, seed, size } = scenes;
    let colour = scene_colour(model.metadata("modality"))?;
    Ok(vec![
        format!("synth.count={count}"),
        format!("synth.seed={seed}"),
        format!("synth.size={size}"),
        format!("synth.modality={}", if colour { "rgb" } else { "thermal" }),
    ])
}

/// One `distill.name=value` line per option distillation runs with.
fn canonical_distill(options: &DistillOptions) -> Vec<String> {
    let DistillOptions {
        batch,
        iterations,
        min_improvement,
        learning_rate,
        warmup,
        loss,
        statistics,
        total_variation,
        thermal,
        seed,
        size,
        init_mean,
        init_std,
        init_smoothness,
        pixel_range,
        cancel: _,
    } = options;
    vec![
        format!("distill.loss={loss:?}"),
        format!("distill.iterations={iterations}"),
        format!("distill.min_improvement={min_improvement}"),
        format!("distill.batch={batch}"),
        format!("distill.seed={seed}"),
        format!("distill.thermal_prior={thermal:?}"),
        format!("distill.statistics={statistics}"),
        format!("distill.total_variation={total_variation}"),
        format!("distill.learning_rate={learning_rate}"),
        format!("distill.warmup={warmup}"),
        format!("distill.size={size:?}"),
        format!("distill.init_mean={init_mean}"),
        format!("distill.init_std={init_std}"),
        format!("distill.init_smoothness={init_smoothness}"),
        format!("distill.pixel_range={pixel_range:?}"),
    ]
}

/// The options distillation runs with for `settings` (the settings' own, the engine's
/// defaults for the rest): one function, so the cache key names exactly what runs.
fn distill_options(model: &Model, settings: &QuantizeSettings) -> DistillOptions {
    let DistillSettings {
        loss,
        iterations,
        learning_rate,
        min_improvement,
        batch,
        seed,
        thermal_prior: asked,
        statistics,
        total_variation,
    } = &settings.distill;
    DistillOptions {
        batch: *batch,
        iterations: *iterations,
        learning_rate: *learning_rate,
        min_improvement: *min_improvement,
        loss: match loss {
            DistillLoss::Mean => LossTerms::Mean,
            DistillLoss::Std => LossTerms::Std,
            DistillLoss::MeanStd => LossTerms::MeanStd,
        },
        statistics: *statistics,
        total_variation: *total_variation,
        thermal: Some(thermal_prior(model, *asked)),
        seed: *seed,
        cancel: settings.cancel.clone(),
        ..DistillOptions::default()
    }
}

fn canonical_observer(o: Observer) -> String {
    match o {
        Observer::Percentile(p) => format!("percentile:{p}"),
        other => other.to_string(),
    }
}

fn is_colour(model: &Model) -> bool {
    model
        .metadata("modality")
        .is_some_and(|m| m.eq_ignore_ascii_case("rgb"))
}

/// Whether distillation optimises one grey channel for several input channels: as
/// asked, else for models whose metadata says thermal. A one-channel model has nothing
/// to tie: distillation optimises its one channel either way.
fn thermal_prior(model: &Model, asked: Option<bool>) -> bool {
    asked.unwrap_or_else(|| {
        model
            .metadata("modality")
            .is_some_and(|m| m.eq_ignore_ascii_case("thermal"))
    })
}

/// A stage of the pipeline, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading and pre-processing real images.
    Images,
    /// Rendering and pre-processing generated scenes.
    Scenes,
    /// Distilling images from BN statistics.
    Distill,
    /// Running the float model to collect statistics.
    Calibrate,
    /// Comparing the int8 model with the float model.
    Check,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Images => "images",
            Stage::Scenes => "scenes",
            Stage::Distill => "distill",
            Stage::Calibrate => "calibrate",
            Stage::Check => "check",
        })
    }
}

/// Progress of a stage: `done` of `total` steps (and the distillation loss).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
    pub loss: Option<f32>,
}

/// A quantized model.
#[derive(Debug, Clone)]
pub struct Quantized {
    pub model: Model,
    pub bytes: Vec<u8>,
    pub report: QuantizeReport,
}

/// The model's image input: name, what pre-processing must produce, declared dims
/// (-1 where symbolic). Errors name the problem (several inputs, not an image, not
/// float32, symbolic height/width).
pub fn image_input(model: &Model) -> Result<(String, ImageInput, Vec<i64>), ZsqError> {
    let graph = model.graph();
    let view = graph.view();
    let inputs: Vec<_> = view.data_inputs().collect();
    let [input] = inputs.as_slice() else {
        return Err(ZsqError::Model(format!(
            "the model has {} inputs ({}); a detector has one image input",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let name = input.name().to_string();
    let ty = input.r#type.as_ref();
    if ty.and_then(|t| t.elem_type()) != Some(DataType::Float) {
        return Err(ZsqError::Model(format!(
            "input '{name}' is not float32 (an image input is a float32 N×C×H×W tensor)"
        )));
    }
    let dims: Vec<i64> = ty
        .and_then(|t| t.shape())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(crate::onnx::DimValue::Value(v)) if v > 0 => v,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    let [_, c, h, w] = dims.as_slice() else {
        return Err(ZsqError::Model(format!(
            "input '{name}' has shape {dims:?}: not an image (N, C, H, W)"
        )));
    };
    if !matches!(c, 1 | 3) {
        return Err(ZsqError::Model(format!(
            "input '{name}' has shape {dims:?}: not an image with {c} channels; thermalzsq takes \
             1 (thermal grey) or 3 (grey replicated, or RGB with metadata modality=rgb): re-export \
             the model with one of those"
        )));
    }
    if *h <= 0 || *w <= 0 {
        return Err(ZsqError::Model(format!(
            "input '{name}' has shape {dims:?}: its height and width are symbolic; give the size \
             to run it at, a multiple of {} (zsq quantize --size WxH, zsqcalibrate/thermaldetect \
             input-size=WxH)",
            model.input_stride().unwrap_or(DEFAULT_STRIDE)
        )));
    }
    Ok((
        name,
        ImageInput {
            channels: *c as usize,
            height: *h as usize,
            width: *w as usize,
            colour: is_colour(model),
        },
        dims,
    ))
}

/// The generated-scenes calibration source: `scenes` in the model's modality at its
/// input size.
fn scene_images(
    model: &Model,
    input: ImageInput,
    scenes: &SynthScenes,
    settings: &QuantizeSettings,
    report: &mut QuantizeReport,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Array4<f32>, ZsqError> {
    let input = ImageInput {
        colour: scene_colour(model.metadata("modality"))?,
        ..input
    };
    let images = generate_scenes(
        scenes,
        input,
        settings.cancel.as_ref(),
        &mut |done, total| {
            progress(&Progress {
                stage: Stage::Scenes,
                done,
                total,
                loss: None,
            })
        },
    )?;
    report.calibration.seed = Some(scenes.seed);
    report.calibration.scene_size = Some(scenes.size.to_string());
    Ok(images)
}

/// The zero-shot calibration source: images distilled from the model's BN statistics.
fn distilled_images(
    model: &Model,
    settings: &QuantizeSettings,
    report: &mut QuantizeReport,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Array4<f32>, ZsqError> {
    let d = &settings.distill;
    let options = distill_options(model, settings);
    let distilled = distill(model, &options, &settings.provider, &mut |p| {
        progress(&Progress {
            stage: Stage::Distill,
            done: p.iteration,
            total: p.iterations,
            loss: Some(p.loss),
        })
    })?;
    report.distillation = Some(DistillationReport {
        loss: d.loss.to_string(),
        iterations: d.iterations,
        batch: d.batch,
        seed: d.seed,
        thermal_prior: distilled.grey,
        loss_per_iteration: distilled
            .loss_per_iteration
            .iter()
            .map(|&l| l as f64)
            .collect(),
        bn_mismatch_before: distilled
            .layers
            .iter()
            .map(|l| (l.mean_err_before + l.std_err_before) as f64)
            .collect(),
        bn_mismatch_after: distilled
            .layers
            .iter()
            .map(|l| (l.mean_err_after + l.std_err_after) as f64)
            .collect(),
        seconds_per_step: distilled.seconds_per_step,
        steps: distilled.loss_per_iteration.len(),
    });
    Ok(distilled.images)
}

/// Quantizes `model` as `settings` say. The model is not changed; external data is
/// read relative to its directory.
pub fn quantize(
    model: &Model,
    settings: &QuantizeSettings,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Quantized, ZsqError> {
    let mut run = Run::new(settings, progress);
    let source = run.read_source(model)?;
    let (folded, plan) = run.prepare(&source.model)?;
    let images = run.calibration_images(&source)?;
    let calibration = run.calibrate(&folded, &plan, &images)?;
    let quantized = run.int8_model(&source, &folded, &plan, &calibration)?;
    let bytes = quantized.to_bytes();
    run.timer.lap(&mut run.report, "quantize");
    run.check(&source, &folded, &quantized, &plan, &images)?;
    Ok(Quantized {
        model: quantized,
        bytes,
        report: run.report,
    })
}

/// The model being quantized: external data inlined, its image input found, the
/// calibration source that runs for it (`auto` resolved).
struct Source {
    model: Model,
    input_name: String,
    input: ImageInput,
    calibration: CalibrationSource,
}

/// One run of [`quantize`]: its settings, where progress goes, and the report and
/// stage timings it fills in as it goes.
struct Run<'a> {
    settings: &'a QuantizeSettings,
    progress: &'a mut dyn FnMut(&Progress),
    report: QuantizeReport,
    timer: Timer,
}

impl<'a> Run<'a> {
    fn new(settings: &'a QuantizeSettings, progress: &'a mut dyn FnMut(&Progress)) -> Self {
        Run {
            settings,
            progress,
            report: QuantizeReport {
                thermalzsq_version: env!("CARGO_PKG_VERSION").to_string(),
                ..QuantizeReport::default()
            },
            timer: Timer::new(),
        }
    }

    /// Inlines the model's external data, finds its image input and reports the model
    /// and the settings.
    fn read_source(&mut self, model: &Model) -> Result<Source, ZsqError> {
        let mut source = model.clone();
        source.inline_external_data()?;
        // The model as given: what the report and the int8 model's stamp name.
        let source_bytes = source.to_bytes();
        if let Some(size) = self.settings.input_size {
            source.fix_input_size(size)?;
        }
        let (input_name, input, dims) = image_input(&source)?;
        self.report.model = ModelReport {
            input: input_name.clone(),
            shape: dims,
            sha256: sha256_hex(&source_bytes),
            nodes: source.graph().node.len(),
            batch_norms: source
                .graph()
                .node
                .iter()
                .filter(|n| n.op_type() == "BatchNormalization")
                .count(),
            opset: source.opset_version("").unwrap_or(0),
            modality: source.metadata("modality").map(str::to_string),
        };
        let settings = self.settings;
        let calibration = settings.source.resolve(&source);
        self.report.settings = SettingsReport {
            precision: settings.precision.to_string(),
            observer: settings.observer.to_string(),
            source: calibration.kind().to_string(),
            canonical: settings.canonical(&source)?,
        };
        Ok(Source {
            model: source,
            input_name,
            input,
            calibration,
        })
    }

    /// Folds BN and plans the QDQ placement on the folded graph.
    fn prepare(&mut self, source: &Model) -> Result<(Model, QdqPlan), ZsqError> {
        let mut folded = source.clone();
        let fold = fold_batch_norms(&mut folded)?;
        self.report.folding = FoldReport {
            folded: fold.folded,
            kept: fold.kept,
        };
        let plan = plan_qdq(folded.graph())?;
        self.timer.lap(&mut self.report, "prepare");
        Ok((folded, plan))
    }

    /// The calibration images of the settings' source (and their preview, if asked).
    fn calibration_images(&mut self, source: &Source) -> Result<Arc<Array4<f32>>, ZsqError> {
        let progress = &mut *self.progress;
        let report = &mut self.report;
        let images: Arc<Array4<f32>> = match &source.calibration {
            CalibrationSource::Tensor(t) => t.clone(),
            CalibrationSource::Synth(scenes) => {
                let images = scene_images(
                    &source.model,
                    source.input,
                    scenes,
                    self.settings,
                    report,
                    progress,
                )?;
                self.timer.lap(report, "scenes");
                Arc::new(images)
            }
            CalibrationSource::Mix(scenes) => {
                // Distillation first: a model without BN fails before any scene is made.
                let distilled = distilled_images(&source.model, self.settings, report, progress)?;
                self.timer.lap(report, "distill");
                let generated = scene_images(
                    &source.model,
                    source.input,
                    scenes,
                    self.settings,
                    report,
                    progress,
                )?;
                self.timer.lap(report, "scenes");
                let images =
                    ndarray::concatenate(Axis(0), &[distilled.view(), generated.view()])
                        .map_err(|e| ZsqError::Model(format!("mixing calibration images: {e}")))?;
                Arc::new(images)
            }
            CalibrationSource::ImageDir { dir, count } => {
                let set =
                    load_calibration_images(dir, *count, source.input, &mut |done, total| {
                        progress(&Progress {
                            stage: Stage::Images,
                            done,
                            total,
                            loss: None,
                        })
                    })?;
                report.calibration.dir = Some(set.dir.display().to_string());
                report.calibration.files = set
                    .files
                    .iter()
                    .map(|f| {
                        f.file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect();
                report.calibration.sha256 = Some(set.sha256);
                self.timer.lap(report, "images");
                Arc::new(set.images)
            }
            // `resolve` never leaves `Auto`: distillation is what it would resolve to.
            CalibrationSource::ZeroShot | CalibrationSource::Auto(_) => {
                let images = distilled_images(&source.model, self.settings, report, progress)?;
                self.timer.lap(report, "distill");
                Arc::new(images)
            }
        };
        report.calibration.source = source.calibration.kind().to_string();
        if let Some(path) = &self.settings.preview {
            super::preview::write_grid(images.view(), path)?;
        }
        Ok(images)
    }

    /// The activation ranges of the planned tensors, observed on `images`.
    fn calibrate(
        &mut self,
        folded: &Model,
        plan: &QdqPlan,
        images: &Array4<f32>,
    ) -> Result<Calibration, ZsqError> {
        let settings = self.settings;
        let options = CalibrationOptions {
            observer: settings.observer,
            symmetric: settings.precision.symmetric(),
            provider: settings.provider.clone(),
            cancel: settings.cancel.clone(),
        };
        settings.check_cancelled()?;
        let progress = &mut *self.progress;
        let calibration = calibrate(
            folded,
            &plan.activations,
            images.view(),
            &options,
            &mut |done, total| {
                progress(&Progress {
                    stage: Stage::Calibrate,
                    done,
                    total,
                    loss: None,
                })
            },
        )?;
        self.report.calibration.images = calibration.images;
        self.report.calibration.passes = calibration.passes;
        self.timer.lap(&mut self.report, "calibrate");
        Ok(calibration)
    }

    /// The int8 model: QDQ inserted with the calibrated ranges, stamped with how it was
    /// made; reports the placement and every tensor's parameters.
    fn int8_model(
        &mut self,
        source: &Source,
        folded: &Model,
        plan: &QdqPlan,
        calibration: &Calibration,
    ) -> Result<Model, ZsqError> {
        let precision = self.settings.precision;
        let ranges: HashMap<String, Range> = calibration
            .tensors
            .iter()
            .map(|(t, r)| (t.clone(), r.range))
            .collect();
        let mut quantized = folded.clone();
        self.report.placement = if self.settings.reduce_range {
            insert_qdq_with_weights(&mut quantized, plan, &ranges, precision, &mut |layer, w| {
                Some(reduced_range_weights(layer, w))
            })?
        } else {
            insert_qdq(&mut quantized, plan, &ranges, precision)?
        };
        let groups = plan.group_ranges(&ranges)?;
        self.report.ranges = plan
            .activations
            .iter()
            .map(|t| {
                let leader = plan.leader(t);
                let p = QParams::for_range(groups[leader], precision);
                let c = calibration.tensors[t];
                RangeReport {
                    tensor: t.clone(),
                    observed: c.observed,
                    chosen: c.range,
                    scale: p.scale,
                    zero_point: p.zero_point,
                    shares_with: (leader != t).then(|| leader.to_string()),
                }
            })
            .collect();
        let mut stamp = serde_json::json!({
            "precision": precision.name(),
            "observer": self.settings.observer.to_string(),
            "calibration": source.calibration.kind(),
            "calibration_images": calibration.images,
            "source_sha256": self.report.model.sha256,
            "thermalzsq": env!("CARGO_PKG_VERSION"),
        });
        if self.settings.reduce_range {
            stamp["weight_bits"] = 7.into();
        }
        quantized.set_metadata("thermalzsq.quantized", &stamp.to_string());
        Ok(quantized)
    }

    /// Warns about the s8s8 profile on CPUs and compares the int8 model with the float
    /// one on the first calibration images.
    fn check(
        &mut self,
        source: &Source,
        folded: &Model,
        quantized: &Model,
        plan: &QdqPlan,
        images: &Array4<f32>,
    ) -> Result<(), ZsqError> {
        let settings = self.settings;
        if settings.precision == Precision::S8S8 {
            self.report.warnings.push(
                "s8s8 is the TensorRT profile: ONNX Runtime's CPU EP does not fuse S8S8 QDQ on x86 \
                 and runs it slower than fp32; use u8s8 for CPUs"
                    .into(),
            );
        }
        if settings.check_images == 0 {
            return Ok(());
        }
        let k = settings.check_images.min(images.shape()[0]);
        let head: Vec<String> = plan
            .float_layers()
            .map(|l| folded.graph().node[l.node].output[0].clone())
            .collect();
        let check = check_agreement(
            &source.model,
            quantized,
            &head,
            &source.input_name,
            images.slice(ndarray::s![..k, .., .., ..]),
            &settings.provider,
            self.progress,
        )?;
        self.report.check = Some(check);
        self.timer.lap(&mut self.report, "check");
        Ok(())
    }
}

/// Runs the float and the int8 model on `images` and compares every output and the
/// `head` tensors (the last layers' float outputs: box and class logits before any
/// decoding, where quantization error shows undiluted by box coordinates); also lists
/// the ops of ONNX Runtime's optimised int8 graph on the CPU.
pub fn check_agreement(
    float_model: &Model,
    int8_model: &Model,
    head: &[String],
    input_name: &str,
    images: ArrayView4<f32>,
    provider: &ProviderOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<CheckReport, ZsqError> {
    let outputs: Vec<String> = float_model
        .graph()
        .output
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    let expose = |m: &Model| -> Result<Vec<u8>, ZsqError> {
        let mut m = m.clone();
        for t in head.iter().filter(|t| !outputs.contains(t)) {
            m.graph_mut().add_output(t, DataType::Float)?;
        }
        Ok(m.to_bytes())
    };
    let mut float = load_session_from_memory(&expose(float_model)?, provider)?;
    let mut int8 = load_session_from_memory(&expose(int8_model)?, provider)?;
    let names: Vec<String> = outputs
        .iter()
        .chain(head.iter().filter(|t| !outputs.contains(t)))
        .cloned()
        .collect();
    let batch = match float.info.inputs.first().and_then(|i| i.dims.first()) {
        Some(&b) if b > 0 => b as usize,
        _ => 1,
    };
    let mut collected: Vec<(Vec<f32>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); names.len()];
    let n = images.shape()[0] / batch * batch;
    for (i, chunk) in images
        .slice(ndarray::s![..n, .., .., ..])
        .axis_chunks_iter(Axis(0), batch)
        .enumerate()
    {
        let chunk = chunk.as_standard_layout();
        let s = chunk.shape();
        let dims = [s[0], s[1], s[2], s[3]];
        let data = chunk.as_slice().expect("standard layout");
        for (which, session) in [&mut float, &mut int8].into_iter().enumerate() {
            let result = session.session.run(ort::inputs![
                input_name => TensorRef::from_array_view((dims, data))?
            ])?;
            for (name, acc) in names.iter().zip(collected.iter_mut()) {
                let (_, v) = result[name.as_str()].try_extract_tensor::<f32>()?;
                if which == 0 {
                    acc.0.extend_from_slice(v);
                } else {
                    acc.1.extend_from_slice(v);
                }
            }
        }
        progress(&Progress {
            stage: Stage::Check,
            done: (i + 1) * batch,
            total: n,
            loss: None,
        });
    }
    let mut agreements: Vec<OutputAgreement> = names
        .into_iter()
        .zip(collected)
        .map(|(name, (f, q))| OutputAgreement {
            name,
            cosine: cosine(&f, &q),
            max_abs_diff: f
                .iter()
                .zip(&q)
                .map(|(a, b)| f64::from((a - b).abs()))
                .fold(0.0, f64::max),
            float_abs_max: f.iter().map(|a| f64::from(a.abs())).fold(0.0, f64::max),
            selected: false,
        })
        .collect();
    let view = float_model.graph().view();
    for a in &mut agreements {
        let upstream = view.ancestors(&[a.name.as_str()]);
        a.selected = float_model
            .graph()
            .node
            .iter()
            .zip(upstream)
            .any(|(node, up)| up && node.op_type() == "TopK");
    }
    let head_agreements = agreements.split_off(outputs.len());
    Ok(CheckReport {
        images: n,
        provider: int8.provider.to_string(),
        outputs: agreements,
        head: head_agreements,
        runtime_ops: runtime_op_counts(&int8_model.to_bytes(), provider.threads)?,
    })
}

/// The cache key of quantizing `model` with `settings`: the model's bytes (external
/// data inlined), [`QuantizeSettings::canonical`] and this build ([`CacheKey::new`]).
pub fn cache_key(model: &Model, settings: &QuantizeSettings) -> Result<CacheKey, ZsqError> {
    let mut source = model.clone();
    source.inline_external_data()?;
    Ok(CacheKey::new(
        &source.to_bytes(),
        &settings.canonical(&source)?,
    ))
}

/// [`quantize`] behind the cache: the cached entry if there is a sound one, else the
/// model is quantized and stored (once, even when several processes ask at the same
/// time; waiting for another one's lock stops when `settings.cancel` is raised).
pub fn quantize_cached(
    cache: &Cache,
    model: &Model,
    settings: &QuantizeSettings,
    progress: &mut dyn FnMut(&Progress),
) -> Result<CacheOutcome, ZsqError> {
    let key = cache_key(model, settings)?;
    cache.get_or_create(&key, settings.cancel.as_deref(), || {
        quantize_for_cache(model, settings, progress)
    })
}

/// [`quantize`] into the cache whatever it holds (`force`): the new model replaces the
/// entry, under the key's lock ([`Cache::replace`]).
pub fn quantize_replacing_cached(
    cache: &Cache,
    model: &Model,
    settings: &QuantizeSettings,
    progress: &mut dyn FnMut(&Progress),
) -> Result<CacheOutcome, ZsqError> {
    let key = cache_key(model, settings)?;
    cache.replace(&key, settings.cancel.as_deref(), || {
        quantize_for_cache(model, settings, progress)
    })
}

fn quantize_for_cache(
    model: &Model,
    settings: &QuantizeSettings,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Vec<u8>, serde_json::Value), ZsqError> {
    let q = quantize(model, settings, progress)?;
    let json = serde_json::to_value(&q.report).expect("reports serialise");
    Ok((q.bytes, json))
}

struct Timer {
    last: Instant,
}

impl Timer {
    fn new() -> Self {
        Timer {
            last: Instant::now(),
        }
    }

    fn lap(&mut self, report: &mut QuantizeReport, stage: &str) {
        let now = Instant::now();
        report.timings.push(StageTiming {
            stage: stage.to_string(),
            seconds: (now - self.last).as_secs_f64(),
        });
        self.last = now;
    }
}
