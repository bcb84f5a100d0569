//! The build identity of the engine: `THERMALZSQ_BUILD_ID`, a sha256 over everything
//! that decides the bytes of a quantized model. The cache keys on it, so a model made by
//! other code is never served, also when that code is an uncommitted edit (which a git
//! commit id would not see) or another compiler or runtime binding.
//!
//! It covers the sources of `src/zsq` and of what it imports (`src/onnx`,
//! `src/runtime`, `src/imaging`, and `src/synth`, whose scenes calibrate models
//! without BN), the versions of the numeric dependencies in
//! Cargo.lock, and the compiler's version; nothing else, so editing the detector,
//! the tracker or the plugin keeps the cache warm.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The source folders whose code makes a model.
const SOURCES: [&str; 5] = [
    "src/zsq",
    "src/onnx",
    "src/runtime",
    "src/imaging",
    "src/synth",
];

/// The dependencies whose code makes a model (their versions, from Cargo.lock).
const DEPENDENCIES: [&str; 4] = ["ort", "ort-sys", "ndarray", "png"];

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut hash = Sha256::new();
    for folder in SOURCES {
        // A directory: cargo reruns this script when any file below it changes.
        println!("cargo:rerun-if-changed={folder}");
        let mut files = Vec::new();
        collect(&root.join(folder), &mut files);
        files.sort();
        for file in files {
            let name = file.strip_prefix(&root).unwrap_or(&file);
            let bytes = fs::read(&file).unwrap_or_default();
            hash.update(name.to_string_lossy().as_bytes());
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(&bytes);
        }
    }
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    for line in locked_versions(&lock, &DEPENDENCIES) {
        hash.update(line.as_bytes());
    }
    // `cargo` rebuilds everything when the compiler changes; naming it here makes the
    // id change too.
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if let Ok(out) = Command::new(rustc).arg("-V").output() {
        hash.update(&out.stdout);
    }
    let id: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=THERMALZSQ_BUILD_ID={id}");
}

/// Every file below `dir`.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// `name version` of each package of `names` in Cargo.lock.
fn locked_versions(lock: &str, names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let Some(v) = line.strip_prefix("version = ")
            && let Some(n) = name.take()
            && names.contains(&n.as_str())
        {
            found.push(format!("{n} {}\n", v.trim_matches('"')));
        }
    }
    found
}
