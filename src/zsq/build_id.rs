//! What identifies the code that makes a quantized model, for the cache key: this
//! build of thermalzsq and the ONNX Runtime library loaded in this process.
//!
//! The crate version says little (it stays 0.1.0 while the quantizer changes), so the
//! build script hashes the sources that make models (build.rs); and distillation and
//! calibration run in ONNX Runtime, whose kernels change between releases, so another
//! runtime may distill other images and observe other ranges from the same settings.

use super::ZsqError;

/// A sha256 (hexadecimal) over the sources of `src/zsq` and what it imports, the
/// numeric dependencies' versions and the compiler version, computed by build.rs. It
/// changes with any edit of that code, committed or not.
pub fn build_id() -> &'static str {
    env!("THERMALZSQ_BUILD_ID")
}

/// The ONNX Runtime loaded in this process as it reports itself: its build information
/// (version branch, git commit, build type), e.g. `git-branch=HEAD, git-commit-id=6af1a93,
/// build type=Release`. The commit names the runtime's code exactly, whatever file name
/// the library was loaded under. Loads the runtime if need be; an error says why it
/// cannot be loaded.
pub fn onnxruntime_identity() -> Result<&'static str, ZsqError> {
    crate::runtime::environment()?;
    let info = ort::info();
    Ok(info.strip_prefix("ORT Build Info: ").unwrap_or(info))
}
