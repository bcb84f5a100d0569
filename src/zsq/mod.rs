//! Zero-shot quantization: int8 models from a detector's own BatchNormalization
//! statistics, with no training data anywhere (or, for models whose BN was folded away,
//! from generated scenes: [`scenes`]).
//!
//! [`bn`] finds the BN layers and their statistics, [`autodiff`] builds the ONNX graph
//! that returns the BN-statistics loss and its gradient w.r.t. the input, and
//! [`distill`] optimises images against it with Adam, all in ONNX Runtime. Those images
//! (or real ones, `--calib-images`, so both are compared on equal terms) feed
//! [`calibrate`]'s activation statistics, whose ranges become [`qparams`]; [`quantize`]
//! folds BN and inserts QDQ;
//! [`cache`] keeps the results content-addressed, [`inflight`] makes one of them once
//! however many in the process ask at the same time; [`pipeline`] is the end-to-end run
//! that `zsq quantize` and the `zsqcalibrate` element use.

mod adam;
pub mod autodiff;
pub mod bn;
pub mod build_id;
pub mod cache;
pub mod calibrate;
pub mod distill;
mod error;
pub mod images;
pub mod inflight;
mod noise;
pub mod pipeline;
pub mod preview;
pub mod qparams;
pub mod quantize;
pub mod report;
pub mod scenes;
pub mod w4a8;

pub use error::ZsqError;
