//! Model swapping: `zsqcalibrate` announces an int8 model while frames already flow
//! through the fp32 one. The new model loads on its own thread and becomes the running
//! one between two frames, so the stream never stalls and no frame is dropped or run
//! twice. A load that finishes after a newer announcement (or after `stop`) is dropped.

use std::path::PathBuf;

use gst::prelude::*;
use gst::subclass::prelude::*;
use thermalzsq::detect::Detector;

use super::imp::{Active, CAT, State, ThermalDetect};
use crate::modelevent::ModelAnnouncement;

/// A detector ready to run, and the model it runs.
pub(super) struct Loaded {
    pub(super) detector: Detector,
    /// The model's path, as the JSON lines and `active-model` name it.
    pub(super) name: String,
    /// `fp32`, `u8s8`, `s8s8` (from the announcement), or `model` for the property's own.
    precision: String,
}

/// A model announced by `zsqcalibrate` being loaded off the streaming thread.
#[derive(Default)]
pub(super) struct Swap {
    /// Bumped per announcement (and at stop): a load finishing for an older one is dropped.
    generation: u64,
    ready: Option<Result<Loaded, String>>,
}

impl Swap {
    /// Forgets any load under way or waiting; returns the generation a new load belongs to.
    pub(super) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.ready = None;
        self.generation
    }
}

/// Where a model comes from.
pub(super) enum ModelSource {
    /// The `model` property.
    Property(PathBuf),
    /// A `thermalzsq/model` event.
    Announced(ModelAnnouncement),
}

impl ThermalDetect {
    /// Loads a detector with the current settings (labels, thresholds, provider).
    pub(super) fn load(&self, source: &ModelSource) -> Result<Loaded, String> {
        let settings = self.settings.lock().unwrap().clone();
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
            "loaded {name} ({}, {} classes) on {}",
            detector.layout().name(),
            detector.layout().classes(),
            detector.provider()
        );
        Ok(Loaded {
            detector,
            name,
            precision,
        })
    }

    /// Makes `loaded` the running model (between two frames, or before the first).
    pub(super) fn activate(&self, state: &mut State, loaded: Loaded) {
        *self.active.lock().unwrap() = Active {
            model: Some(loaded.name.clone()),
            provider: Some(loaded.detector.provider().to_string()),
        };
        let s = gst::Structure::builder("thermaldetect-model")
            .field("location", &loaded.name)
            .field("precision", &loaded.precision)
            .field("provider", loaded.detector.provider().as_str())
            .field("frame", state.frames)
            .build();
        state.loaded = Some(loaded);
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    /// Before a frame: activates a model whose background load has finished, or warns
    /// that it failed and the running one stays.
    pub(super) fn activate_ready(&self, state: &mut State) {
        let ready = self.swap.lock().unwrap().ready.take();
        match ready {
            Some(Ok(loaded)) => self.activate(state, loaded),
            Some(Err(e)) => gst::element_imp_warning!(
                self,
                gst::LibraryError::Init,
                (
                    "Cannot load announced model, keeping {}: {}",
                    state.loaded.as_ref().map_or("none", |l| &l.name),
                    e
                )
            ),
            None => {}
        }
    }

    /// A `thermalzsq/model` event: with no model yet, load it now (frames cannot run
    /// without one); else load it on a thread and swap it in before a later frame.
    pub(super) fn announce(&self, announcement: ModelAnnouncement) {
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else { return };
        let same = state.loaded.as_ref().is_some_and(|l| {
            announcement.data.is_none() && l.name == announcement.location.display().to_string()
        });
        if same {
            gst::debug!(
                CAT,
                imp = self,
                "{} announced again: already running",
                announcement.location.display()
            );
            return;
        }
        if state.loaded.is_none() {
            match self.load(&ModelSource::Announced(announcement.clone())) {
                Ok(loaded) => self.activate(state, loaded),
                Err(e) => gst::element_imp_error!(
                    self,
                    gst::LibraryError::Init,
                    (
                        "Cannot load announced model {}: {}",
                        announcement.location.display(),
                        e
                    )
                ),
            }
            return;
        }
        drop(guard);
        let generation = self.swap.lock().unwrap().next_generation();
        gst::info!(
            CAT,
            imp = self,
            "loading announced model {} in the background",
            announcement.location.display()
        );
        let weak = self.obj().downgrade();
        std::thread::spawn(move || {
            let Some(obj) = weak.upgrade() else { return };
            let imp = obj.imp();
            let result = imp.load(&ModelSource::Announced(announcement));
            let mut swap = imp.swap.lock().unwrap();
            if swap.generation == generation {
                swap.ready = Some(result);
            }
        });
    }
}
