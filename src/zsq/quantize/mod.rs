//! The quantizer: BatchNormalization folded into the preceding Conv ([`fold`]), then
//! QuantizeLinear/DequantizeLinear (QDQ) pairs placed ([`plan`], by the op table in
//! [`ops`]) so that ONNX Runtime fuses the network body into integer kernels while the
//! detection tail stays float, and the graph rewritten ([`rewrite`]) with weights,
//! biases and constants encoded as integers ([`weights`]).
//!
//! The parts depend one way: `rewrite` reads the plan and the encodings; nothing reads
//! `rewrite`. Scales, zero points and ranges are [`crate::zsq::qparams`].

mod fold;
mod ops;
mod plan;
mod rewrite;
mod weights;

pub use fold::{FoldSummary, fold_batch_norms};
pub use ops::{OpClass, op_class};
pub use plan::{LayerInfo, QdqPlan, plan_qdq};
pub use rewrite::{QdqSummary, insert_qdq, insert_qdq_with_weights};
pub use weights::{LayerWeights, quantize_weight};
