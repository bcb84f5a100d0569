//! thermalzsq: zero-shot int8 quantization and thermal object detection on ONNX Runtime.
//!
//! This crate is the engine behind the GStreamer elements `thermaldetect` and
//! `zsqcalibrate` and the `zsq` command-line tool. It knows nothing of GStreamer: frames
//! come in as plain pixel buffers, detections go out as plain structs.
//!
//! What only the command line needs (the results report, evaluation pictures, argument
//! parsing) lives in the `zsq` crate (`cli/`), so the plugin's shared library, which
//! links this crate, carries only what an element runs.

pub mod detect;
pub mod eval;
pub mod imaging;
pub mod onnx;
pub mod runtime;
pub mod synth;
pub mod track;
pub mod zsq;
