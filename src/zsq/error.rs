//! The one error type of the zero-shot quantizer.

use std::fmt;

use crate::onnx::OnnxError;
use crate::runtime::RuntimeError;

/// What went wrong, as one line a user can act on (it names the layer, node or option).
#[derive(Debug)]
pub enum ZsqError {
    /// The model has no BatchNormalization layers: there are no statistics to distill from.
    NoBatchNorm,
    /// A node on a path from the input to a BN layer has no gradient rule, or uses the
    /// op in a form the rule does not cover (`why` says which).
    NoGradientRule {
        op: String,
        node: String,
        why: String,
    },
    /// The model cannot be used as it is (a non-image input, a BN layer in training
    /// mode, statistics that are not constants, ...).
    Model(String),
    /// An option is out of range.
    Options(String),
    Onnx(OnnxError),
    Runtime(RuntimeError),
    /// The caller raised the cancel flag.
    Cancelled,
}

impl ZsqError {
    pub(crate) fn no_rule(op: &str, node: &str, why: impl Into<String>) -> Self {
        ZsqError::NoGradientRule {
            op: op.to_string(),
            node: node.to_string(),
            why: why.into(),
        }
    }
}

impl fmt::Display for ZsqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZsqError::NoBatchNorm => f.write_str(
                "the model has no BatchNormalization layers: BN statistics were folded away; \
                 export with BN kept: torch.onnx.export(model.eval(), ..., \
                 training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)",
            ),
            ZsqError::NoGradientRule { op, node, why } => {
                write!(f, "no gradient rule for {op} node '{node}': {why}")
            }
            ZsqError::Model(why) | ZsqError::Options(why) => f.write_str(why),
            ZsqError::Onnx(e) => e.fmt(f),
            ZsqError::Runtime(e) => write!(f, "ONNX Runtime: {e}"),
            ZsqError::Cancelled => f.write_str("distillation cancelled"),
        }
    }
}

impl std::error::Error for ZsqError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ZsqError::Onnx(e) => Some(e),
            ZsqError::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

impl From<OnnxError> for ZsqError {
    fn from(e: OnnxError) -> Self {
        ZsqError::Onnx(e)
    }
}

impl From<RuntimeError> for ZsqError {
    fn from(e: RuntimeError) -> Self {
        ZsqError::Runtime(e)
    }
}

impl From<ort::Error> for ZsqError {
    fn from(e: ort::Error) -> Self {
        ZsqError::Runtime(e.into())
    }
}
