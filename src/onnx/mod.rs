//! ONNX models: lossless decode/encode of `ModelProto`, a graph view, tensors as
//! `ndarray` arrays, and builders for graph surgery.
//!
//! The protobuf messages are written by hand (no generated code, no protobuf crate):
//! ONNX needs a small corner of protobuf, and owning it buys three things the
//! zero-shot quantizer relies on: decoding never panics on bad input, says which
//! byte and field are wrong, and never holds more than 64 bytes of memory per input
//! byte (plus 1 MiB) however the input is crafted; decode → encode gives back the
//! input bytes exactly (proto2 presence kept, packing as onnx.proto declares, unknown
//! fields kept verbatim), so an untouched model is never silently altered; and large
//! tensors are copied once, straight from the file buffer.
//!
//! ```no_run
//! use thermalzsq::onnx::{DataType, Model};
//!
//! let mut model = Model::load("yolov8n.onnx")?;
//! let bn_inputs: Vec<String> = model
//!     .graph()
//!     .node
//!     .iter()
//!     .filter(|n| n.op_type() == "BatchNormalization")
//!     .map(|n| n.input[0].clone())
//!     .collect();
//! let graph = model.graph_mut();
//! for name in &bn_inputs {
//!     graph.add_output(name, DataType::Float)?;
//! }
//! graph.prune_to(&bn_inputs)?;
//! model.save("bn_inputs.onnx")?;
//! # Ok::<(), thermalzsq::onnx::OnnxError>(())
//! ```

mod array;
mod build;
mod codec;
mod edit;
mod error;
mod input_size;
mod model;
mod proto;
mod view;
mod wire;

pub use array::Element;
pub use build::NodeBuilder;
pub use edit::UniqueNames;
pub use error::{OnnxError, Result};
pub use input_size::{DEFAULT_STRIDE, InputSize};
pub use model::Model;
pub use proto::*;
pub use view::{GraphView, Use};
