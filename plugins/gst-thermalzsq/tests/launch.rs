//! `gst-launch-1.0` over a raw GRAY16_LE recording, the way users replay thermal video:
//! the built plugin is loaded from the target directory like any installed plugin.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{plugin_dir, target_dir};

fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-launch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gst_launch_with(args: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = workdir();
    // A hung pipeline fails the test instead of hanging it (coreutils' timeout).
    Command::new("timeout")
        .args(["120", "gst-launch-1.0", "-q", "-e"])
        .args(args.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .envs(env.iter().copied())
        .output()
        .expect("gst-launch-1.0 runs (apt install gstreamer1.0-tools)")
}

fn gst_launch(args: &str) -> std::process::Output {
    gst_launch_with(args, &[])
}

/// 30 raw 640x512 GRAY16_LE frames (centikelvin): a 293 K background, a 310 K square
/// walking right one grid cell (64 px) every 10 frames, a 280 K square standing still.
fn write_recording(path: &std::path::Path) {
    let (w, h) = (640usize, 512usize);
    let mut bytes = Vec::with_capacity(30 * w * h * 2);
    for f in 0..30usize {
        let hot_x = 64 + 64 * (f / 10);
        for y in 0..h {
            for x in 0..w {
                let k: u16 = if (hot_x..hot_x + 64).contains(&x) && (128..192).contains(&y) {
                    31_000
                } else if (448..512).contains(&x) && (320..384).contains(&y) {
                    28_000
                } else {
                    29_300
                };
                bytes.extend_from_slice(&k.to_le_bytes());
            }
        }
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn replaying_a_gray16_recording_writes_sensible_json() {
    let dir = workdir();
    let (rec, json) = (dir.join("rec.gray16le"), dir.join("dets.json"));
    write_recording(&rec);
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models/hotspot_v8.onnx");
    let out = gst_launch(&format!(
        "filesrc location={} ! rawvideoparse format=gray16-le width=640 height=512 framerate=30/1 \
         ! thermaldetect model={} json-location={} ! fakesink",
        rec.display(),
        model.display(),
        json.display()
    ));
    assert!(
        out.status.success(),
        "gst-launch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 30, "one line per frame");
    for (f, line) in lines.iter().enumerate() {
        assert_eq!(line["frame"], f as u64);
        let pts = line["pts"].as_i64().unwrap();
        assert!(
            (pts - f as i64 * 1_000_000_000 / 30).abs() < 1000,
            "frame {f}: pts {pts}"
        );
        let dets = line["detections"].as_array().unwrap();
        assert_eq!(dets.len(), 2, "frame {f}: {dets:?}");
        let hot = dets.iter().find(|d| d["label"] == "hot").unwrap();
        let x0 = 64.0 + 64.0 * (f / 10) as f64;
        assert_eq!(
            hot["box"],
            serde_json::json!([x0, 128.0, x0 + 64.0, 192.0]),
            "frame {f}: the hot square walks"
        );
        let cold = dets.iter().find(|d| d["label"] == "cold").unwrap();
        assert_eq!(cold["box"], serde_json::json!([448.0, 320.0, 512.0, 384.0]));
    }
}

#[test]
fn a_missing_model_fails_the_pipeline_with_its_name() {
    let out = gst_launch(
        "videotestsrc num-buffers=1 ! thermaldetect model=/nonexistent/m.onnx ! fakesink",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read model /nonexistent/m.onnx"),
        "{stderr}"
    );
}

#[test]
fn onnx_runtime_logs_into_its_debug_category() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models/hotspot_v8.onnx");
    let out = gst_launch_with(
        &format!(
            "videotestsrc num-buffers=1 ! thermaldetect model={} ! fakesink",
            model.display()
        ),
        &[
            ("GST_DEBUG", "thermalzsq-ort:6"),
            ("GST_DEBUG_NO_COLOR", "1"),
        ],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ort_lines = stderr
        .lines()
        .filter(|l| l.contains("thermalzsq-ort"))
        .count();
    assert!(ort_lines > 0, "no ONNX Runtime log lines in: {stderr}");
}

/// The embedding example (examples/alerts.rs), which a plain `cargo test` builds next
/// to the tests (`cargo test --test launch` alone does not).
fn alerts_example() -> PathBuf {
    let path = target_dir().join("examples/alerts");
    assert!(
        path.exists(),
        "{} missing: run `cargo test` without --test filters",
        path.display()
    );
    path
}

#[test]
fn the_embedding_example_alerts_when_an_object_stays_in_the_zone() {
    let dir = workdir();
    let rec = dir.join("alerts.gray16le");
    // The hot square sits in x 64..256 over 30 frames (1 s), jumping its own width
    // every 10 frames: the tracker sees three visits of 1/3 s each.
    write_recording(&rec);
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models/hotspot_v8.onnx");
    let run = |seconds: &str| {
        Command::new("timeout")
            .arg("120")
            .arg(alerts_example())
            .args([
                "--model",
                model.to_str().unwrap(),
                "--label",
                "hot",
                "--zone",
                "0,100,400,220",
                "--seconds",
                seconds,
            ])
            .arg(&rec)
            .env("GST_PLUGIN_PATH", plugin_dir())
            .env("GST_REGISTRY", dir.join("registry-alerts.bin"))
            .output()
            .unwrap()
    };
    let out = run("0.2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("hot 1 entered zone watched"), "{stdout}");
    assert!(
        stdout.contains("hot 1 loitered 0.2 s in zone watched"),
        "{stdout}"
    );
    let out = run("5");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("entered") && !stdout.contains("loitered"),
        "1 s of recording never reaches 5 s: {stdout}"
    );
}
