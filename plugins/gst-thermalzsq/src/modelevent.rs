//! The `thermalzsq/model` event: how `zsqcalibrate` tells `thermaldetect` which model
//! to run.
//!
//! A sticky custom downstream event, so an element linked later (or after a flush)
//! still learns the current model. It names the model file, or carries the model bytes
//! when it could not be written to disk (an unwritable cache), plus where it came from.

use std::path::PathBuf;

use gst::glib;

pub const NAME: &str = "thermalzsq/model";

/// A model announced downstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAnnouncement {
    /// The model to run (for an in-memory model: where it would have been cached).
    pub location: PathBuf,
    /// The model bytes, when they exist only in memory.
    pub data: Option<glib::Bytes>,
    /// The fp32 model it was made from (equal to `location` for the fp32 model itself).
    pub source: PathBuf,
    /// sha256 of the model bytes, hex.
    pub sha256: String,
    /// `fp32`, `u8s8` or `s8s8`.
    pub precision: String,
    /// The calibration report (JSON), if any.
    pub report: Option<PathBuf>,
}

impl ModelAnnouncement {
    pub fn to_event(&self) -> gst::Event {
        let path = |p: &PathBuf| p.display().to_string();
        let mut s = gst::Structure::builder(NAME)
            .field("location", path(&self.location))
            .field("source", path(&self.source))
            .field("sha256", &self.sha256)
            .field("precision", &self.precision)
            .field("report", self.report.as_ref().map(path).unwrap_or_default())
            .build();
        if let Some(data) = &self.data {
            s.set("data", data);
        }
        gst::event::CustomDownstreamSticky::new(s)
    }

    /// The announcement an event carries, if it is one.
    pub fn from_event(event: &gst::EventRef) -> Option<Self> {
        let s = event.structure().filter(|s| s.name() == NAME)?;
        let path = |f: &str| s.get::<String>(f).ok().map(PathBuf::from);
        Some(ModelAnnouncement {
            location: path("location")?,
            data: s.get::<glib::Bytes>("data").ok(),
            source: path("source")?,
            sha256: s.get("sha256").ok()?,
            precision: s.get("precision").ok()?,
            report: path("report").filter(|p| !p.as_os_str().is_empty()),
        })
    }
}
