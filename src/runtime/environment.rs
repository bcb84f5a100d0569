//! The process-wide ONNX Runtime environment.
//!
//! ONNX Runtime allows one environment per process, so it lives in a static and is
//! created lazily on first use (never at plugin load: `gst-inspect` must work even where
//! the library is missing). Its log goes to a sink the embedding application installs
//! beforehand (the GStreamer plugin bridges it into a debug category).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub use ort::logging::LogLevel;

use super::RuntimeError;

/// Receives ONNX Runtime log lines: level, log id (usually the session), message.
pub type LogSink = Arc<dyn Fn(LogLevel, &str, &str) + Send + Sync>;

static LOG_SINK: OnceLock<(LogSink, LogLevel)> = OnceLock::new();
static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, RuntimeError>> = OnceLock::new();

/// Installs where ONNX Runtime's log goes and from which level. Takes effect only
/// before the environment exists; returns false if it came too late or twice.
pub fn set_log_sink(sink: LogSink, min_level: LogLevel) -> bool {
    ENVIRONMENT.get().is_none() && LOG_SINK.set((sink, min_level)).is_ok()
}

/// The library `make ortlib` installs, relative to the repository.
const REPO_LIBRARY: &str = ".ortlib/onnxruntime/capi/libonnxruntime.so.1.31.1";

/// Where the ONNX Runtime shared library is looked for: `ORT_DYLIB_PATH`; else, for
/// programs run from a checkout (target/<profile>/zsq), the repository's `.ortlib/`;
/// else the dynamic loader's search path.
fn library_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .skip(1)
                .take(4)
                .map(|dir| dir.join(REPO_LIBRARY))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"))
}

/// The process-wide environment, created on first call. A failure (library missing,
/// wrong version) is remembered: it will not heal within the process.
pub fn environment() -> Result<&'static ort::environment::Environment, RuntimeError> {
    ENVIRONMENT
        .get_or_init(create)
        .as_ref()
        .map_err(Clone::clone)
}

fn create() -> Result<ort::environment::Environment, RuntimeError> {
    let path = library_path();
    let builder = ort::init_from(&path).map_err(|e| {
        RuntimeError(format!(
            "cannot load ONNX Runtime ({e}); install it with `make ortlib` and set \
             ORT_DYLIB_PATH to .ortlib/onnxruntime/capi/libonnxruntime.so.1.31.1"
        ))
    })?;
    let mut builder = builder.with_name("thermalzsq").with_telemetry(false);
    let min_level = match LOG_SINK.get() {
        Some((sink, level)) => {
            let sink = sink.clone();
            builder = builder.with_logger(Arc::new(
                move |level: LogLevel, _category: &str, id: &str, _location: &str, msg: &str| {
                    sink(level, id, msg)
                },
            ));
            *level
        }
        None => LogLevel::Warning,
    };
    let env = builder.build()?;
    env.set_log_level(min_level);
    Ok(env)
}
