//! The one error type of the zero-shot quantizer: distillation, calibration,
//! quantization and the cache all fail with [`ZsqError`], so a caller matches one enum
//! and `source()` reaches the ONNX, runtime or I/O error underneath.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// An option or setting is out of range or unknown.
    Options(String),
    /// Calibration images are missing, unreadable or not images.
    Images(String),
    /// The cache cannot be used (e.g. its directory is not writable).
    Cache(String),
    /// A file cannot be written.
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// The model cannot be read or edited.
    Onnx(OnnxError),
    /// ONNX Runtime failed (loading or running a model).
    Runtime(RuntimeError),
    /// The caller raised the cancel flag.
    Cancelled,
    /// The same work, done once for several callers in the process
    /// ([`super::inflight::InFlight`]), failed in another caller: its error.
    Shared(Arc<ZsqError>),
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
                 calibrate on generated scenes instead (zsq quantize --calibration synth, \
                 zsqcalibrate calibration=synth), or export with BN kept: \
                 torch.onnx.export(model.eval(), ..., \
                 training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)",
            ),
            ZsqError::NoGradientRule { op, node, why } => {
                write!(f, "no gradient rule for {op} node '{node}': {why}")
            }
            ZsqError::Model(why)
            | ZsqError::Options(why)
            | ZsqError::Images(why)
            | ZsqError::Cache(why) => f.write_str(why),
            ZsqError::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            ZsqError::Onnx(e) => e.fmt(f),
            ZsqError::Runtime(e) => write!(f, "ONNX Runtime: {e}"),
            ZsqError::Cancelled => f.write_str("quantization cancelled"),
            ZsqError::Shared(e) => write!(
                f,
                "{e} (in another calibration of the same model in this process, which this one waited for)"
            ),
        }
    }
}

impl std::error::Error for ZsqError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ZsqError::Onnx(e) => Some(e),
            ZsqError::Runtime(e) => Some(e),
            ZsqError::Io { source, .. } => Some(source),
            ZsqError::Shared(e) => Some(&**e),
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
