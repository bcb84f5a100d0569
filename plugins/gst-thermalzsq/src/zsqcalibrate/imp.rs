//! `zsqcalibrate`: makes an int8 model from an fp32 detector at pipeline start-up, with
//! no data — calibration images distilled from the model's own BatchNormalization
//! statistics, or generated scenes for a model whose BN was folded away
//! (`calibration`) — and tells `thermaldetect` downstream to switch to it.
//!
//! Passthrough for any caps. On READY→PAUSED it looks the model up in the cache; on a
//! miss a worker thread distills (or renders scenes), calibrates and quantizes (all in
//! `thermalzsq::zsq`)
//! while frames flow, posting progress. Downstream it announces the fp32 model at once
//! and the int8 model as soon as it exists, with a sticky `thermalzsq/model` event sent
//! from the streaming thread between two buffers.
//!
//! Elements of one process that start calibrating the same model with the same
//! settings (into the same cache) at once calibrate once: the first leads, the others
//! wait for its result (`thermalzsq::zsq::inflight`), cancellable, and report it as
//! `shared`. Other processes wait on the cache's lock instead.
//!
//! A model exported with a symbolic input size needs `input-size`: it is fixed into
//! the model before anything runs, and both announced models carry it — the fp32 one
//! travels as bytes with the size written in, the int8 one is made fixed — so
//! `thermaldetect` downstream needs no size of its own.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use thermalzsq::onnx::Model;
use thermalzsq::runtime::ProviderOptions;
use thermalzsq::zsq::ZsqError;
use thermalzsq::zsq::cache::{Cache, CacheEntry, CacheOutcome, sha256_hex};
use thermalzsq::zsq::inflight::{InFlight, Joined};
use thermalzsq::zsq::pipeline::{
    CalibrationSource, DistillLoss, DistillSettings, Progress, QuantizeSettings, Stage, cache_key,
    quantize, quantize_cached, quantize_replacing_cached,
};
use thermalzsq::zsq::scenes::SynthScenes;

use super::{Calibration, Loss, OnFailure, Precision, State};
use crate::enums::ExecutionProvider;
use crate::modelevent::ModelAnnouncement;
use crate::props::{filter_pad_templates, input_size, path_from, path_value};
use crate::sync::lock;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "zsqcalibrate",
        gst::DebugColorFlags::empty(),
        Some("Zero-shot int8 calibration"),
    )
});

/// Test hook: when set (to anything) in the environment of the process, the calibration
/// worker panics as it starts. A worker panic is a bug we cannot cause on purpose
/// otherwise, and what the element does then (state `failed`, the warning or error of
/// `on-failure`, blocked frames released) must be tested; the variable is read only on
/// the worker, so it cannot disturb a pipeline that has no reason to calibrate.
const TEST_PANIC_IN_CALIBRATION: &str = "THERMALZSQ_TEST_PANIC_IN_CALIBRATION";

/// The calibrations under way in the process, by cache key and cache directory: a
/// second `zsqcalibrate` asking for one of them waits for its result instead of
/// calibrating again (several cameras on one model start at once). The value is the
/// leader's announcement and whether it was a cache hit.
static CALIBRATIONS: LazyLock<InFlight<(ModelAnnouncement, bool)>> = LazyLock::new(InFlight::new);

/// Progress messages are posted at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    /// `WxH` for a model with a symbolic input size; `None`: the model's own.
    input_size: Option<String>,
    cache_dir: Option<PathBuf>,
    calibration: Calibration,
    synth_count: u32,
    iterations: u32,
    min_improvement: f64,
    batch_size: u32,
    loss: Loss,
    observer: String,
    precision: Precision,
    seed: u64,
    execution_provider: ExecutionProvider,
    force: bool,
    block: bool,
    on_failure: OnFailure,
}

impl Default for Settings {
    fn default() -> Self {
        let q = QuantizeSettings::default();
        Settings {
            model: None,
            input_size: None,
            cache_dir: None,
            calibration: Calibration::Auto,
            synth_count: SynthScenes::DEFAULT_COUNT as u32,
            iterations: q.distill.iterations as u32,
            min_improvement: f64::from(q.distill.min_improvement),
            batch_size: q.distill.batch as u32,
            loss: Loss::MeanStd,
            observer: q.observer.to_string(),
            precision: Precision::U8s8,
            seed: 0,
            execution_provider: ExecutionProvider::Auto,
            force: false,
            block: false,
            on_failure: OnFailure::Warn,
        }
    }
}

impl Settings {
    fn quantize_settings(&self, cancel: Arc<AtomicBool>) -> Result<QuantizeSettings, String> {
        let defaults = QuantizeSettings::default();
        // `seed` seeds whichever source runs.
        let scenes = SynthScenes {
            count: self.synth_count as usize,
            seed: self.seed,
            ..SynthScenes::default()
        };
        Ok(QuantizeSettings {
            precision: match self.precision {
                Precision::U8s8 => thermalzsq::zsq::qparams::Precision::U8S8,
                Precision::S8s8 => thermalzsq::zsq::qparams::Precision::S8S8,
            },
            observer: self.observer.parse().map_err(|e: ZsqError| e.to_string())?,
            source: match self.calibration {
                Calibration::Auto => CalibrationSource::Auto(scenes),
                Calibration::Distill => CalibrationSource::ZeroShot,
                Calibration::Synth => CalibrationSource::Synth(scenes),
                Calibration::Mix => CalibrationSource::Mix(scenes),
            },
            distill: DistillSettings {
                loss: match self.loss {
                    Loss::Mean => DistillLoss::Mean,
                    Loss::Std => DistillLoss::Std,
                    Loss::MeanStd => DistillLoss::MeanStd,
                },
                iterations: self.iterations as usize,
                min_improvement: self.min_improvement as f32,
                batch: self.batch_size as usize,
                seed: self.seed,
                ..defaults.distill
            },
            provider: ProviderOptions {
                provider: self.execution_provider.into(),
                ..Default::default()
            },
            cancel: Some(cancel),
            input_size: input_size(self.input_size.as_deref())?,
            // 7-bit weights only where this CPU will run the model (a GPU's int8 does
            // not saturate).
            reduce_range: defaults.reduce_range
                && matches!(
                    self.execution_provider,
                    ExecutionProvider::Auto | ExecutionProvider::Cpu
                ),
            ..defaults
        })
    }
}

/// What the element knows about the calibration of the current session.
struct Status {
    state: State,
    /// Where the int8 model is (a path, or `memory://…` when it could not be cached).
    output: Option<String>,
    /// The announcement to send downstream before the next buffer.
    pending: Option<ModelAnnouncement>,
    /// Frames must not wait for calibration: the sink pad is flushing (a flushing
    /// seek) or the element is stopping. Set before the streaming thread must leave
    /// `transform_ip_passthrough`, with `changed` notified, so a held frame is released
    /// at once.
    flushing: bool,
}

pub struct ZsqCalibrate {
    settings: Mutex<Settings>,
    status: Mutex<Status>,
    /// Notified whenever the state leaves `calibrating` and when `flushing` is set: a
    /// frame held by `block` waits on it.
    changed: Condvar,
    cancel: Mutex<Arc<AtomicBool>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Default for ZsqCalibrate {
    fn default() -> Self {
        ZsqCalibrate {
            settings: Mutex::new(Settings::default()),
            status: Mutex::new(Status {
                state: State::Idle,
                output: None,
                pending: None,
                flushing: false,
            }),
            changed: Condvar::new(),
            cancel: Mutex::new(Arc::new(AtomicBool::new(false))),
            worker: Mutex::new(None),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for ZsqCalibrate {
    const NAME: &'static str = "GstZsqCalibrate";
    type Type = super::ZsqCalibrate;
    type ParentType = gst_base::BaseTransform;
}

/// The announcement of a cached (or just stored) int8 model.
fn cached_announcement(
    entry: &CacheEntry,
    source: &ModelAnnouncement,
    precision: &str,
) -> ModelAnnouncement {
    ModelAnnouncement {
        location: entry.model.clone(),
        data: None,
        source: source.location.clone(),
        sha256: entry.output_sha256().to_string(),
        precision: precision.to_string(),
        report: Some(entry.report.clone()),
    }
}

/// The announcement of an int8 model that could not be cached: its bytes travel in the
/// event, named by their sha256.
fn memory_announcement(
    bytes: Vec<u8>,
    source: &ModelAnnouncement,
    precision: &str,
) -> ModelAnnouncement {
    let sha256 = sha256_hex(&bytes);
    ModelAnnouncement {
        location: PathBuf::from(format!("memory://{sha256}.onnx")),
        data: Some(glib::Bytes::from_owned(bytes)),
        source: source.location.clone(),
        sha256,
        precision: precision.to_string(),
        report: None,
    }
}

impl ZsqCalibrate {
    /// The fp32 model to announce at once: the file, or with `input-size` the model
    /// with its size fixed, as bytes. A symbolic size without `input-size` is an error
    /// here, before any frame: neither model could run.
    fn fp32_announcement(
        &self,
        path: &Path,
        model: &Model,
        settings: &Settings,
    ) -> Result<ModelAnnouncement, gst::ErrorMessage> {
        let unusable = |e: String| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ("Cannot use model {}: {}", path.display(), e)
            )
        };
        let size = input_size(settings.input_size.as_deref()).map_err(unusable)?;
        let (bytes, data) = match size {
            None if model.has_symbolic_input_size() => {
                return Err(unusable(format!(
                    "its input height and width are symbolic; set input-size=WxH, a multiple of {}",
                    model
                        .input_stride()
                        .unwrap_or(thermalzsq::onnx::DEFAULT_STRIDE)
                )));
            }
            None => (
                std::fs::read(path).map_err(|e| {
                    gst::error_msg!(
                        gst::ResourceError::OpenRead,
                        ("Cannot read model {}: {}", path.display(), e)
                    )
                })?,
                None,
            ),
            Some(size) => {
                let mut sized = model.clone();
                sized
                    .inline_external_data()
                    .and_then(|()| sized.fix_input_size(size))
                    .map_err(|e| unusable(e.to_string()))?;
                let bytes = sized.to_bytes();
                (bytes.clone(), Some(glib::Bytes::from_owned(bytes)))
            }
        };
        Ok(ModelAnnouncement {
            location: path.to_path_buf(),
            data,
            source: path.to_path_buf(),
            sha256: sha256_hex(&bytes),
            precision: "fp32".into(),
            report: None,
        })
    }

    fn post(&self, s: gst::Structure) {
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    fn post_done(&self, location: &str, calibration: &str, how: Made, started: Instant) {
        self.post(
            gst::Structure::builder("zsqcalibrate-done")
                .field("location", location)
                .field("calibration", calibration)
                .field("cache-hit", how.cache_hit)
                .field("shared", how.shared)
                .field("seconds", started.elapsed().as_secs_f64())
                .build(),
        );
    }

    /// The int8 model is ready: announce it before the next buffer. `calibration` is
    /// the source that made it (`distill`, `synth` or `mix`).
    fn ready(
        &self,
        announcement: ModelAnnouncement,
        calibration: &str,
        how: Made,
        started: Instant,
    ) {
        let location = announcement.location.display().to_string();
        gst::info!(
            CAT,
            imp = self,
            "int8 model ready: {location} (calibration: {calibration}, cache hit: {}, shared: {})",
            how.cache_hit,
            how.shared
        );
        // Posted first: an application that sees frames run int8 has seen this too.
        self.post_done(&location, calibration, how, started);
        {
            let mut status = lock(&self.status);
            status.state = State::Ready;
            status.output = Some(location.clone());
            status.pending = Some(announcement);
        }
        self.changed.notify_all();
        self.obj().notify("state");
        self.obj().notify("output-location");
    }

    /// Calibration failed: the warning or error of `on-failure`, then `state=failed`,
    /// then frames held by `block` go on. In that order, so the bus holds both messages
    /// before those frames (or the EOS behind them) reach anyone downstream.
    fn failed(&self, error: &dyn std::fmt::Display, on_failure: OnFailure) {
        match on_failure {
            OnFailure::Warn => gst::element_imp_warning!(
                self,
                gst::LibraryError::Failed,
                (
                    "Zero-shot calibration failed, the fp32 model keeps running: {}",
                    error
                )
            ),
            OnFailure::Error => {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Failed,
                    ("Zero-shot calibration failed: {}", error)
                )
            }
        }
        lock(&self.status).state = State::Failed;
        self.obj().notify("state");
        self.changed.notify_all();
    }

    /// Posts `zsqcalibrate-progress`, at most every [`PROGRESS_INTERVAL`] (and at the
    /// end of each stage).
    fn progress(&self, p: &Progress, last: &mut Option<Instant>) {
        let end_of_stage = p.done == p.total;
        if !end_of_stage && last.is_some_and(|t| t.elapsed() < PROGRESS_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let fraction = if p.total > 0 {
            p.done as f64 / p.total as f64
        } else {
            1.0
        };
        // Distillation is most of the work; calibration and the check follow.
        let (stage, percent) = match p.stage {
            Stage::Distill | Stage::Images => ("distill", 85.0 * fraction),
            Stage::Scenes => ("scenes", 85.0 * fraction),
            Stage::Calibrate => ("calibrate", 85.0 + 12.0 * fraction),
            Stage::Check => ("quantize", 97.0 + 3.0 * fraction),
        };
        self.post_progress(
            stage,
            [p.done as u32, p.total as u32],
            p.loss.map_or(f64::NAN, f64::from),
            percent,
        );
    }

    /// A `zsqcalibrate-progress` message: the stage, its step of how many, the loss
    /// (NaN where there is none) and the percentage of the whole calibration.
    fn post_progress(
        &self,
        stage: &str,
        [iteration, iterations]: [u32; 2],
        loss: f64,
        percent: f64,
    ) {
        self.post(
            gst::Structure::builder("zsqcalibrate-progress")
                .field("stage", stage)
                .field("iteration", iteration)
                .field("iterations", iterations)
                .field("loss", loss)
                .field("percent", percent)
                .build(),
        );
    }

    /// The worker: waits for another process calibrating the same model (the cache
    /// lock), else distills + quantizes, stores the result, and announces it. A panic
    /// (a bug) is caught and is a failure like any other: `failed` with the warning or
    /// error of `on-failure`, and frames held by `block` released.
    fn calibrate(&self, job: Job) {
        let on_failure = job.on_failure;
        let started = job.started;
        let calibration = job.settings.source.resolve(&job.model).kind();
        let work = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(job)));
        match work {
            Ok(Ok((announcement, how))) => self.ready(announcement, calibration, how, started),
            Ok(Err(ZsqError::Cancelled)) => gst::debug!(CAT, imp = self, "calibration cancelled"),
            Ok(Err(e)) => self.failed(&e, on_failure),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("no message");
                self.failed(&format!("the worker panicked: {what}"), on_failure)
            }
        }
    }

    /// The calibration itself: the model to announce, and how it was made. Another
    /// `zsqcalibrate` of the process calibrating the same model into the same cache
    /// leads: this one waits for its result (and gives up when stopped).
    fn work(&self, job: Job) -> Result<(ModelAnnouncement, Made), ZsqError> {
        if std::env::var_os(TEST_PANIC_IN_CALIBRATION).is_some() {
            panic!("{TEST_PANIC_IN_CALIBRATION} is set: the worker panics, as a test asked");
        }
        let Job {
            model,
            settings,
            cache,
            fp32,
            precision,
            force,
            ..
        } = job;
        let mut last = None;
        let mut progress = |p: &Progress| self.progress(p, &mut last);
        let mut calibrate = || match &cache {
            // `force`: calibrate whatever the cache holds, and replace its entry.
            Some(cache) if force => {
                quantize_replacing_cached(cache, &model, &settings, &mut progress)
                    .map(|outcome| self.announcement(outcome, &fp32, &precision))
            }
            Some(cache) => quantize_cached(cache, &model, &settings, &mut progress)
                .map(|outcome| self.announcement(outcome, &fp32, &precision)),
            None => quantize(&model, &settings, &mut progress)
                .map(|q| (memory_announcement(q.bytes, &fp32, &precision), false)),
        };
        // Without a key the calibration fails again inside, and reports why.
        let Ok(key) = cache_key(&model, &settings) else {
            return calibrate().map(|(a, cache_hit)| (a, Made::here(cache_hit)));
        };
        let flight = format!(
            "{}@{}",
            key.hex,
            cache
                .as_ref()
                .map_or("memory".into(), |c| c.dir().display().to_string())
        );
        Ok(
            match CALIBRATIONS.run(
                &flight,
                settings.cancel.as_deref(),
                || self.waiting(),
                calibrate,
            )? {
                Joined::Led((announcement, cache_hit)) => (announcement, Made::here(cache_hit)),
                Joined::Followed((mut announcement, _)) => {
                    gst::info!(CAT, imp = self, "another zsqcalibrate made the model");
                    announcement.source = fp32.location.clone();
                    (announcement, Made::SHARED)
                }
            },
        )
    }

    /// What to announce for what the cache did, and whether it was a cache hit; a model
    /// that could not be stored is announced from memory, with a warning.
    fn announcement(
        &self,
        outcome: CacheOutcome,
        fp32: &ModelAnnouncement,
        precision: &str,
    ) -> (ModelAnnouncement, bool) {
        match outcome {
            CacheOutcome::Hit(entry) => (cached_announcement(&entry, fp32, precision), true),
            CacheOutcome::Made(entry) => (cached_announcement(&entry, fp32, precision), false),
            CacheOutcome::MadeNotStored { bytes, error, .. } => {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Write,
                    (
                        "Cannot cache the int8 model, keeping it in memory: {}",
                        error
                    )
                );
                (memory_announcement(bytes, fp32, precision), false)
            }
        }
    }

    /// Another element of the process calibrates the same model: this one waits for it,
    /// and says so with a `zsqcalibrate-progress` of stage `wait`.
    fn waiting(&self) {
        gst::info!(
            CAT,
            imp = self,
            "another zsqcalibrate calibrates the same model: waiting for its result"
        );
        self.post_progress("wait", [0, 0], f64::NAN, 0.0);
    }

    /// Releases a frame held by `block` (the streaming thread must leave the transform
    /// before a flush or a stop can proceed).
    fn release_held_frames(&self) {
        lock(&self.status).flushing = true;
        self.changed.notify_all();
    }

    /// Stops a running worker (raising its cancel flag) and waits for it.
    fn stop_worker(&self) {
        lock(&self.cancel).store(true, Ordering::Relaxed);
        self.release_held_frames();
        if let Some(handle) = lock(&self.worker).take() {
            let started = Instant::now();
            let _ = handle.join();
            gst::debug!(CAT, imp = self, "worker stopped in {:?}", started.elapsed());
        }
    }
}

/// How this element came by its int8 model (the `zsqcalibrate-done` fields).
#[derive(Debug, Clone, Copy)]
struct Made {
    /// This element did not calibrate: the cache had the model, or (`shared`) another
    /// element of the process made it while this one waited.
    cache_hit: bool,
    shared: bool,
}

impl Made {
    const CACHE_HIT: Made = Made {
        cache_hit: true,
        shared: false,
    };
    const SHARED: Made = Made {
        cache_hit: true,
        shared: true,
    };

    /// Calibrated by this element, or found in the cache by its worker.
    fn here(cache_hit: bool) -> Made {
        Made {
            cache_hit,
            shared: false,
        }
    }
}

/// Everything a worker needs.
struct Job {
    model: Model,
    settings: QuantizeSettings,
    cache: Option<Cache>,
    fp32: ModelAnnouncement,
    precision: String,
    /// Calibrate although the cache holds the model, and replace its entry.
    force: bool,
    on_failure: OnFailure,
    started: Instant,
}

impl ObjectImpl for ZsqCalibrate {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("fp32 ONNX detector (with its BatchNormalization layers for distill)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("input-size")
                    .nick("Input size")
                    .blurb("WIDTHxHEIGHT for a model exported with a symbolic input size (a multiple of its stride: metadata `stride`, else 32); both announced models get it, so thermaldetect needs none. Empty: the model's own size")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("calibration", d.calibration)
                    .nick("Calibration")
                    .blurb("Calibration images: distill (from BN statistics), synth (generated scenes), mix (both), auto (distill when the model has BN layers, else synth)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("synth-count")
                    .nick("Generated scenes")
                    .blurb("Generated scenes to calibrate on (calibration=synth or mix)")
                    .minimum(1)
                    .default_value(d.synth_count)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("cache-dir")
                    .nick("Cache directory")
                    .blurb("Where int8 models are kept, keyed by the model's sha256, the settings, the execution provider, the ONNX Runtime and this build (default $XDG_CACHE_HOME/thermalzsq, else ~/.cache/thermalzsq)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("iterations")
                    .nick("Iterations")
                    .blurb("Distillation steps")
                    .minimum(1)
                    .default_value(d.iterations)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("min-improvement")
                    .nick("Minimum improvement")
                    .blurb("Stop distilling once the loss improved by less than this fraction over the last 5 steps (0: run every step)")
                    .minimum(0.0)
                    .maximum(0.99)
                    .default_value(d.min_improvement)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb("Distilled calibration images")
                    .minimum(1)
                    .default_value(d.batch_size)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("loss", d.loss)
                    .nick("Loss")
                    .blurb("Which BN statistics the distilled images match")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("observer")
                    .nick("Observer")
                    .blurb("How activation ranges are chosen: minmax, percentile (or percentile:P), entropy, mse")
                    .default_value(Some(d.observer.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("precision", d.precision)
                    .nick("Precision")
                    .blurb("u8s8 for CPUs (ONNX Runtime), s8s8 for TensorRT")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("seed")
                    .nick("Seed")
                    .blurb("Seed of the distillation or of the generated scenes (the same seed gives the same model)")
                    .default_value(d.seed)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("execution-provider", d.execution_provider)
                    .nick("Execution provider")
                    .blurb("Where distillation and calibration run (auto: TensorRT, else CUDA, else CPU)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("force")
                    .nick("Force")
                    .blurb("Calibrate even when the cache has the model, and replace its entry")
                    .default_value(d.force)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("block")
                    .nick("Block")
                    .blurb("Hold frames until the int8 model is ready (false: frames flow through the fp32 model meanwhile)")
                    .default_value(d.block)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("on-failure", d.on_failure)
                    .nick("On failure")
                    .blurb("warn: the fp32 model keeps running; error: the pipeline stops")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("state", State::Idle)
                    .nick("State")
                    .blurb("Where calibration stands")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("output-location")
                    .nick("Output location")
                    .blurb("The int8 model (a cache file, or memory://SHA256.onnx when it could not be cached)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "model" => s.model = path_from(value),
            "input-size" => s.input_size = value.get().expect("type checked upstream"),
            "cache-dir" => s.cache_dir = path_from(value),
            "calibration" => s.calibration = value.get().expect("type checked upstream"),
            "synth-count" => s.synth_count = value.get().expect("type checked upstream"),
            "iterations" => s.iterations = value.get().expect("type checked upstream"),
            "min-improvement" => s.min_improvement = value.get().expect("type checked upstream"),
            "batch-size" => s.batch_size = value.get().expect("type checked upstream"),
            "loss" => s.loss = value.get().expect("type checked upstream"),
            "observer" => {
                s.observer = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| Settings::default().observer)
            }
            "precision" => s.precision = value.get().expect("type checked upstream"),
            "seed" => s.seed = value.get().expect("type checked upstream"),
            "execution-provider" => {
                s.execution_provider = value.get().expect("type checked upstream")
            }
            "force" => s.force = value.get().expect("type checked upstream"),
            "block" => s.block = value.get().expect("type checked upstream"),
            "on-failure" => s.on_failure = value.get().expect("type checked upstream"),
            other => unreachable!("no writable property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "model" => path_value(&s.model).to_value(),
            "input-size" => s.input_size.to_value(),
            "cache-dir" => path_value(&s.cache_dir).to_value(),
            "calibration" => s.calibration.to_value(),
            "synth-count" => s.synth_count.to_value(),
            "iterations" => s.iterations.to_value(),
            "min-improvement" => s.min_improvement.to_value(),
            "batch-size" => s.batch_size.to_value(),
            "loss" => s.loss.to_value(),
            "observer" => s.observer.to_value(),
            "precision" => s.precision.to_value(),
            "seed" => s.seed.to_value(),
            "execution-provider" => s.execution_provider.to_value(),
            "force" => s.force.to_value(),
            "block" => s.block.to_value(),
            "on-failure" => s.on_failure.to_value(),
            "state" => lock(&self.status).state.to_value(),
            "output-location" => lock(&self.status).output.to_value(),
            other => unreachable!("no property {other}"),
        }
    }
}

impl GstObjectImpl for ZsqCalibrate {}

impl ElementImpl for ZsqCalibrate {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Zero-shot int8 calibration",
                "Filter/Video",
                "Quantizes an ONNX detector to int8 at start-up with no data (images distilled \
                 from its BatchNormalization statistics, or generated scenes), with a cache, \
                 and hands it to thermaldetect downstream",
                "thermalzsq developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_any();
            filter_pad_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::PausedToReady {
            // Deactivating the pads (below) waits for the streaming thread, which may
            // be holding a frame for `block`: let it go first.
            self.release_held_frames();
        }
        self.parent_change_state(transition)
    }
}

impl BaseTransformImpl for ZsqCalibrate {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let started = Instant::now();
        lock(&self.status).flushing = false;
        let settings = lock(&self.settings).clone();
        let Some(path) = settings.model.clone() else {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ("No model set: give `model` the path of an fp32 ONNX detector")
            ));
        };
        let model = Model::load(&path).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("Cannot read model {}: {}", path.display(), e)
            )
        })?;
        let fp32 = self.fp32_announcement(&path, &model, &settings)?;
        let cancel = Arc::new(AtomicBool::new(false));
        *lock(&self.cancel) = cancel.clone();
        let qsettings = settings
            .quantize_settings(cancel)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        let precision = qsettings.precision.to_string();

        let opened = match &settings.cache_dir {
            Some(dir) => Cache::open(dir),
            None => Cache::open_default(),
        };
        let cache = match opened {
            Ok(cache) => Some(cache),
            Err(e) => {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::OpenWrite,
                    (
                        "No cache ({}): the int8 model will be kept in memory and made again next time",
                        e
                    )
                );
                None
            }
        };
        // The fast path: a cache hit announces int8 from the first frame on. `force`
        // skips it, and the worker replaces the entry. A key that cannot be computed
        // here fails the worker again, which reports it as `on-failure` says.
        if let Some(cache) = &cache
            && !settings.force
        {
            match cache_key(&model, &qsettings) {
                Ok(key) => {
                    if let Some(entry) = cache.lookup(&key) {
                        self.ready(
                            cached_announcement(&entry, &fp32, &precision),
                            qsettings.source.resolve(&model).kind(),
                            Made::CACHE_HIT,
                            started,
                        );
                        return Ok(());
                    }
                }
                Err(e) => gst::debug!(CAT, imp = self, "no cache lookup at start: {e}"),
            }
        }

        {
            let mut status = lock(&self.status);
            status.state = State::Calibrating;
            status.output = None;
            status.pending = Some(fp32.clone());
        }
        self.obj().notify("state");
        let job = Job {
            model,
            settings: qsettings,
            cache,
            fp32,
            precision,
            force: settings.force,
            on_failure: settings.on_failure,
            started,
        };
        let weak = self.obj().downgrade();
        let handle = std::thread::Builder::new()
            .name("zsqcalibrate".into())
            .spawn(move || {
                if let Some(obj) = weak.upgrade() {
                    obj.imp().calibrate(job);
                }
            })
            .map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Thread,
                    ("Cannot start the calibration thread: {}", e)
                )
            })?;
        *lock(&self.worker) = Some(handle);
        gst::info!(
            CAT,
            imp = self,
            "calibrating {} on a worker thread",
            path.display()
        );
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            // A flushing seek waits for the streaming thread: release a held frame.
            gst::EventView::FlushStart(_) => self.release_held_frames(),
            gst::EventView::FlushStop(_) => lock(&self.status).flushing = false,
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.stop_worker();
        let mut status = lock(&self.status);
        status.state = State::Idle;
        status.pending = None;
        Ok(())
    }

    fn transform_ip_passthrough(
        &self,
        _buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let block = lock(&self.settings).block;
        let mut status = lock(&self.status);
        gst::log!(
            CAT,
            imp = self,
            "buffer: block {block}, state {:?}",
            status.state
        );
        if block {
            // Hold the frame until the int8 model is ready (or calibration failed);
            // let it go when the pad flushes or the element stops, or neither could
            // proceed: both wait for the streaming thread to leave this function.
            while status.state == State::Calibrating {
                if status.flushing
                    || self
                        .obj()
                        .sink_pad()
                        .pad_flags()
                        .contains(gst::PadFlags::FLUSHING)
                {
                    return Err(gst::FlowError::Flushing);
                }
                status = self
                    .changed
                    .wait(status)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        let pending = status.pending.take();
        drop(status);
        if let Some(announcement) = pending {
            gst::debug!(
                CAT,
                imp = self,
                "announcing {} ({})",
                announcement.location.display(),
                announcement.precision
            );
            self.obj().src_pad().push_event(announcement.to_event());
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
