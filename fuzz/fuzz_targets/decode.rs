//! libFuzzer target: any bytes as an ONNX model. It runs the checks of the
//! deterministic mutation test, tests/onnx_fuzz.rs, compiled in as a module (one
//! source of truth, its counting allocator included): decoding ends in an error or
//! a model, within the decoder's memory bound, and a model that decodes goes through
//! the loader's next steps (re-encode round trip, graph view, tensors, names,
//! surgery) without a panic.
//!
//! `cargo +nightly fuzz run decode` from the repository root; see docs/onnx-ir.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/onnx_fuzz.rs"]
#[allow(dead_code, unused_imports)]
mod onnx_fuzz;

fuzz_target!(|data: &[u8]| {
    onnx_fuzz::check(data, std::path::Path::new("."), "fuzz input");
});
