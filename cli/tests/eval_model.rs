//! `zsq eval --model`: a detector run over a PNG dataset and scored, through the real
//! binary. The hot/cold test detector boxes grid cells exactly, so a dataset whose hot
//! squares sit on cells scores mAP 1.0, and one with a wrong box scores less.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dataset(dir: &Path, shift_last: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let (w, h) = (640usize, 512usize);
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    for i in 0..3usize {
        // hot square on the grid cell at frame (64·(2+i) .., 64 ..), 16-bit PNG (centikelvin)
        let x0 = 64 * (2 + i);
        let mut counts = vec![29_300u16; w * h];
        for y in 64..128 {
            for x in x0..x0 + 64 {
                counts[y * w + x] = 31_000;
            }
        }
        for y in 320..384 {
            for x in 448..512 {
                counts[y * w + x] = 28_000;
            }
        }
        let name = format!("{i:06}.png");
        let file = std::fs::File::create(dir.join(&name)).unwrap();
        let mut enc = png::Encoder::new(file, w as u32, h as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Sixteen);
        let bytes: Vec<u8> = counts.iter().flat_map(|v| v.to_be_bytes()).collect();
        enc.write_header()
            .unwrap()
            .write_image_data(&bytes)
            .unwrap();
        images.push(serde_json::json!({"id": i, "file_name": name, "width": w, "height": h}));
        let gx = if shift_last && i == 2 {
            x0 as f64 + 40.0
        } else {
            x0 as f64
        };
        annotations.push(serde_json::json!({"id": i + 1, "image_id": i, "category_id": 1, "bbox": [gx, 64.0, 64.0, 64.0], "area": 4096.0, "iscrowd": 0}));
    }
    let gt = serde_json::json!({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "hot"}]});
    let path = dir.join("annotations.json");
    std::fs::write(&path, gt.to_string()).unwrap();
    path
}

fn fixture_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/hotspot_v8.onnx")
}

/// `zsq eval --coco GT --model MODEL --images DIR` and `extra` arguments.
fn zsq_eval(gt: &Path, model: &Path, images: &Path, extra: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zsq"))
        .args(["eval", "--coco"])
        .arg(gt)
        .arg("--model")
        .arg(model)
        .arg("--images")
        .arg(images)
        .args(extra)
        .output()
        .unwrap()
}

fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn eval(gt: &Path, images: &Path) -> serde_json::Value {
    let out = zsq_eval(gt, &fixture_model(), images, &["--json".as_ref()]);
    succeeded(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_detector_scored_over_png_images() {
    let dir = std::env::temp_dir().join(format!("tzsq-evalmodel-{}", std::process::id()));
    let exact = eval(&dataset(&dir.join("exact"), false), &dir.join("exact"));
    assert_eq!(exact["map"], 1.0, "{exact}");
    // pycocotools' whole summary: the 64x64 squares are medium, so small and large have
    // no ground truth (-1, as pycocotools prints)
    for key in [
        "map50",
        "map75",
        "map_medium",
        "ar1",
        "ar10",
        "ar100",
        "ar_medium",
    ] {
        assert_eq!(exact[key], 1.0, "{key}: {exact}");
    }
    for key in ["map_small", "map_large", "ar_small", "ar_large"] {
        assert_eq!(exact[key], -1.0, "{key}: {exact}");
    }
    // the `cold` class of the model is not in the dataset: ignored
    let shifted = eval(&dataset(&dir.join("shifted"), true), &dir.join("shifted"));
    let map = shifted["map"].as_f64().unwrap();
    assert!(map < 0.95 && map > 0.5, "{shifted}");

    // text: our line, then pycocotools' twelve lines as it prints them
    let exact_gt = dir.join("exact/annotations.json");
    let out = zsq_eval(&exact_gt, &fixture_model(), &dir.join("exact"), &[]);
    succeeded(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "mAP50-95=1.0000 mAP50=1.0000", "{text}");
    assert_eq!(
        lines[1],
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000"
    );
    assert_eq!(
        lines[12],
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000"
    );

    // --draw: the images with ground truth (magenta) and detections.
    let figures = dir.join("figures");
    let exact_dir = dir.join("exact");
    let out = zsq_eval(
        &exact_dir.join("annotations.json"),
        &fixture_model(),
        &exact_dir,
        &["--draw".as_ref(), figures.as_os_str()],
    );
    succeeded(&out);
    let figure = thermalzsq::imaging::image::read_png(&figures.join("000001.png")).unwrap();
    assert_eq!((figure.width, figure.height), (640, 512));
    let magenta = figure
        .data
        .chunks_exact(3)
        .filter(|p| p == &[255, 0, 255])
        .count();
    assert!(magenta > 100, "ground-truth box drawn: {magenta} px");

    let out = zsq_eval(
        &exact_dir.join("annotations.json"),
        Path::new("/nonexistent.onnx"),
        &exact_dir,
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("zsq: error: cannot read model /nonexistent.onnx"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_temperature_gate_is_scored_at_an_operating_point() {
    // The hot squares are 31,000 centikelvin: 36.85 °C.
    let dir = std::env::temp_dir().join(format!("tzsq-evalgate-{}", std::process::id()));
    let gt = dataset(&dir, false);
    let run = |gate: &str| {
        let mut args: Vec<&OsStr> = ["--radiometry", "centikelvin", "--score-threshold", "0.25"]
            .map(OsStr::new)
            .to_vec();
        if !gate.is_empty() {
            args.extend([OsStr::new("--temperature-gate"), OsStr::new(gate)]);
        }
        args.push(OsStr::new("--json"));
        let out = zsq_eval(&gt, &fixture_model(), &dir, &args);
        succeeded(&out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    for (gate, found) in [("", 3), ("hot:30-40", 3), ("hot:40-50,cold:-10-0", 0)] {
        let v = run(gate);
        let p = &v["operating_point"];
        assert_eq!(p["true_positives"], found, "{gate}: {v}");
        assert_eq!(p["false_positives"], 0, "{gate}: {v}");
        assert_eq!(p["ground_truth"], 3, "{gate}: {v}");
        assert_eq!(p["recall"], found as f64 / 3.0, "{gate}: {v}");
        assert_eq!(v["map"], if found == 3 { 1.0 } else { 0.0 }, "{gate}: {v}");
    }

    // text: the operating point last, after pycocotools' lines and the classes
    let out = zsq_eval(
        &gt,
        &fixture_model(),
        &dir,
        &["--score-threshold".as_ref(), "0.25".as_ref()],
    );
    succeeded(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().last(),
        Some(
            "at score >= 0.25, IoU 0.50: precision 1.0000 recall 1.0000 (3 true positives, 0 false positives, 3 objects)"
        ),
        "{text}"
    );

    for (args, says) in [
        (
            &[
                "--radiometry",
                "centikelvin",
                "--temperature-gate",
                "hot:40-30",
            ][..],
            "temperature-gate: `hot:40-30`: the low end 40 is above the high end 30",
        ),
        (
            &["--radiometry", "kelvin"][..],
            "unknown radiometry `kelvin`",
        ),
        (&["--temperature-gate", "hot:30-40"][..], "--radiometry"),
    ] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = zsq_eval(&gt, &fixture_model(), &dir, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
