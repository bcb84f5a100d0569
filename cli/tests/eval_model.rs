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

/// A copy of the test detector without (or with a broken) `names` metadata.
fn model_with_names(dir: &Path, names: Option<&str>) -> PathBuf {
    let mut m = thermalzsq::onnx::Model::load(fixture_model()).unwrap();
    m.proto.metadata_props.retain(|e| e.key() != "names");
    if let Some(names) = names {
        m.set_metadata("names", names);
    }
    let path = dir.join(format!("hotspot-{}.onnx", names.map_or(0, str::len)));
    m.save(&path).unwrap();
    path
}

/// The dataset's annotations with the cold squares as category `cold` (id 2) too.
fn with_cold(dir: &Path) -> PathBuf {
    let mut gt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("annotations.json")).unwrap()).unwrap();
    for i in 0..3 {
        gt["annotations"].as_array_mut().unwrap().push(serde_json::json!({"id": 10 + i, "image_id": i, "category_id": 2, "bbox": [448.0, 320.0, 64.0, 64.0], "area": 4096.0, "iscrowd": 0}));
    }
    gt["categories"] = serde_json::json!([{"id": 1, "name": "hot"}, {"id": 2, "name": "cold"}]);
    let path = dir.join("hot-cold.json");
    std::fs::write(&path, gt.to_string()).unwrap();
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_model_without_names_is_scored_by_order_with_a_warning_or_refused_with_the_fix() {
    let dir = std::env::temp_dir().join(format!("tzsq-evalnames-{}", std::process::id()));
    let hot_only = dataset(&dir, false);
    let hot_cold = with_cold(&dir);
    let unnamed = model_with_names(&dir, None);
    let json = || ["--json".as_ref()];

    let named = zsq_eval(&hot_cold, &fixture_model(), &dir, &json());
    succeeded(&named);
    assert!(!stderr(&named).contains("warning"), "{}", stderr(&named));
    let by_order = zsq_eval(&hot_cold, &unnamed, &dir, &json());
    succeeded(&by_order);
    assert!(
        stderr(&by_order).contains(
            "zsq: warning: the model names none of its 2 classes: scored by order as the annotations' categories, class 0 -> hot, class 1 -> cold"
        ),
        "{}",
        stderr(&by_order)
    );
    assert_eq!(by_order.stdout, named.stdout, "the same score");
    let v: serde_json::Value = serde_json::from_slice(&named.stdout).unwrap();
    assert_eq!(v["map"], 1.0, "{v}");

    // one category for two unnamed classes: no guess
    let out = zsq_eval(&hot_only, &unnamed, &dir, &json());
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with(
            "zsq: error: the model names none of its 2 classes and the annotations have 1 categories (hot), so classes cannot be matched by name or by order: give a labels file"
        ),
        "{}",
        stderr(&out)
    );
    // --labels names them
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "hot\ncold\n").unwrap();
    let out = zsq_eval(
        &hot_only,
        &unnamed,
        &dir,
        &["--labels".as_ref(), labels.as_os_str(), "--json".as_ref()],
    );
    succeeded(&out);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["map"], 1.0, "{v}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn json_lines_of_an_unnamed_model_score_with_labels_as_the_model_does() {
    let dir = std::env::temp_dir().join(format!("tzsq-evallines-{}", std::process::id()));
    dataset(&dir, false);
    let hot_cold = with_cold(&dir);
    // what thermaldetect writes for the unnamed test detector: its boxes, "class N"
    let lines: String = (0..3)
        .map(|i| {
            let x0 = 64.0 * (2 + i) as f64;
            format!(
                "{}\n",
                serde_json::json!({"frame": i, "pts": i * 33_333_333, "model": "hotspot.onnx", "detections": [
                    {"label": "class 0", "class_id": 0, "confidence": 0.9, "box": [x0, 64.0, x0 + 64.0, 128.0]},
                    {"label": "class 1", "class_id": 1, "confidence": 0.8, "box": [448.0, 320.0, 512.0, 384.0]}]})
            )
        })
        .collect();
    let jsonl = dir.join("dets.jsonl");
    std::fs::write(&jsonl, lines).unwrap();
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "hot\ncold\n").unwrap();
    let detections = |extra: &[&OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_zsq"))
            .args(["eval", "--coco"])
            .arg(&hot_cold)
            .arg("--detections")
            .arg(&jsonl)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = detections(&["--labels".as_ref(), labels.as_os_str(), "--json".as_ref()]);
    succeeded(&out);
    let from_lines: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let model = zsq_eval(&hot_cold, &fixture_model(), &dir, &["--json".as_ref()]);
    succeeded(&model);
    let from_model: serde_json::Value = serde_json::from_slice(&model.stdout).unwrap();
    assert_eq!(from_lines["map"], 1.0, "{from_lines}");
    assert_eq!(from_lines["per_class"], from_model["per_class"]);

    let out = detections(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the detections name no class")
            && stderr(&out).contains("--labels FILE"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn names_metadata_that_does_not_read_is_a_one_line_error_and_labels_replace_it() {
    let dir = std::env::temp_dir().join(format!("tzsq-evalbadnames-{}", std::process::id()));
    let gt = dataset(&dir, false);
    let broken = model_with_names(&dir, Some("{0: 'hot', 1: cold}"));
    let out = zsq_eval(&gt, &broken, &dir, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "zsq: error: model {}: model metadata `names` does not read: unexpected `c` at character 15 where a value should be; expected class names as a dict",
            broken.display()
        )),
        "{err}"
    );
    let inspect = Command::new(env!("CARGO_BIN_EXE_zsq"))
        .arg("inspect")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!inspect.status.success());
    assert!(
        stderr(&inspect).contains("`names` does not read"),
        "{}",
        stderr(&inspect)
    );

    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "hot\ncold\n").unwrap();
    let out = zsq_eval(
        &gt,
        &broken,
        &dir,
        &["--labels".as_ref(), labels.as_os_str()],
    );
    succeeded(&out);

    // what inspect shows of the metadata the bundled detector carries
    let inspect = Command::new(env!("CARGO_BIN_EXE_zsq"))
        .arg("inspect")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/det_thermal_ft.onnx"))
        .output()
        .unwrap();
    succeeded(&inspect);
    let text = String::from_utf8_lossy(&inspect.stdout);
    for line in [
        "classes:  person, car, bicycle",
        "task:     detect",
        "imgsz:    320x320 (height x width, as exported)",
        "stride:   32",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}: {text}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
