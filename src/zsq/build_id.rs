//! What identifies the code that makes a quantized model, for the cache key: this
//! build of thermalzsq and the ONNX Runtime library loaded in this process.
//!
//! The crate version says little (it stays 0.1.0 while the quantizer changes), so the
//! build script hashes the sources that make models (build.rs); and distillation and
//! calibration run in ONNX Runtime, whose kernels change between releases, so another
//! runtime may distill other images and observe other ranges from the same settings.

use std::sync::OnceLock;

use super::ZsqError;

/// A sha256 (hexadecimal) over the sources of `src/zsq` and what it imports, the
/// numeric dependencies' versions and the compiler version, computed by build.rs. It
/// changes with any edit of that code, committed or not.
pub fn build_id() -> &'static str {
    env!("THERMALZSQ_BUILD_ID")
}

/// The ONNX Runtime loaded in this process as it reports itself: its version string
/// and its build information (git commit, build type), e.g. `1.31.1 (git-branch=HEAD,
/// git-commit-id=6af1a93, build type=Release)`. Loads the runtime if need be; an
/// error says why it cannot be loaded.
pub fn onnxruntime_identity() -> Result<&'static str, ZsqError> {
    static IDENTITY: OnceLock<String> = OnceLock::new();
    crate::runtime::environment()?;
    Ok(IDENTITY.get_or_init(|| {
        let info = ort::info();
        let info = info.strip_prefix("ORT Build Info: ").unwrap_or(info);
        match loaded_version() {
            Some(version) => format!("{version} ({info})"),
            // The build information alone still names the runtime's git commit.
            None => format!("unknown version ({info})"),
        }
    }))
}

/// `OrtGetApiBase()->GetVersionString()` of the loaded library. The `ort` crate keeps
/// the library handle and that call to itself when it loads the runtime dynamically,
/// so this asks the dynamic loader for the library it already holds (by its soname,
/// `RTLD_NOLOAD`: nothing new is loaded).
#[cfg(target_os = "linux")]
fn loaded_version() -> Option<String> {
    use std::ffi::{CStr, c_char, c_int, c_void};

    unsafe extern "C" {
        fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
        fn dlclose(handle: *mut c_void) -> c_int;
    }
    const RTLD_LAZY: c_int = 0x1;
    const RTLD_NOLOAD: c_int = 0x4;
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;

    // SAFETY: dlopen with RTLD_NOLOAD only returns a handle (or null) to a library
    // already loaded, which stays loaded while we hold the handle; `OrtGetApiBase` and
    // `GetVersionString` take no arguments and return pointers to static data of the
    // library (ONNX Runtime's C API), checked for null before use; the string is copied
    // before the handle is closed.
    unsafe {
        let handle = dlopen(c"libonnxruntime.so.1".as_ptr(), RTLD_LAZY | RTLD_NOLOAD);
        if handle.is_null() {
            return None;
        }
        let symbol = dlsym(handle, c"OrtGetApiBase".as_ptr());
        let version = (!symbol.is_null())
            .then(|| std::mem::transmute::<*mut c_void, GetApiBase>(symbol)())
            .filter(|base| !base.is_null())
            .map(|base| ((*base).GetVersionString)())
            .filter(|v| !v.is_null())
            .map(|v| CStr::from_ptr(v).to_string_lossy().into_owned());
        dlclose(handle);
        version
    }
}

#[cfg(not(target_os = "linux"))]
fn loaded_version() -> Option<String> {
    None
}
