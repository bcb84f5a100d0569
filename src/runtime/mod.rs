//! ONNX Runtime: the one process-wide environment, execution-provider policy, sessions
//! and the registry that lets streams with the same model share one.
//!
//! Every stage of thermalzsq (inference, calibration statistics, distillation) runs
//! through here, so every stage uses the same execution provider.

mod environment;
mod provider;
mod session;
mod shared;
mod silu;

pub use environment::{LogLevel, LogSink, environment, set_log_sink};
pub use provider::{Provider, ProviderOptions};
pub use session::{
    LoadedSession, ModelInfo, TensorInfo, load_session, load_session_from_memory,
    load_session_with_config,
};
pub use shared::{SharedSession, shared_session, shared_sessions};
pub use silu::{SILU_DOMAIN, SILU_OP};

/// Errors of the runtime layer, as text a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeError(pub String);

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuntimeError {}

impl From<ort::Error> for RuntimeError {
    fn from(e: ort::Error) -> Self {
        RuntimeError(e.to_string())
    }
}
