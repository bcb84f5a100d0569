//! Zero-shot quantization: calibration statistics, BN folding and QDQ insertion, the
//! content-addressed cache of quantized models, and the end-to-end pipeline that
//! `zsq quantize` and the `zsqcalibrate` element run.
//!
//! The calibration images come either from the model itself (distillation against its
//! BatchNormalization statistics, zero-shot) or from a directory of real images
//! (`--calib-images`), so that both are compared on equal terms: everything after the
//! images is the same code.

pub mod cache;
pub mod calibrate;
pub mod images;
pub mod pipeline;
pub mod quantize;
pub mod report;
