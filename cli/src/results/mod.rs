//! `zsq report` (`make report`): the zero-shot vs real-data comparison of the paper
//! (Sevsay & Akagündüz 2024), rerun on our detectors, and W4A8 beyond it. Writes
//! `docs/results.md` and its figures under `docs/results/`.
//!
//! What is measured, per model (each on the held-out set of its own domain; the
//! RGB-trained model on the thermal set too, the domain gap):
//!
//! - fp32; int8 (u8s8) calibrated on 100 real images of its domain (minmax,
//!   percentile); zero-shot int8 from distilled images with the paper's ablation (BN
//!   mean only, std only, mean+std), the thermal prior flipped, and batch instead of
//!   per-image statistics — every zero-shot number over several seeds (mean ± std);
//! - distillation time, and fp32 vs int8 latency measured in the same run;
//! - mAP against the number of distillation steps (how few suffice);
//! - W4A8 from the same distilled images, with round-to-nearest and with AdaRound
//!   reconstruction ([`thermalzsq::zsq::w4a8`]), against the same on real images;
//! - a figure of what the RGB and the thermal models "remember" (distilled images).
//!
//! Everything is deterministic (synthetic data sets by seed, distillation by seed);
//! each measurement is cached under `out/report/cache/` keyed by everything it depends
//! on, so a rerun recomputes only what changed. Held-out images are pre-processed once
//! per run and shared by every model variant that is scored on them.

mod chart;
mod machine;
mod markdown;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ndarray::Array4;
use ort::value::TensorRef;
use thermalzsq::detect::Detector;
use thermalzsq::detect::decode::OutputLayout;
use thermalzsq::eval::{CocoGt, PreparedImages, detect_prepared, eval_config, evaluate};
use thermalzsq::onnx::Model;
use thermalzsq::runtime::{ProviderOptions, load_session_with_config};
use thermalzsq::synth::{DatasetSpec, RecordingFormat, write_dataset};
use thermalzsq::zsq::autodiff::{LossTerms, Statistics};
use thermalzsq::zsq::cache::sha256_hex;
use thermalzsq::zsq::calibrate::Observer;
use thermalzsq::zsq::distill::{DistillOptions, distill};
use thermalzsq::zsq::images::{ImageInput, load_calibration_images};
use thermalzsq::zsq::pipeline::{
    CalibrationSource, DistillLoss, QuantizeSettings, image_input, quantize,
};
use thermalzsq::zsq::w4a8::{Rounding, W4a8Options, quantize_w4a8};

pub use machine::Machine;
use store::{Record, Store};

/// Bumped when what a cached record means changes (then every record is recomputed).
const REPORT_VERSION: u32 = 1;

/// A report failure, as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportError(pub String);

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReportError {}

macro_rules! report_error_from {
    ($($t:ty),+) => {
        $(impl From<$t> for ReportError {
            fn from(e: $t) -> Self {
                ReportError(e.to_string())
            }
        })+
    };
}
report_error_from!(
    thermalzsq::zsq::ZsqError,
    thermalzsq::eval::EvalError,
    thermalzsq::detect::DetectError,
    thermalzsq::runtime::RuntimeError,
    thermalzsq::onnx::OnnxError,
    thermalzsq::synth::SynthError,
    ort::Error,
    std::io::Error
);

/// A synthetic data set: `zsq synth --scenes N --seed S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSet {
    pub scenes: u64,
    pub seed: u64,
}

/// How much is measured. The defaults are the published report (sized to finish in
/// well under 45 minutes on a 2-core machine); tests use a tiny plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Held-out evaluation scenes (both domains: `thermal16/` and its `rgb/` twin).
    pub eval: SynthSet,
    /// Real calibration images: the first `calib_images` of this set.
    pub calib: SynthSet,
    pub calib_images: usize,
    /// Frame size of the synthetic sets.
    pub size: (u32, u32),
    /// Distillation seeds: every zero-shot number is their mean ± std.
    pub seeds: Vec<u64>,
    /// Distilled images and steps of the zero-shot configurations.
    pub batch: usize,
    pub iterations: usize,
    /// Step counts of the mAP-vs-steps curve (besides `iterations`), on the main model.
    pub sweep: Vec<usize>,
    pub w4a8: W4a8Options,
    /// Real images for the real-data W4A8 comparison (as many as distilled ones: the
    /// comparison is about what the images are, not how many).
    pub w4a8_real_images: usize,
    /// Held-out images the W4A8 outputs are compared with fp32 on.
    pub agreement_images: usize,
    /// Timed runs per model and variant in each of the interleaved latency rounds.
    pub latency_runs: usize,
    /// Every measurement on every model. Without it, W4A8 runs on the main model only,
    /// to keep `make report` well within 45 minutes on a 2-core machine.
    pub full: bool,
}

impl Plan {
    /// What the default plan does not measure (empty with `full`).
    pub fn left_out(&self) -> Vec<String> {
        if self.full {
            return Vec::new();
        }
        vec!["W4A8 on the models other than the main (RGB→thermal fine-tuned) one".into()]
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            eval: SynthSet {
                scenes: 200,
                seed: 2,
            },
            calib: SynthSet {
                scenes: 100,
                seed: 1,
            },
            calib_images: 100,
            size: (640, 512),
            seeds: vec![0, 1, 2],
            batch: 8,
            iterations: DistillOptions::default().iterations,
            sweep: vec![0, 10, 20, 40],
            w4a8: W4a8Options {
                iterations: 150,
                ..W4a8Options::default()
            },
            w4a8_real_images: 8,
            agreement_images: 50,
            latency_runs: 20,
            full: false,
        }
    }
}

/// What `zsq report` runs on and where it writes.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The fp32 detectors (their `modality` metadata gives the domain).
    pub models: Vec<PathBuf>,
    /// Data sets and cache (`out/report`).
    pub out: PathBuf,
    /// The Markdown report and its figures directory.
    pub doc: PathBuf,
    pub figures: PathBuf,
    /// Recompute every measurement (the cache is still written).
    pub fresh: bool,
    pub plan: Plan,
    pub provider: ProviderOptions,
}

/// A detector's training domain: which held-out images it is scored on and which real
/// images calibrate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    Thermal,
    Rgb,
}

impl Domain {
    /// The `zsq synth` subdirectory (16-bit radiometric frames go through the
    /// detector's own AGC, as a camera's would).
    fn dir(self) -> &'static str {
        match self {
            Domain::Thermal => "thermal16",
            Domain::Rgb => "rgb",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Domain::Thermal => "thermal",
            Domain::Rgb => "RGB",
        }
    }
}

/// A zero-shot configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variant {
    pub loss: DistillLoss,
    pub statistics: Statistics,
    pub prior: bool,
    pub iterations: usize,
}

/// The ablation columns, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ablation {
    /// mean+std, per-image statistics, the model's default prior (thermal: on).
    Default,
    MeanOnly,
    StdOnly,
    /// The thermal prior the other way round from the model's default.
    PriorFlipped,
    BatchStatistics,
}

impl Ablation {
    pub const ALL: [Ablation; 5] = [
        Ablation::Default,
        Ablation::MeanOnly,
        Ablation::StdOnly,
        Ablation::PriorFlipped,
        Ablation::BatchStatistics,
    ];

    fn variant(self, prior_default: bool, iterations: usize) -> Variant {
        let base = Variant {
            loss: DistillLoss::MeanStd,
            statistics: Statistics::PerImage,
            prior: prior_default,
            iterations,
        };
        match self {
            Ablation::Default => base,
            Ablation::MeanOnly => Variant {
                loss: DistillLoss::Mean,
                ..base
            },
            Ablation::StdOnly => Variant {
                loss: DistillLoss::Std,
                ..base
            },
            Ablation::PriorFlipped => Variant {
                prior: !prior_default,
                ..base
            },
            Ablation::BatchStatistics => Variant {
                statistics: Statistics::Batch,
                ..base
            },
        }
    }
}

/// The W4A8 rows: rounding × calibration images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum W4Kind {
    NearestDistilled,
    AdaRoundDistilled,
    NearestReal,
    AdaRoundReal,
}

impl W4Kind {
    pub const ALL: [W4Kind; 4] = [
        W4Kind::NearestDistilled,
        W4Kind::AdaRoundDistilled,
        W4Kind::NearestReal,
        W4Kind::AdaRoundReal,
    ];

    fn rounding(self) -> Rounding {
        match self {
            W4Kind::NearestDistilled | W4Kind::NearestReal => Rounding::Nearest,
            W4Kind::AdaRoundDistilled | W4Kind::AdaRoundReal => Rounding::AdaRound,
        }
    }

    fn distilled(self) -> bool {
        matches!(self, W4Kind::NearestDistilled | W4Kind::AdaRoundDistilled)
    }
}

/// One model's entry in the report.
#[derive(Debug, Clone)]
pub struct ModelResults {
    /// File stem, e.g. `det_thermal_ft`.
    pub name: String,
    /// What it is, for people (`RGB→thermal fine-tuned`), and in ASCII for figures.
    pub label: String,
    pub short: String,
    pub domain: Domain,
    /// Its own domain first.
    pub evals: Vec<Domain>,
    /// The thermal prior is on by default (thermal models).
    pub prior_default: bool,
    pub fp32: Record,
    /// minmax, percentile.
    pub ptq: Vec<(Observer, Record)>,
    /// Per ablation, one record per seed.
    pub zsq: Vec<(Ablation, Vec<Record>)>,
    /// Per step count (the default count included), one record per seed.
    pub sweep: Vec<(usize, Vec<Record>)>,
    pub w4a8: Vec<(W4Kind, Vec<Record>)>,
    /// Agreement of the default zero-shot int8 model with fp32 (first seed), as the
    /// W4A8 rows measure it.
    pub int8_agreement: Option<(f64, f64)>,
    /// Median ms per frame: fp32, int8 (zero-shot), W4A8 (same run).
    pub latency: (f64, f64, f64),
    /// Distilled images of the default configuration (first seed), for the figure.
    pub distilled: Option<Array4<f32>>,
}

/// Everything `zsq report` measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub plan_text: String,
    pub models: Vec<ModelResults>,
    /// Real calibration images per domain (a few, for the figure).
    pub real_examples: BTreeMap<Domain, Array4<f32>>,
    pub seconds: f64,
    pub cached: usize,
    pub computed: usize,
}

/// Labels of the bundled demo models (others are named by their file).
fn labels(stem: &str) -> (String, String) {
    let (long, short) = match stem {
        "det_rgb" => ("RGB-trained", "RGB-trained"),
        "det_thermal_ft" => ("RGB→thermal fine-tuned", "RGB->thermal fine-tuned"),
        "det_thermal_scratch" => ("thermal from scratch", "thermal from scratch"),
        other => (other, other),
    };
    (long.to_string(), short.to_string())
}

/// Runs the plan on the models, writes the report and its figures; `log` gets one line
/// per step (with the elapsed time).
pub fn run_report(
    options: &ReportOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Report, ReportError> {
    let start = Instant::now();
    if options.models.is_empty() {
        return Err(ReportError("no models to report on".into()));
    }
    let plan = &options.plan;
    let data = options.out.join("data");
    let eval_dir = data.join(format!("eval-{}", plan.eval.seed));
    let calib_dir = data.join(format!("calib-{}", plan.calib.seed));
    for (dir, set) in [(&eval_dir, plan.eval), (&calib_dir, plan.calib)] {
        ensure_synth(dir, set, plan.size, log)?;
    }
    let gt = CocoGt::from_file(&eval_dir.join("annotations.json"))?;
    let mut ctx = Context {
        store: Store::open(&options.out.join("cache"), options.fresh)?,
        gt,
        eval_dir,
        calib_dir,
        prepared: HashMap::new(),
        plan: plan.clone(),
        provider: options.provider.clone(),
        start,
        data_key: format!(
            "report=v{REPORT_VERSION} thermalzsq={} eval={}x{}@{}x{} calib={}x{}/{}",
            env!("CARGO_PKG_VERSION"),
            plan.eval.scenes,
            plan.eval.seed,
            plan.size.0,
            plan.size.1,
            plan.calib.scenes,
            plan.calib.seed,
            plan.calib_images
        ),
    };
    let mut models = Vec::new();
    let main = main_model(&options.models);
    for path in &options.models {
        models.push(ctx.model(path, Some(path) == main.as_ref(), log)?);
    }
    let mut real_examples = BTreeMap::new();
    for m in &models {
        if let std::collections::btree_map::Entry::Vacant(e) = real_examples.entry(m.domain) {
            let input = ImageInput {
                channels: 3,
                height: 320,
                width: 320,
                colour: m.domain == Domain::Rgb,
            };
            let set = load_calibration_images(
                &ctx.calib_dir,
                4.min(plan.calib_images),
                input,
                &mut |_, _| {},
            )?;
            e.insert(set.images);
        }
    }
    let report = Report {
        machine: Machine::detect(),
        plan_text: ctx.data_key.clone(),
        models,
        real_examples,
        seconds: start.elapsed().as_secs_f64(),
        cached: ctx.store.hits,
        computed: ctx.store.misses,
    };
    std::fs::create_dir_all(&options.figures)?;
    markdown::write(&report, plan, &options.doc, &options.figures)?;
    log(&format!(
        "[{}] wrote {} ({} measurements computed, {} from the cache)",
        clock(start),
        options.doc.display(),
        report.computed,
        report.cached
    ));
    Ok(report)
}

/// The model the step-count curve is measured on: the RGB→thermal fine-tuned demo
/// model when it is there (the product's main model), else the first thermal one.
fn main_model(models: &[PathBuf]) -> Option<PathBuf> {
    let stem = |p: &PathBuf| p.file_stem().map(|s| s.to_string_lossy().into_owned());
    models
        .iter()
        .find(|p| stem(p).as_deref() == Some("det_thermal_ft"))
        .or_else(|| {
            models.iter().find(|p| {
                Model::load(p).is_ok_and(|m| {
                    m.metadata("modality")
                        .is_some_and(|x| x.eq_ignore_ascii_case("thermal"))
                })
            })
        })
        .or(models.first())
        .cloned()
}

fn clock(start: Instant) -> String {
    let s = start.elapsed().as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// Generates a synthetic set unless a complete one with the same parameters is there.
fn ensure_synth(
    dir: &Path,
    set: SynthSet,
    (width, height): (u32, u32),
    log: &mut dyn FnMut(&str),
) -> Result<(), ReportError> {
    let stamp = dir.join(".complete");
    let expected = format!(
        "scenes={} seed={} size={width}x{height} thermalzsq={}",
        set.scenes,
        set.seed,
        env!("CARGO_PKG_VERSION")
    );
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == expected) {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let t = Instant::now();
    write_dataset(&DatasetSpec {
        out: dir.to_path_buf(),
        scenes: set.scenes,
        seed: set.seed,
        width,
        height,
        recording: 0,
        recording_format: RecordingFormat::default(),
        radiometry: Default::default(),
        agc: Default::default(),
    })?;
    std::fs::write(&stamp, expected)?;
    log(&format!(
        "synthesised {} scenes (seed {}) into {} in {:.0} s",
        set.scenes,
        set.seed,
        dir.display(),
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Pre-processing settings that make the same input tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PrepKey {
    domain: Domain,
    width: usize,
    height: usize,
    channels: usize,
    colour: bool,
}

struct Context {
    store: Store,
    gt: CocoGt,
    eval_dir: PathBuf,
    calib_dir: PathBuf,
    prepared: HashMap<PrepKey, Arc<PreparedImages>>,
    plan: Plan,
    provider: ProviderOptions,
    start: Instant,
    /// The part of every key that names the data and the report version.
    data_key: String,
}

/// The float model being reported on.
struct Subject {
    name: String,
    model: Model,
    bytes: Vec<u8>,
    sha: String,
    domain: Domain,
    evals: Vec<Domain>,
}

impl Context {
    fn log(&self, log: &mut dyn FnMut(&str), msg: &str) {
        log(&format!("[{}] {msg}", clock(self.start)));
    }

    fn key(&self, s: &Subject, what: &str) -> String {
        format!("{} model={} sha256={} {what}", self.data_key, s.name, s.sha)
    }

    /// The held-out images pre-processed for `detector` on `domain`.
    fn prepared(
        &mut self,
        detector: &Detector,
        domain: Domain,
    ) -> Result<Arc<PreparedImages>, ReportError> {
        let mut pre = detector.preprocess();
        let key = PrepKey {
            domain,
            width: pre.input_width,
            height: pre.input_height,
            channels: pre.channels,
            // Grey frames are pre-processed alike for colour and grey models.
            colour: pre.colour && domain == Domain::Rgb,
        };
        if let Some(p) = self.prepared.get(&key) {
            return Ok(p.clone());
        }
        let p = Arc::new(PreparedImages::new(
            &self.gt,
            &self.eval_dir.join(domain.dir()),
            &mut pre,
        )?);
        self.prepared.insert(key, p.clone());
        Ok(p)
    }

    /// mAP50-95 and mAP50 of a model on each of `domains`' held-out images.
    fn evaluate(
        &mut self,
        bytes: &[u8],
        domains: &[Domain],
    ) -> Result<BTreeMap<String, (f64, f64)>, ReportError> {
        let mut detector = Detector::from_bytes(
            bytes,
            thermalzsq::detect::DetectorConfig {
                provider: self.provider.clone(),
                ..eval_config()
            },
        )?;
        let mut out = BTreeMap::new();
        for &d in domains {
            let prepared = self.prepared(&detector, d)?;
            let dets = detect_prepared(&mut detector, &self.gt, &prepared)?;
            let r = evaluate(&self.gt, &dets)?;
            out.insert(
                d.name().to_string(),
                (r.map.unwrap_or(0.0), r.map50.unwrap_or(0.0)),
            );
        }
        Ok(out)
    }

    /// Measures one model (see the module doc).
    fn model(
        &mut self,
        path: &Path,
        main: bool,
        log: &mut dyn FnMut(&str),
    ) -> Result<ModelResults, ReportError> {
        let mut model = Model::load(path)?;
        model.inline_external_data()?;
        let bytes = model.to_bytes();
        let name = path
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        let domain = if model
            .metadata("modality")
            .is_some_and(|m| m.eq_ignore_ascii_case("rgb"))
        {
            Domain::Rgb
        } else {
            Domain::Thermal
        };
        let evals = match domain {
            Domain::Rgb => vec![Domain::Rgb, Domain::Thermal],
            Domain::Thermal => vec![Domain::Thermal],
        };
        let s = Subject {
            sha: sha256_hex(&bytes),
            name: name.clone(),
            model,
            bytes,
            domain,
            evals,
        };
        let prior_default = domain == Domain::Thermal;
        let (label, short) = labels(&name);
        self.log(log, &format!("{name} ({label}, {} model)", domain.name()));

        let key = self.key(&s, "fp32");
        let fp32 = self.measure(&key, &s, |_| Ok((s.bytes.clone(), 0.0, 0.0)))?;
        self.log_record(log, &name, "fp32", &fp32);

        let mut ptq = Vec::new();
        for observer in [
            Observer::MinMax,
            Observer::Percentile(Observer::DEFAULT_PERCENTILE),
        ] {
            let r = self.ptq(&s, observer)?;
            self.log_record(log, &name, &format!("real-image PTQ {observer}"), &r);
            ptq.push((observer, r));
        }

        let mut zsq = Vec::new();
        let mut distilled = None;
        for ablation in Ablation::ALL {
            let variant = ablation.variant(prior_default, self.plan.iterations);
            let mut per_seed = Vec::new();
            for &seed in &self.plan.seeds.clone() {
                let (r, images) = self.zsq(&s, variant, seed, ablation == Ablation::Default)?;
                self.log_record(
                    log,
                    &name,
                    &format!("zero-shot {ablation:?} seed {seed}"),
                    &r,
                );
                if ablation == Ablation::Default && distilled.is_none() {
                    distilled = images;
                }
                per_seed.push(r);
            }
            zsq.push((ablation, per_seed));
        }

        let mut sweep = Vec::new();
        if main {
            let mut steps: Vec<usize> = self.plan.sweep.clone();
            steps.push(self.plan.iterations);
            steps.sort_unstable();
            steps.dedup();
            for n in steps {
                let records = if n == self.plan.iterations {
                    zsq[0].1.clone()
                } else {
                    let variant = Variant {
                        iterations: n,
                        ..Ablation::Default.variant(prior_default, n)
                    };
                    let mut v = Vec::new();
                    for &seed in &self.plan.seeds.clone() {
                        let r = self.zsq(&s, variant, seed, false)?.0;
                        self.log_record(
                            log,
                            &name,
                            &format!("zero-shot {n} steps seed {seed}"),
                            &r,
                        );
                        v.push(r);
                    }
                    v
                };
                sweep.push((n, records));
            }
        }

        let mut w4a8 = Vec::new();
        let w4_kinds: &[W4Kind] = if main || self.plan.full {
            &W4Kind::ALL
        } else {
            &[]
        };
        for &kind in w4_kinds {
            let seeds: Vec<Option<u64>> = if kind.distilled() {
                self.plan.seeds.iter().map(|&s| Some(s)).collect()
            } else {
                vec![None]
            };
            let mut v = Vec::new();
            for seed in seeds {
                let r = self.w4a8(&s, kind, seed, prior_default)?;
                self.log_record(log, &name, &format!("W4A8 {kind:?} seed {seed:?}"), &r);
                v.push(r);
            }
            w4a8.push((kind, v));
        }

        // The int8 and W4A8 models the latency and agreement rows use: first seed.
        let seed = self.plan.seeds.first().copied().unwrap_or(0);
        let images = self.base_images(&s, prior_default, seed)?;
        let int8 = self.quantize_tensor(&s, &images)?;
        let w4 = if w4_kinds.is_empty() {
            None
        } else {
            Some(
                quantize_w4a8(
                    &s.model,
                    images.view(),
                    &W4a8Options {
                        rounding: Rounding::Nearest,
                        provider: self.provider.clone(),
                        ..self.plan.w4a8.clone()
                    },
                    &mut |_, _| {},
                )?
                .bytes,
            )
        };
        let int8_agreement = Some(self.agreement(&s, &int8)?);
        let latency = self.latency(&s, &int8, w4.as_deref())?;
        self.log(
            log,
            &format!(
                "{name}: latency fp32 {:.1} ms, int8 {:.1} ms, W4A8 {:.1} ms",
                latency.0, latency.1, latency.2
            ),
        );
        Ok(ModelResults {
            name,
            label,
            short,
            domain,
            evals: s.evals.clone(),
            prior_default,
            fp32,
            ptq,
            zsq,
            sweep,
            w4a8,
            int8_agreement,
            latency,
            distilled: distilled.or(Some(images)),
        })
    }

    fn log_record(&self, log: &mut dyn FnMut(&str), name: &str, what: &str, r: &Record) {
        let evals: Vec<String> = r
            .evals
            .iter()
            .map(|(d, (m, m50))| format!("{d} {m:.4}/{m50:.4}"))
            .collect();
        self.log(
            log,
            &format!(
                "{name}: {what}: mAP50-95/mAP50 {} ({:.1} s)",
                evals.join(", "),
                r.quantize_seconds
            ),
        );
    }

    fn settings(&self, source: CalibrationSource, observer: Observer) -> QuantizeSettings {
        QuantizeSettings {
            observer,
            source,
            provider: self.provider.clone(),
            check_images: 0,
            ..QuantizeSettings::default()
        }
    }

    /// int8 calibrated on the first real images of the model's domain.
    fn ptq(&mut self, s: &Subject, observer: Observer) -> Result<Record, ReportError> {
        let key = self.key(s, &format!("ptq observer={observer}"));
        let settings = self.settings(
            CalibrationSource::ImageDir {
                dir: self.calib_dir.join(s.domain.dir()),
                count: self.plan.calib_images,
            },
            observer,
        );
        self.measure(&key, s, |_| {
            let t = Instant::now();
            let q = quantize(&s.model, &settings, &mut |_| {})?;
            let images = q
                .report
                .timings
                .iter()
                .find(|t| t.stage == "images")
                .map_or(0.0, |t| t.seconds);
            Ok((q.bytes, images, t.elapsed().as_secs_f64()))
        })
    }

    /// Quantizes, evaluates and records (or reads the record).
    fn measure(
        &mut self,
        key: &str,
        s: &Subject,
        make: impl FnOnce(&mut Self) -> Result<(Vec<u8>, f64, f64), ReportError>,
    ) -> Result<Record, ReportError> {
        if let Some(r) = self.store.cached(key) {
            return Ok(r);
        }
        let (bytes, seconds, quantize_seconds) = make(self)?;
        let mut r = Record::new(key);
        r.evals = self.evaluate(&bytes, &s.evals)?;
        r.seconds = seconds;
        r.quantize_seconds = quantize_seconds;
        self.store.put(&r)?;
        Ok(r)
    }

    fn distill_options(&self, variant: Variant, seed: u64) -> DistillOptions {
        DistillOptions {
            batch: self.plan.batch,
            iterations: variant.iterations,
            loss: match variant.loss {
                DistillLoss::Mean => LossTerms::Mean,
                DistillLoss::Std => LossTerms::Std,
                DistillLoss::MeanStd => LossTerms::MeanStd,
            },
            statistics: variant.statistics,
            thermal: Some(variant.prior),
            seed,
            ..DistillOptions::default()
        }
    }

    fn images_key(&self, s: &Subject, variant: Variant, seed: u64) -> String {
        self.key(
            s,
            &format!(
                "distilled loss={} statistics={} prior={} iterations={} batch={} seed={seed}",
                variant.loss,
                variant.statistics,
                variant.prior,
                variant.iterations,
                self.plan.batch
            ),
        )
    }

    /// Zero-shot int8: distill, quantize (minmax, the default observer), evaluate.
    /// `keep`: store the distilled images (the default configuration's, reused by W4A8
    /// and the figure) and return them.
    fn zsq(
        &mut self,
        s: &Subject,
        variant: Variant,
        seed: u64,
        keep: bool,
    ) -> Result<(Record, Option<Array4<f32>>), ReportError> {
        let images_key = self.images_key(s, variant, seed);
        let key = format!("{images_key} quantize observer=minmax");
        let mut kept = None;
        let r = self.measure(&key, s, |ctx| {
            let t = Instant::now();
            let d = distill(
                &s.model,
                &ctx.distill_options(variant, seed),
                &ctx.provider,
                &mut |_| {},
            )?;
            let distill_seconds = t.elapsed().as_secs_f64();
            if keep {
                ctx.store.put_images(&images_key, &d.images)?;
            }
            let bytes = ctx.quantize_tensor(s, &d.images)?;
            kept = Some(d.images);
            Ok((bytes, distill_seconds, t.elapsed().as_secs_f64()))
        })?;
        if keep && kept.is_none() {
            kept = self.store.images(&images_key);
        }
        Ok((r, kept))
    }

    /// The default configuration's distilled images for `seed`: stored, or distilled
    /// again (and stored).
    fn base_images(
        &mut self,
        s: &Subject,
        prior: bool,
        seed: u64,
    ) -> Result<Array4<f32>, ReportError> {
        let variant = Ablation::Default.variant(prior, self.plan.iterations);
        let key = self.images_key(s, variant, seed);
        if let Some(images) = self.store.images(&key) {
            return Ok(images);
        }
        let d = distill(
            &s.model,
            &self.distill_options(variant, seed),
            &self.provider,
            &mut |_| {},
        )?;
        self.store.put_images(&key, &d.images)?;
        Ok(d.images)
    }

    /// u8s8 int8 with minmax ranges from `images`.
    fn quantize_tensor(&self, s: &Subject, images: &Array4<f32>) -> Result<Vec<u8>, ReportError> {
        let settings = self.settings(
            CalibrationSource::Tensor(Arc::new(images.clone())),
            Observer::MinMax,
        );
        Ok(quantize(&s.model, &settings, &mut |_| {})?.bytes)
    }

    /// A W4A8 row: from the default configuration's distilled images of `seed`, or
    /// from the first real images.
    fn w4a8(
        &mut self,
        s: &Subject,
        kind: W4Kind,
        seed: Option<u64>,
        prior: bool,
    ) -> Result<Record, ReportError> {
        let w = &self.plan.w4a8;
        let source = match seed {
            Some(seed) => format!(
                "distilled seed={seed} iterations={} batch={}",
                self.plan.iterations, self.plan.batch
            ),
            None => format!("real images={}", self.plan.w4a8_real_images),
        };
        let key = self.key(
            s,
            &format!(
                "w4a8 rounding={} {source} steps={} lr={} lambda={} warmup={} beta={:?} ends8={}",
                kind.rounding(),
                w.iterations,
                w.learning_rate,
                w.lambda,
                w.warmup,
                w.beta,
                w.keep_ends_8bit
            ),
        );
        if let Some(r) = self.store.cached(&key) {
            return Ok(r);
        }
        let t = Instant::now();
        let images = match seed {
            Some(seed) => self.base_images(s, prior, seed)?,
            None => {
                let (_, input, _) = image_input(&s.model)?;
                load_calibration_images(
                    &self.calib_dir.join(s.domain.dir()),
                    self.plan.w4a8_real_images,
                    ImageInput {
                        colour: s.domain == Domain::Rgb,
                        ..input
                    },
                    &mut |_, _| {},
                )?
                .images
            }
        };
        let options = W4a8Options {
            rounding: kind.rounding(),
            provider: self.provider.clone(),
            ..self.plan.w4a8.clone()
        };
        let q = quantize_w4a8(&s.model, images.view(), &options, &mut |_, _| {})?;
        let mut r = Record::new(&key);
        r.seconds = q.reconstruction_seconds;
        r.quantize_seconds = t.elapsed().as_secs_f64();
        r.evals = self.evaluate(&q.bytes, &s.evals)?;
        r.agreement = Some(self.agreement(s, &q.bytes)?);
        self.store.put(&r)?;
        Ok(r)
    }

    /// RMSE of the class scores and of the box coordinates between `bytes` and the
    /// float model, over the first held-out images of the model's domain: a finer
    /// measure of how close a quantized model is than mAP.
    fn agreement(&mut self, s: &Subject, bytes: &[u8]) -> Result<(f64, f64), ReportError> {
        let detector = Detector::from_bytes(&s.bytes, eval_config())?;
        let layout = detector.layout();
        let prepared = self.prepared(&detector, s.domain)?;
        let [_, c, h, w] = detector.input_shape();
        let config = [("session.intra_op.allow_spinning", "0")];
        let mut float = load_session_with_config(&s.bytes, &self.provider, &config)?;
        let mut quant = load_session_with_config(bytes, &self.provider, &config)?;
        let (mut score, mut boxes) = ((0.0f64, 0usize), (0.0f64, 0usize));
        for (input, _) in prepared.inputs.iter().take(self.plan.agreement_images) {
            let mut outputs = Vec::new();
            for session in [&mut float, &mut quant] {
                let name = session.info.inputs[0].name.clone();
                let out = session
                    .session
                    .run(ort::inputs![name => TensorRef::from_array_view(([1, c, h, w], input.as_slice()))?])?;
                outputs.push(out[0].try_extract_tensor::<f32>()?.1.to_vec());
            }
            for (i, (a, b)) in outputs[0].iter().zip(&outputs[1]).enumerate() {
                let is_box = match layout {
                    OutputLayout::Yolov8 { anchors, .. } => i / anchors < 4,
                    OutputLayout::Yolov5 { classes, .. } => i % (5 + classes) < 4,
                    OutputLayout::EndToEnd { .. } => i % 6 < 4,
                };
                let acc = if is_box { &mut boxes } else { &mut score };
                acc.0 += f64::from(a - b).powi(2);
                acc.1 += 1;
            }
        }
        let rmse = |(sum, n): (f64, usize)| (sum / n.max(1) as f64).sqrt();
        Ok((rmse(score), rmse(boxes)))
    }

    /// Median milliseconds per frame of fp32, int8 and W4A8, timed in interleaved
    /// blocks in one process (idle ONNX Runtime threads do not spin, so one session
    /// waiting does not slow the one being timed).
    fn latency(
        &mut self,
        s: &Subject,
        int8: &[u8],
        w4: Option<&[u8]>,
    ) -> Result<(f64, f64, f64), ReportError> {
        let config = [("session.intra_op.allow_spinning", "0")];
        let mut sessions = Vec::new();
        for bytes in [Some(&s.bytes[..]), Some(int8), w4].into_iter().flatten() {
            sessions.push(load_session_with_config(bytes, &self.provider, &config)?);
        }
        let detector = Detector::from_bytes(&s.bytes, eval_config())?;
        let prepared = self.prepared(&detector, s.domain)?;
        let [_, c, h, w] = detector.input_shape();
        let input = &prepared.inputs[0].0;
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); sessions.len()];
        for round in 0..6 {
            for (k, session) in sessions.iter_mut().enumerate() {
                let name = session.info.inputs[0].name.clone();
                for _ in 0..self.plan.latency_runs.max(1) {
                    let t = Instant::now();
                    session
                        .session
                        .run(ort::inputs![name.as_str() => TensorRef::from_array_view(([1, c, h, w], input.as_slice()))?])?;
                    // The first round warms up (allocations, lazy initialisation).
                    if round > 0 {
                        times[k].push(t.elapsed().as_secs_f64() * 1e3);
                    }
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let w4 = times.get_mut(2).map_or(f64::NAN, median);
        Ok((median(&mut times[0]), median(&mut times[1]), w4))
    }
}

/// Mean and sample standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}
