//! ONNX models: lossless decode/encode of `ModelProto`, and tensors as `ndarray`
//! arrays.
//!
//! The protobuf messages are written by hand (no generated code, no protobuf crate):
//! ONNX needs a small corner of protobuf, and owning it buys three things the
//! zero-shot quantizer relies on: decoding never panics on bad input and says which
//! byte and field are wrong; decode → encode gives back the input bytes exactly
//! (proto2 presence kept, packing as onnx.proto declares, unknown fields kept
//! verbatim), so an untouched model is never silently altered; and large tensors are
//! copied once, straight from the file buffer.

mod array;
mod codec;
mod error;
mod model;
mod proto;
mod wire;

pub use array::Element;
pub use error::{OnnxError, Result};
pub use model::Model;
pub use proto::*;
