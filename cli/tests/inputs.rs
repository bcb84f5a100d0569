//! `zsq quantize` on inputs other than a fixed 1×3×H×W: a model exported with a
//! symbolic height and width (`--size WxH`, and the error without it) and a
//! single-channel YOLOv8-style model (distilled and generated-scene calibration).
//! The engine side is tested in tests/inputs.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use thermalzsq::onnx::Model;

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(dir)
        .join(name)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("thermalzsq-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `zsq quantize MODEL -o OUT ARGS…` with no cache; (success, stderr).
fn quantize(model: &Path, out: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zsq"))
        .arg("quantize")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(["--no-cache", "--threads", "2"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The error line of a failed run (ONNX Runtime may log warnings before it).
fn error_line(stderr: &str) -> &str {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("zsq: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    errors[0]
}

/// The static dims of the model's image input.
fn input_dims(path: &Path) -> Option<Vec<i64>> {
    let model = Model::load(path).unwrap();
    model.graph().input[0]
        .r#type
        .as_ref()
        .and_then(|t| t.shape())
        .and_then(|s| s.static_dims())
}

#[test]
fn size_quantizes_a_dynamic_model_into_a_fixed_one_and_is_asked_for_when_missing() {
    let dir = temp_dir("cli-inputs-dynamic");
    let model = fixture("models", "hotspot_v8_dynamic.onnx");
    let out = dir.join("int8.onnx");
    let quick = ["--iterations", "3", "--batch", "2"];

    let (ok, stderr) = quantize(&model, &out, &quick);
    assert!(!ok);
    let line = error_line(&stderr);
    assert!(
        line.contains("height and width are symbolic") && line.contains("--size WxH"),
        "{line}"
    );

    let (ok, stderr) = quantize(&model, &out, &[&quick[..], &["--size", "320x250"]].concat());
    assert!(!ok);
    assert!(
        error_line(&stderr).contains("not a multiple of the model's stride 32; use e.g. 320x256"),
        "{stderr}"
    );
    let (ok, stderr) = quantize(&model, &out, &[&quick[..], &["--size", "wide"]].concat());
    assert!(!ok);
    assert!(
        error_line(&stderr).contains("--size: input size `wide` does not read"),
        "{stderr}"
    );

    let (ok, stderr) = quantize(&model, &out, &[&quick[..], &["--size", "320x256"]].concat());
    assert!(ok, "{stderr}");
    assert_eq!(input_dims(&out), Some(vec![1, 3, 256, 320]));
}

#[test]
fn a_single_channel_model_quantizes_from_distilled_images_and_generated_scenes() {
    let dir = temp_dir("cli-inputs-mono");
    let model = fixture("onnx", "yolov8_mono.onnx");
    for (name, args) in [
        (
            "distill",
            &[
                "--calibration",
                "distill",
                "--iterations",
                "5",
                "--batch",
                "2",
            ][..],
        ),
        (
            "synth",
            &["--calibration", "synth", "--synth-count", "2"][..],
        ),
    ] {
        let out = dir.join(format!("{name}.onnx"));
        let report = dir.join(format!("{name}.json"));
        let (ok, stderr) = quantize(
            &model,
            &out,
            &[args, &["--report", report.to_str().unwrap()]].concat(),
        );
        assert!(ok, "{name}: {stderr}");
        assert_eq!(input_dims(&out), Some(vec![1, 1, 64, 64]), "{name}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(report["calibration"]["source"], name);
        assert_eq!(report["calibration"]["images"], 2, "{name}");
    }
}
