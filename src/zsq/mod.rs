//! Zero-shot quantization: calibration images distilled from a model's own
//! BatchNormalization statistics, with no training data anywhere.
//!
//! [`bn`] finds the BN layers and their statistics, [`autodiff`] builds the ONNX graph
//! that returns the BN-statistics loss and its gradient w.r.t. the input, and
//! [`distill`] optimises images against it with Adam, all in ONNX Runtime.

mod adam;
pub mod autodiff;
pub mod bn;
pub mod distill;
mod error;
mod noise;

pub use error::ZsqError;
