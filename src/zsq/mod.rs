//! Zero-shot quantization: calibration images distilled from a model's own
//! BatchNormalization statistics, with no training data anywhere, then calibration
//! statistics, BN folding and QDQ insertion, the content-addressed cache of quantized
//! models, and the end-to-end pipeline that `zsq quantize` and the `zsqcalibrate`
//! element run.
//!
//! [`bn`] finds the BN layers and their statistics, [`autodiff`] builds the ONNX graph
//! that returns the BN-statistics loss and its gradient w.r.t. the input, and
//! [`distill`] optimises images against it with Adam, all in ONNX Runtime.
//! [`calibrate`] observes activation ranges on calibration images — distilled, or real
//! ones from [`images`] (`--calib-images`), so that both are compared on equal terms —
//! [`quantize`] folds BN and inserts QDQ, [`cache`] keeps the results, and [`pipeline`]
//! runs it all.

mod adam;
pub mod autodiff;
pub mod bn;
pub mod cache;
pub mod calibrate;
pub mod distill;
mod error;
pub mod images;
mod noise;
pub mod pipeline;
pub mod quantize;
pub mod report;

pub use error::ZsqError;
