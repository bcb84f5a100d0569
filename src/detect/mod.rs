//! Thermal object detection: boxes from a model. A frame goes in (pre-processed by
//! [`crate::imaging`]), the model runs, its output is decoded (YOLOv5/v8/v11 and
//! end-to-end layouts), NMS keeps one box per object, and the detections come out as
//! structs, JSON lines or boxes drawn into the frame.
//!
//! [`Detector`] is what the `thermaldetect` element and `zsq eval --model` run; the
//! pieces it is made of are public so tools and tests can use them alone.

pub mod decode;
mod detector;
pub mod dfl;
pub mod draw;
pub mod labels;
pub mod report;
pub mod resize;
pub mod silu;
pub mod temperature;

pub use detector::{Detector, DetectorConfig};

use crate::imaging::ImageError;
use crate::imaging::radiometry::BoxTemperature;

/// One detected object; the box is in frame pixels, `[x0, y0, x1, y1]`, clipped to the
/// frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class_id: usize,
    pub label: String,
    pub confidence: f32,
    pub bbox: [f32; 4],
    /// With a radiometric camera: the temperature inside the box.
    pub temperature: Option<BoxTemperature>,
}

impl Detection {
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }

    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }
}

/// What went wrong while loading a detector or running it, in words a user can act on.
#[derive(Debug)]
pub enum DetectError {
    /// The model, its labels, the options or the model's output.
    Detector(String),
    /// The frame handed to the detector.
    Image(ImageError),
}

impl DetectError {
    pub fn new(msg: impl Into<String>) -> Self {
        DetectError::Detector(msg.into())
    }
}

impl std::fmt::Display for DetectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DetectError::Detector(why) => f.write_str(why),
            DetectError::Image(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DetectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DetectError::Detector(_) => None,
            DetectError::Image(e) => Some(e),
        }
    }
}

impl From<ImageError> for DetectError {
    fn from(e: ImageError) -> Self {
        DetectError::Image(e)
    }
}

impl From<crate::runtime::RuntimeError> for DetectError {
    fn from(e: crate::runtime::RuntimeError) -> Self {
        DetectError::Detector(e.0)
    }
}

impl From<ort::Error> for DetectError {
    fn from(e: ort::Error) -> Self {
        DetectError::Detector(e.to_string())
    }
}
