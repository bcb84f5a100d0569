//! Pixels: frames and pixel formats, PNG files, AGC, letterbox pre-processing,
//! temperatures from radiometric counts, a bitmap font and box drawing.
//!
//! Why a room of its own: detection, data generation (`synth`), quantization (`zsq`
//! calibrates on the detector's exact input) and evaluation all handle the same pixels,
//! and none of them should depend on another to do so. The 8-bit view a detector was
//! trained on, the letterbox it expects and the frames a camera sends are defined here
//! once; this module imports nothing else of the crate.

pub mod agc;
pub mod draw;
mod error;
pub mod font;
pub mod frame;
pub mod image;
pub mod preprocess;
pub mod radiometry;

pub use error::ImageError;
pub use frame::{Frame, FrameMut, FrameRef, PixelFormat};
