//! `zsqcalibrate`: makes an int8 model from an fp32 detector at pipeline start-up, with
//! no data — calibration images distilled from the model's own BatchNormalization
//! statistics — and tells `thermaldetect` downstream to switch to it.
//!
//! Passthrough for any caps. On READY→PAUSED it looks the model up in the cache; on a
//! miss a worker thread distills, calibrates and quantizes (all in `thermalzsq::zsq`)
//! while frames flow, posting progress. Downstream it announces the fp32 model at once
//! and the int8 model as soon as it exists, with a sticky `thermalzsq/model` event sent
//! from the streaming thread between two buffers.

use std::path::PathBuf;
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
use thermalzsq::zsq::pipeline::{
    CalibrationSource, DistillLoss, DistillSettings, Progress, QuantizeSettings, Stage, cache_key,
    quantize, quantize_cached,
};

use super::{Loss, OnFailure, Precision, State};
use crate::enums::ExecutionProvider;
use crate::modelevent::ModelAnnouncement;
use crate::props::{filter_pad_templates, path_from, path_value};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "zsqcalibrate",
        gst::DebugColorFlags::empty(),
        Some("Zero-shot int8 calibration"),
    )
});

/// Progress messages are posted at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    iterations: u32,
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
            cache_dir: None,
            iterations: q.distill.iterations as u32,
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
        Ok(QuantizeSettings {
            precision: match self.precision {
                Precision::U8s8 => thermalzsq::zsq::qparams::Precision::U8S8,
                Precision::S8s8 => thermalzsq::zsq::qparams::Precision::S8S8,
            },
            observer: self.observer.parse().map_err(|e: ZsqError| e.to_string())?,
            source: CalibrationSource::ZeroShot,
            distill: DistillSettings {
                loss: match self.loss {
                    Loss::Mean => DistillLoss::Mean,
                    Loss::Std => DistillLoss::Std,
                    Loss::MeanStd => DistillLoss::MeanStd,
                },
                iterations: self.iterations as usize,
                batch: self.batch_size as usize,
                seed: self.seed,
                ..defaults.distill
            },
            provider: ProviderOptions {
                provider: self.execution_provider.into(),
                ..Default::default()
            },
            cancel: Some(cancel),
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
}

pub struct ZsqCalibrate {
    settings: Mutex<Settings>,
    status: Mutex<Status>,
    /// Notified whenever the state leaves `calibrating` (for `block`).
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
    fn post(&self, s: gst::Structure) {
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    fn post_done(&self, location: &str, cache_hit: bool, started: Instant) {
        self.post(
            gst::Structure::builder("zsqcalibrate-done")
                .field("location", location)
                .field("cache-hit", cache_hit)
                .field("seconds", started.elapsed().as_secs_f64())
                .build(),
        );
    }

    /// The int8 model is ready: announce it before the next buffer.
    fn ready(&self, announcement: ModelAnnouncement, cache_hit: bool, started: Instant) {
        let location = announcement.location.display().to_string();
        gst::info!(
            CAT,
            imp = self,
            "int8 model ready: {location} (cache hit: {cache_hit})"
        );
        // Posted first: an application that sees frames run int8 has seen this too.
        self.post_done(&location, cache_hit, started);
        {
            let mut status = self.status.lock().unwrap();
            status.state = State::Ready;
            status.output = Some(location.clone());
            status.pending = Some(announcement);
        }
        self.changed.notify_all();
        self.obj().notify("state");
        self.obj().notify("output-location");
    }

    fn failed(&self, error: &ZsqError, on_failure: OnFailure) {
        self.status.lock().unwrap().state = State::Failed;
        self.changed.notify_all();
        self.obj().notify("state");
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
            Stage::Calibrate => ("calibrate", 85.0 + 12.0 * fraction),
            Stage::Check => ("quantize", 97.0 + 3.0 * fraction),
        };
        self.post(
            gst::Structure::builder("zsqcalibrate-progress")
                .field("stage", stage)
                .field("iteration", p.done as u32)
                .field("iterations", p.total as u32)
                .field("loss", p.loss.map_or(f64::NAN, f64::from))
                .field("percent", percent)
                .build(),
        );
    }

    /// The worker: waits for another process calibrating the same model (the cache
    /// lock), else distills + quantizes, stores the result, and announces it.
    fn calibrate(&self, job: Job) {
        let Job {
            model,
            settings,
            cache,
            fp32,
            precision,
            on_failure,
            started,
        } = job;
        let mut last = None;
        let mut progress = |p: &Progress| self.progress(p, &mut last);
        let result = match &cache {
            Some(cache) => quantize_cached(cache, &model, &settings, &mut progress)
                .map(|outcome| self.announcement(outcome, &fp32, &precision)),
            None => quantize(&model, &settings, &mut progress)
                .map(|q| (memory_announcement(q.bytes, &fp32, &precision), false)),
        };
        match result {
            Ok((announcement, hit)) => self.ready(announcement, hit, started),
            Err(ZsqError::Cancelled) => gst::debug!(CAT, imp = self, "calibration cancelled"),
            Err(e) => self.failed(&e, on_failure),
        }
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

    /// Stops a running worker (raising its cancel flag) and waits for it.
    fn stop_worker(&self) {
        self.cancel.lock().unwrap().store(true, Ordering::Relaxed);
        self.changed.notify_all();
        if let Some(handle) = self.worker.lock().unwrap().take() {
            let started = Instant::now();
            let _ = handle.join();
            gst::debug!(CAT, imp = self, "worker stopped in {:?}", started.elapsed());
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
                    .blurb("fp32 ONNX detector, exported with its BatchNormalization layers")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("cache-dir")
                    .nick("Cache directory")
                    .blurb("Where int8 models are kept, keyed by the model's sha256 and the settings (default $XDG_CACHE_HOME/thermalzsq, else ~/.cache/thermalzsq)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("iterations")
                    .nick("Iterations")
                    .blurb("Distillation steps")
                    .minimum(1)
                    .default_value(d.iterations)
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
                    .blurb("Seed of the distillation (the same seed gives the same model)")
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
                    .blurb("Calibrate even when the cache has the model")
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
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => s.model = path_from(value),
            "cache-dir" => s.cache_dir = path_from(value),
            "iterations" => s.iterations = value.get().expect("type checked upstream"),
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
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => path_value(&s.model).to_value(),
            "cache-dir" => path_value(&s.cache_dir).to_value(),
            "iterations" => s.iterations.to_value(),
            "batch-size" => s.batch_size.to_value(),
            "loss" => s.loss.to_value(),
            "observer" => s.observer.to_value(),
            "precision" => s.precision.to_value(),
            "seed" => s.seed.to_value(),
            "execution-provider" => s.execution_provider.to_value(),
            "force" => s.force.to_value(),
            "block" => s.block.to_value(),
            "on-failure" => s.on_failure.to_value(),
            "state" => self.status.lock().unwrap().state.to_value(),
            "output-location" => self.status.lock().unwrap().output.to_value(),
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
                "Quantizes an ONNX detector to int8 at start-up from its own BatchNormalization \
                 statistics (no data), with a cache, and hands it to thermaldetect downstream",
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
}

impl BaseTransformImpl for ZsqCalibrate {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let started = Instant::now();
        let settings = self.settings.lock().unwrap().clone();
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
        let bytes = std::fs::read(&path).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("Cannot read model {}: {}", path.display(), e)
            )
        })?;
        let fp32 = ModelAnnouncement {
            location: path.clone(),
            data: None,
            source: path.clone(),
            sha256: sha256_hex(&bytes),
            precision: "fp32".into(),
            report: None,
        };
        let cancel = Arc::new(AtomicBool::new(false));
        *self.cancel.lock().unwrap() = cancel.clone();
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
        // skips only this lookup: the worker's get-or-create still takes a sound entry.
        if let Some(cache) = &cache {
            let key = cache_key(&model, &qsettings)
                .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
            if !settings.force
                && let Some(entry) = cache.lookup(&key)
            {
                self.ready(
                    cached_announcement(&entry, &fp32, &precision),
                    true,
                    started,
                );
                return Ok(());
            }
        }

        {
            let mut status = self.status.lock().unwrap();
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
        *self.worker.lock().unwrap() = Some(handle);
        gst::info!(
            CAT,
            imp = self,
            "calibrating {} on a worker thread",
            path.display()
        );
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.stop_worker();
        let mut status = self.status.lock().unwrap();
        status.state = State::Idle;
        status.pending = None;
        Ok(())
    }

    fn transform_ip_passthrough(
        &self,
        _buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let block = self.settings.lock().unwrap().block;
        let mut status = self.status.lock().unwrap();
        gst::log!(
            CAT,
            imp = self,
            "buffer: block {block}, state {:?}",
            status.state
        );
        if block {
            // Hold the frame until the int8 model is ready; give up when the pad
            // flushes (the pipeline is stopping), or state changes could not proceed.
            while status.state == State::Calibrating {
                if self
                    .obj()
                    .sink_pad()
                    .pad_flags()
                    .contains(gst::PadFlags::FLUSHING)
                {
                    return Err(gst::FlowError::Flushing);
                }
                status = self
                    .changed
                    .wait_timeout(status, Duration::from_millis(100))
                    .unwrap()
                    .0;
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
