//! What each operator type means to the quantizer: the table the placement plan
//! follows, and the facts about inputs that planning and BN folding share.

use crate::onnx::NodeProto;

/// How the quantizer treats an operator type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// Conv / Gemm / MatMul: a layer when its weight is constant.
    Layer,
    /// Gets QDQ on its data inputs and outputs; ONNX Runtime has an integer version.
    Quantized,
    /// Moves or selects data: QDQ on input and output with the same parameters.
    SameParams,
    /// Relu, Clip: folded into the range of the quantized op before them.
    Activation,
    /// Runs in float (QDQ only where its neighbours want it).
    Float,
}

/// The class of an operator type (default ONNX domain).
pub fn op_class(op_type: &str) -> OpClass {
    match op_type {
        "Conv" | "Gemm" | "MatMul" => OpClass::Layer,
        "Sigmoid" | "Mul" | "Add" | "Concat" | "AveragePool" | "GlobalAveragePool"
        | "LeakyRelu" | "Softmax" => OpClass::Quantized,
        "MaxPool" | "Resize" | "Split" | "Reshape" | "Flatten" | "Transpose" | "Squeeze"
        | "Unsqueeze" | "Slice" | "Gather" | "Expand" | "Tile" | "Identity" => OpClass::SameParams,
        "Relu" | "Clip" => OpClass::Activation,
        _ => OpClass::Float,
    }
}

/// Ops through which a Softmax's output is still "a distribution" (for the DFL rule).
pub(super) fn is_layout_op(op_type: &str) -> bool {
    matches!(
        op_type,
        "Reshape"
            | "Transpose"
            | "Flatten"
            | "Squeeze"
            | "Unsqueeze"
            | "Identity"
            | "Slice"
            | "Split"
            | "Gather"
    )
}

/// Input slots of a node that carry data (the others are shapes, indices, scales...).
pub(super) fn data_slots(node: &NodeProto) -> std::ops::Range<usize> {
    match node.op_type() {
        "Concat" => 0..node.input.len(),
        "Add" | "Mul" | "MatMul" => 0..2,
        _ => 0..1,
    }
}
