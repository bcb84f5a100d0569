//! The `zsq quantize` command line end to end: real-image, distilled and generated-scene
//! calibration (`--calibration`, `auto` by whether the model has BN), the report file,
//! the cache under XDG_CACHE_HOME, and one clear error line for bad input. (The
//! quantizer itself is tested in the engine's tests/quantize.rs and
//! tests/calibration_source.rs.)

use std::path::{Path, PathBuf};
use std::process::Command;

use thermalzsq::onnx::{DataType, Model, ValueInfoProto};
use thermalzsq::runtime::{ProviderOptions, load_session_from_memory};

#[path = "../../tests/support/data.rs"]
mod data;
use data::{synth_dataset, temp_dir};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/onnx")
        .join(name)
}

fn zsq(args: &[&str], cache: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zsq"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
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

#[test]
fn the_command_line_quantizes_and_reports() {
    let dir = temp_dir("cli");
    let data = synth_dataset("cli-data", 3);
    let model = fixture("yolov8_c2f_dfl.onnx");
    let out = dir.join("int8.onnx");
    let report = dir.join("r.json");
    let args = [
        "quantize",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--calib-images",
        data.to_str().unwrap(),
        "--calib-count",
        "3",
        "--observer",
        "entropy",
        "--threads",
        "2",
        "--report",
        report.to_str().unwrap(),
    ];
    let (ok, stdout, stderr) = zsq(&args, &dir.join("xdg"));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("u8s8, observer entropy, 3 real images"),
        "{stdout}"
    );
    assert!(stdout.contains("QLinearConv"), "{stdout}");
    assert!(
        stderr.contains("calibrate: 6/6"),
        "progress on stderr: {stderr}"
    );
    let q = Model::load(&out).unwrap();
    load_session_from_memory(&q.to_bytes(), &ProviderOptions::default()).unwrap();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(r["ranges"].as_array().unwrap().len() > 50);
    assert!(
        r["timings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["stage"] == "calibrate")
    );
    assert!(r["check"]["outputs"][0]["cosine"].as_f64().unwrap() > 0.99);
    // The same again comes from the cache under XDG_CACHE_HOME.
    let (ok, stdout, _) = zsq(&args, &dir.join("xdg"));
    assert!(ok && stdout.contains("from the cache"), "{stdout}");
    assert!(dir.join("xdg/thermalzsq").is_dir());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_command_line_names_bad_input() {
    let dir = temp_dir("cli-bad");
    let xdg = dir.join("xdg");
    let out = dir.join("o.onnx");
    let o = out.to_str().unwrap();
    let run = |model: &Path, extra: &[&str]| {
        let mut args = vec!["quantize", model.to_str().unwrap(), "-o", o];
        args.extend_from_slice(extra);
        let (ok, _, stderr) = zsq(&args, &xdg);
        assert!(!ok, "{args:?} should fail");
        error_line(&stderr).to_string()
    };
    // A model without BN, distilled.
    let e = run(&fixture("no_bn.onnx"), &["--calibration", "distill"]);
    assert!(e.contains("no BatchNormalization"), "{e}");
    let e = run(&fixture("no_bn.onnx"), &["--calibration", "mix"]);
    assert!(
        e.contains("no BatchNormalization") && e.contains("--calibration synth"),
        "{e}"
    );
    // Sources that do not go together, or do not exist.
    let e = run(&fixture("no_bn.onnx"), &["--calibration", "images"]);
    assert!(e.contains("needs --calib-images"), "{e}");
    let e = run(
        &fixture("no_bn.onnx"),
        &[
            "--calibration",
            "synth",
            "--calib-images",
            dir.to_str().unwrap(),
        ],
    );
    assert!(e.contains("cannot go with --calibration synth"), "{e}");
    let e = run(&fixture("no_bn.onnx"), &["--calibration", "noise"]);
    assert!(e.contains("unknown --calibration `noise`"), "{e}");
    let e = run(&fixture("no_bn.onnx"), &["--synth-size", "big"]);
    assert!(e.contains("unknown scene size `big`"), "{e}");
    // Neither BN nor an image input scenes could fill (five channels).
    let mut five = Model::load(fixture("no_bn.onnx")).unwrap();
    let name = five.graph().input[0].name().to_string();
    five.graph_mut().input[0] =
        ValueInfoProto::tensor(&name, DataType::Float, Some(&[1, 5, 32, 32]));
    let five_path = dir.join("five.onnx");
    five.save(&five_path).unwrap();
    let e = run(&five_path, &[]);
    assert!(e.contains("not an image"), "{e}");
    // A truncated file.
    let bytes = std::fs::read(fixture("resnet_tiny.onnx")).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let e = run(&truncated, &[]);
    assert!(
        e.contains("truncated.onnx") && e.contains("truncated"),
        "{e}"
    );
    // A non-image input.
    let mut model = Model::load(fixture("resnet_tiny.onnx")).unwrap();
    model.graph_mut().input[0] = ValueInfoProto::tensor("images", DataType::Float, Some(&[1, 16]));
    let flat = dir.join("flat.onnx");
    model.save(&flat).unwrap();
    let e = run(&flat, &[]);
    assert!(e.contains("not an image"), "{e}");
    // A missing file, bad settings, no images.
    let e = run(&dir.join("missing.onnx"), &[]);
    assert!(e.contains("missing.onnx"), "{e}");
    let e = run(&fixture("resnet_tiny.onnx"), &["--observer", "max"]);
    assert!(e.contains("unknown observer"), "{e}");
    let e = run(&fixture("resnet_tiny.onnx"), &["--precision", "int4"]);
    assert!(e.contains("unknown precision"), "{e}");
    let e = run(
        &fixture("resnet_tiny.onnx"),
        &["--calib-images", dir.to_str().unwrap()],
    );
    assert!(e.contains("no PNG images"), "{e}");
    assert!(!out.exists(), "nothing written on failure");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_line_quantizes_zero_shot() {
    let dir = temp_dir("cli-zero-shot");
    let model = fixture("yolov8_scenes.onnx");
    let out = dir.join("int8.onnx");
    let args = [
        "quantize",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--batch",
        "2",
        "--iterations",
        "6",
        "--threads",
        "2",
    ];
    let (ok, stdout, stderr) = zsq(&args, &dir.join("xdg"));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("observer minmax, 2 distilled images"),
        "{stdout}"
    );
    assert!(
        stderr.contains("calibration: distill (auto: the model has BatchNormalization layers)"),
        "{stderr}"
    );
    assert!(stderr.contains("distill: "), "progress: {stderr}");
    Model::load(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_line_mixes_distilled_images_and_generated_scenes() {
    let dir = temp_dir("cli-mix");
    let model = fixture("yolov8_scenes.onnx");
    let out = dir.join("int8.onnx");
    let args = [
        "quantize",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--calibration",
        "mix",
        "--batch",
        "2",
        "--iterations",
        "4",
        "--synth-count",
        "3",
        "--threads",
        "2",
    ];
    let (ok, stdout, stderr) = zsq(&args, &dir.join("xdg"));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(
            "calibration: mix, distilled images and 3 generated scenes (seed 0, 640x512)"
        ),
        "{stderr}"
    );
    assert!(
        stdout.contains("5 images (mix: distilled and generated scenes, seed 0)"),
        "{stdout}"
    );
    Model::load(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_options_a_folded_model_is_calibrated_on_generated_scenes() {
    let dir = temp_dir("cli-folded");
    let mut model = Model::load(fixture("yolov8_c2f_dfl.onnx")).unwrap();
    let folded = thermalzsq::zsq::quantize::fold_batch_norms(&mut model).unwrap();
    assert!(folded.folded > 0 && folded.kept.is_empty(), "{folded:?}");
    let path = dir.join("folded.onnx");
    model.save(&path).unwrap();
    let out = dir.join("int8.onnx");
    let report = dir.join("r.json");
    let args = [
        "quantize",
        path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    let (ok, stdout, stderr) = zsq(&args, &dir.join("xdg"));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(
            "calibration: synth, 100 generated scenes (seed 0, 640x512) (auto: the model has no \
             BatchNormalization layers)"
        ),
        "{stderr}"
    );
    assert!(
        stdout.contains("100 generated scenes (synth, seed 0)"),
        "{stdout}"
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["settings"]["source"], "synth");
    assert_eq!(r["calibration"]["source"], "synth");
    assert_eq!(r["calibration"]["images"], 100);
    for o in r["check"]["outputs"].as_array().unwrap() {
        assert!(o["cosine"].as_f64().unwrap() >= 0.99, "{o}");
    }
    let q = Model::load(&out).unwrap();
    load_session_from_memory(&q.to_bytes(), &ProviderOptions::default()).unwrap();

    // The same model with its BN layers calibrates on scenes when asked to.
    let out = dir.join("bn-synth.onnx");
    let bn = fixture("yolov8_c2f_dfl.onnx");
    let (ok, stdout, stderr) = zsq(
        &[
            "quantize",
            bn.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--calibration",
            "synth",
            "--synth-count",
            "4",
            "--synth-seed",
            "9",
            "--synth-size",
            "input",
        ],
        &dir.join("xdg"),
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("calibration: synth, 4 generated scenes (seed 9, input)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("4 generated scenes (synth, seed 9)"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
