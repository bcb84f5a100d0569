//! Thermal object detection: frame → tensor, YOLO decoding, NMS, drawing.
//!
//! [`Detector`] is what the `thermaldetect` element and `zsq eval --model` run; the
//! pieces it is made of are public so tools and tests can use them alone.

pub mod agc;
pub mod decode;
mod detector;
pub mod draw;
pub mod font;
pub mod frame;
pub mod image;
pub mod labels;
pub mod preprocess;
pub mod report;

pub use detector::{Detector, DetectorConfig};
pub use frame::{Frame, FrameMut, FrameRef, PixelFormat};

/// One detected object; the box is in frame pixels, `[x0, y0, x1, y1]`, clipped to the
/// frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class_id: usize,
    pub label: String,
    pub confidence: f32,
    pub bbox: [f32; 4],
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectError(String);

impl DetectError {
    pub fn new(msg: impl Into<String>) -> Self {
        DetectError(msg.into())
    }
}

impl std::fmt::Display for DetectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DetectError {}

impl From<crate::runtime::RuntimeError> for DetectError {
    fn from(e: crate::runtime::RuntimeError) -> Self {
        DetectError(e.0)
    }
}

impl From<ort::Error> for DetectError {
    fn from(e: ort::Error) -> Self {
        DetectError(e.to_string())
    }
}
