//! Model loading off the streaming thread: `zsqcalibrate` announces a model (the fp32
//! one at once, the int8 one when it is made), and loading it can take long — with
//! TensorRT it is an engine build. Every announced model loads on a thread of its own
//! and becomes the running one between two frames, so `sink_event` returns at once and
//! no frame is dropped or run twice.
//!
//! Until the first model is there, frames wait for it (`wait-for-model=true`, none
//! undetected) or pass undetected (`false`, a live source never stalls). A waiting
//! frame holds no lock and gives up when the pad flushes or the element stops. A load
//! that finishes after a newer announcement (or after `stop`) is dropped; `stop` joins
//! every loading thread (a load cannot be interrupted midway), so none outlives the
//! session.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use gst::prelude::*;
use gst::subclass::prelude::*;
use thermalzsq::detect::Detector;

use super::imp::{Active, CAT, ThermalDetect, Work};
use crate::modelevent::ModelAnnouncement;
use crate::sync::lock;

/// A detector ready to run, and the model it runs.
pub(super) struct Loaded {
    pub(super) detector: Detector,
    /// The model's path, as the JSON lines and `active-model` name it.
    pub(super) name: String,
    /// `fp32`, `u8s8`, `s8s8` (from the announcement), or `model` for the property's own.
    precision: String,
}

/// Announced models being loaded, shared by the loading threads and the frames.
#[derive(Default)]
pub(super) struct Swap {
    /// Bumped per announcement and at stop: a load finishing for an older one is dropped.
    generation: u64,
    /// The model the current generation loads, until its result is `ready`.
    loading: Option<String>,
    ready: Option<Result<Loaded, String>>,
    /// The sink pad flushes or the element stops: a frame waiting for a model gives up.
    flushing: bool,
    /// Every loading thread not yet joined.
    workers: Vec<JoinHandle<()>>,
}

/// Where a model comes from.
pub(super) enum ModelSource {
    /// The `model` property.
    Property(PathBuf),
    /// A `thermalzsq/model` event.
    Announced(ModelAnnouncement),
}

/// What a frame runs on.
pub(super) enum ForFrame {
    /// The running model, after making this newly loaded one the running one (boxed:
    /// a detector is large, and `Pass` carries nothing).
    Run(Option<Box<Loaded>>),
    /// Nothing yet: the first model is still loading and `wait-for-model=false`.
    Pass,
}

impl ThermalDetect {
    /// Loads a detector with the current settings (labels, thresholds, provider).
    pub(super) fn load(&self, source: &ModelSource) -> Result<Loaded, String> {
        let settings = lock(&self.settings).clone();
        let config = settings.detector_config()?;
        let (detector, name, precision) = match source {
            ModelSource::Property(path) => (
                Detector::load(path, config),
                path.display().to_string(),
                "model".to_string(),
            ),
            ModelSource::Announced(a) => (
                match &a.data {
                    Some(bytes) => Detector::from_bytes(bytes, config),
                    None => Detector::load(&a.location, config),
                },
                a.location.display().to_string(),
                a.precision.clone(),
            ),
        };
        let detector = detector.map_err(|e| e.to_string())?;
        if !detector.fallbacks().is_empty() {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                ("execution-provider=auto runs on {}", detector.provider()),
                ["{}", detector.fallbacks().join("; ")]
            );
        }
        gst::info!(
            CAT,
            imp = self,
            "loaded {name} ({}, {} classes) on {}, session run by {} detector(s)",
            detector.layout().name(),
            detector.layout().classes(),
            detector.provider(),
            Arc::strong_count(detector.session())
        );
        Ok(Loaded {
            detector,
            name,
            precision,
        })
    }

    /// Makes `loaded` the running model from frame `frame` on.
    pub(super) fn activate(&self, work: &mut Work, loaded: Loaded, frame: u64) {
        *lock(&self.active) = Active {
            model: Some(loaded.name.clone()),
            provider: Some(loaded.detector.provider().to_string()),
            session: Arc::downgrade(loaded.detector.session()),
        };
        let s = gst::Structure::builder("thermaldetect-model")
            .field("location", &loaded.name)
            .field("precision", &loaded.precision)
            .field("provider", loaded.detector.provider().as_str())
            .field(
                "session-users",
                Arc::strong_count(loaded.detector.session()) as u32,
            )
            .field("frame", frame)
            .build();
        work.loaded = Some(loaded);
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    /// Before a frame: a finished load to activate, or a warning that it failed and
    /// `running` stays. Without a running model: waits for the load under way (`wait`)
    /// or lets the frame pass; an error when there is no model to wait for.
    pub(super) fn model_for_frame(
        &self,
        running: Option<&str>,
        wait: bool,
    ) -> Result<ForFrame, gst::FlowError> {
        let mut swap = lock(&self.swap);
        if running.is_none() && wait {
            while swap.ready.is_none() && swap.loading.is_some() && !swap.flushing {
                gst::debug!(CAT, imp = self, "frame waits for {:?}", swap.loading);
                swap = self
                    .swap_changed
                    .wait(swap)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if swap.flushing {
                return Err(gst::FlowError::Flushing);
            }
        }
        let ready = swap.ready.take();
        let loading = swap.loading.clone();
        drop(swap);
        match (ready, running) {
            (Some(Ok(loaded)), _) => Ok(ForFrame::Run(Some(Box::new(loaded)))),
            (Some(Err(e)), Some(running)) => {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Init,
                    ("Cannot load announced model, keeping {}: {}", running, e)
                );
                Ok(ForFrame::Run(None))
            }
            (Some(Err(e)), None) => {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Init,
                    ("Cannot load announced model: {}", e)
                );
                Err(gst::FlowError::Error)
            }
            (None, Some(_)) => Ok(ForFrame::Run(None)),
            (None, None) if loading.is_some() => Ok(ForFrame::Pass),
            (None, None) => {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Settings,
                    ("No model: set `model` to an ONNX detector, or put zsqcalibrate upstream")
                );
                Err(gst::FlowError::Error)
            }
        }
    }

    /// A `thermalzsq/model` event: loads the model on a thread of its own; a later
    /// frame activates it (see `model_for_frame`).
    pub(super) fn announce(&self, announcement: ModelAnnouncement) {
        if lock(&self.state).is_none() {
            return;
        }
        let name = announcement.location.display().to_string();
        let on_disk = announcement.data.is_none();
        let running = on_disk && lock(&self.active).model.as_deref() == Some(name.as_str());
        let mut swap = lock(&self.swap);
        if running || (on_disk && swap.loading.as_deref() == Some(name.as_str())) {
            gst::debug!(CAT, imp = self, "{name} announced again: already there");
            if running {
                // Back to the running model: a load of another one is moot.
                swap.generation += 1;
                swap.loading = None;
                swap.ready = None;
                self.swap_changed.notify_all();
            }
            return;
        }
        swap.generation += 1;
        swap.loading = Some(name.clone());
        swap.ready = None;
        let generation = swap.generation;
        gst::info!(
            CAT,
            imp = self,
            "loading announced model {name} in the background"
        );
        let weak = self.obj().downgrade();
        let spawned = std::thread::Builder::new()
            .name("thermaldetect-load".into())
            .spawn(move || {
                let Some(obj) = weak.upgrade() else { return };
                let imp = obj.imp();
                let result = imp.load(&ModelSource::Announced(announcement));
                let mut swap = lock(&imp.swap);
                if swap.generation == generation {
                    swap.loading = None;
                    swap.ready = Some(result);
                    imp.swap_changed.notify_all();
                }
            });
        match spawned {
            Ok(handle) => swap.workers.push(handle),
            Err(e) => {
                swap.loading = None;
                swap.ready = Some(Err(format!("cannot start a thread to load {name}: {e}")));
            }
        }
        let finished = reap(&mut swap.workers);
        drop(swap);
        join(self, finished);
    }

    /// FlushStart / FlushStop, and stopping: a frame waiting for its model gives up
    /// while the element flushes.
    pub(super) fn set_flushing(&self, flushing: bool) {
        lock(&self.swap).flushing = flushing;
        if flushing {
            self.swap_changed.notify_all();
        }
    }

    /// At stop: forgets every load and waits for the threads still loading.
    pub(super) fn stop_loading(&self) {
        let workers = {
            let mut swap = lock(&self.swap);
            swap.generation += 1;
            swap.loading = None;
            swap.ready = None;
            swap.flushing = true;
            self.swap_changed.notify_all();
            std::mem::take(&mut swap.workers)
        };
        join(self, workers);
    }
}

/// The threads of `workers` that have finished, taken out of it.
fn reap(workers: &mut Vec<JoinHandle<()>>) -> Vec<JoinHandle<()>> {
    let (done, running) = std::mem::take(workers)
        .into_iter()
        .partition(|h| h.is_finished());
    *workers = running;
    done
}

fn join(imp: &ThermalDetect, workers: Vec<JoinHandle<()>>) {
    for handle in workers {
        if handle.join().is_err() {
            gst::warning!(CAT, imp = imp, "a model loading thread panicked");
        }
    }
}
