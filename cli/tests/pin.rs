//! Behaviour pins for refactors: the exact bytes `zsq quantize` writes (zero-shot on a
//! fixture and on the bundled model, both precision profiles, real-image calibration)
//! and the exact bytes `zsq synth` writes, as sha256 digests per CPU instruction set
//! (tests/support/pin.rs says why and how to record them).

#[path = "../../tests/support/pin.rs"]
mod pin;

use std::path::{Path, PathBuf};
use std::process::Command;

use thermalzsq::zsq::cache::sha256_hex;

/// The repository root (this crate is `cli/`): the pinned commands name its files.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-pin-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn zsq(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_zsq"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zsq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// sha256 of the int8 model `zsq quantize MODEL ARGS` writes (one thread, no cache).
fn quantized_digest(model: &str, args: &[&str]) -> String {
    let dir = workdir("quantize");
    let output = dir.join(format!(
        "{}.onnx",
        sha256_hex(format!("{model}{args:?}").as_bytes())
    ));
    let output = output.to_str().unwrap();
    let mut all = vec![
        "quantize",
        model,
        "-o",
        output,
        "--threads",
        "1",
        "--no-cache",
    ];
    all.extend_from_slice(args);
    zsq(&all);
    sha256_hex(&std::fs::read(output).unwrap())
}

fn pin_quantized(name: &str, model: &str, args: &[&str]) {
    let digest = quantized_digest(model, args);
    pin::check(name, &digest, || quantized_digest(model, args));
}

/// A small `zsq synth` dataset with a recording, and the sha256 of all its files.
fn synth_dataset(dir: &Path) -> String {
    let out = dir.to_str().unwrap();
    zsq(&[
        "synth",
        "--out",
        out,
        "--scenes",
        "6",
        "--seed",
        "5",
        "--size",
        "320x256",
        "--recording",
        "4",
    ]);
    let mut files: Vec<PathBuf> = ["annotations.json", "recording.gray16le", "recording.json"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    for sub in ["rgb", "thermal16", "thermal8"] {
        let mut pngs: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        pngs.sort();
        files.extend(pngs);
    }
    let mut all = Vec::new();
    for f in &files {
        all.extend_from_slice(f.strip_prefix(dir).unwrap().to_str().unwrap().as_bytes());
        all.extend_from_slice(&std::fs::read(f).unwrap());
    }
    sha256_hex(&all)
}

#[test]
fn zero_shot_u8s8_of_the_yolov8_fixture_keeps_its_bytes() {
    pin_quantized(
        "quantize yolov8_c2f_dfl u8s8 minmax",
        "tests/fixtures/onnx/yolov8_c2f_dfl.onnx",
        &["--iterations", "4", "--batch", "2"],
    );
}

#[test]
fn zero_shot_s8s8_percentile_of_the_yolov8_fixture_keeps_its_bytes() {
    pin_quantized(
        "quantize yolov8_c2f_dfl s8s8 percentile",
        "tests/fixtures/onnx/yolov8_c2f_dfl.onnx",
        &[
            "--iterations",
            "4",
            "--batch",
            "2",
            "--precision",
            "s8s8",
            "--observer",
            "percentile",
        ],
    );
}

#[test]
fn zero_shot_of_the_bundled_thermal_model_keeps_its_bytes() {
    pin_quantized(
        "quantize det_thermal_ft u8s8 minmax",
        "models/det_thermal_ft.onnx",
        &["--iterations", "3", "--batch", "2"],
    );
}

#[test]
fn synth_and_real_image_calibration_keep_their_bytes() {
    let dir = workdir("synth");
    let dataset = synth_dataset(&dir);
    pin::check("synth seed 5 320x256 6 scenes 4 frames", &dataset, || {
        synth_dataset(&workdir("synth-again"))
    });
    let images = dir.to_str().unwrap();
    pin_quantized(
        "quantize det_thermal_ft u8s8 minmax on synth images",
        "models/det_thermal_ft.onnx",
        &["--calib-images", images, "--calib-count", "6"],
    );
}
