//! Temperatures in `thermaldetect`: the `temperature-gate` parsed at start, and each
//! frame's scene statistics (coldest, hottest and mean pixel, where the hottest is).
//!
//! Detections get their temperatures inside the engine's detector, which reads the
//! counts it detected on. The scene is read here, on every frame (also those
//! `interval` skips, a spot meter does not pause) and before `output-agc` replaces the
//! counts by the 8-bit view. A stream without counts (8-bit, colour, a P2 Pro's YUY2
//! without `input-layout=thermal-bottom-half`) has no temperatures and is no error:
//! the debug log says so once per format.

use gst::subclass::prelude::*;
use thermalzsq::detect::temperature::TemperatureGate;
use thermalzsq::imaging::radiometry::{Counts, Radiometry, SceneTemperature};
use thermalzsq::imaging::{FrameRef, PixelFormat};

use super::imp::{CAT, ThermalDetect};

/// What the streaming thread keeps for temperatures.
pub(super) struct Temperatures {
    /// `temperature-gate`, parsed at start (the property changes only in READY).
    pub(super) gate: TemperatureGate,
    /// The format whose lack of counts was logged last, so a stream is told once and
    /// not once per frame.
    told: Option<PixelFormat>,
}

impl Temperatures {
    pub(super) fn new(gate: TemperatureGate) -> Self {
        Temperatures { gate, told: None }
    }

    /// The scene's temperatures of what detection reads (`input`: the frame, or a P2
    /// Pro's lower-half counts); `None` when it carries no counts.
    pub(super) fn scene(
        &mut self,
        imp: &ThermalDetect,
        input: &FrameRef,
        radiometry: Radiometry,
    ) -> Option<SceneTemperature> {
        match Counts::new(input) {
            Ok(counts) => {
                self.told = None;
                Some(counts.scene(radiometry))
            }
            Err(e) => {
                if self.told != Some(e.0) {
                    let hint = if e.0 == PixelFormat::Yuy2 {
                        "; a P2 Pro's YUY2 frames need input-layout=thermal-bottom-half"
                    } else {
                        ""
                    };
                    gst::info!(
                        CAT,
                        imp = imp,
                        "radiometry is set, but {e}{hint}: no temperatures"
                    );
                    self.told = Some(e.0);
                }
                None
            }
        }
    }
}
