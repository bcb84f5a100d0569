//! `thermalzsq::eval` against pycocotools: every committed fixture (made by
//! tools/fixtures/coco_eval_fixtures.py) must agree on all twelve numbers of pycocotools'
//! summary (as `--json` keys, -1 where pycocotools prints -1), on the twelve lines it
//! prints, and per class. Equal to the last bit: the engine sums in numpy's pairwise
//! order (a plain sum differed by up to 1e-14 and flipped a printed third decimal).

use std::path::{Path, PathBuf};

use serde_json::Value;
use thermalzsq::eval::{CocoGt, EvalResult, evaluate, load_detections, parse_detections};

/// Bit for bit; if a platform ever rounds differently, 1e-12 is the bar to fall back to.
const TOLERANCE: f64 = 0.0;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval")
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".expected.json").map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn close(ours: Option<f64>, theirs: &Value) -> bool {
    let theirs = theirs.as_f64().expect("expected value is a number");
    match ours {
        None => theirs == -1.0,
        Some(v) => (v - theirs).abs() <= TOLERANCE,
    }
}

/// pycocotools' `stats`, under the keys of `zsq eval --json`.
const STAT_KEYS: [&str; 12] = [
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
];

fn check(name: &str, result: &EvalResult, expected: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let json = result.to_json();
    for key in STAT_KEYS {
        let ours = json[key].as_f64().filter(|v| *v != -1.0);
        if json[key].is_null() || !close(ours, &expected[key]) {
            errors.push(format!(
                "{name}: {key} {} vs pycocotools {}",
                json[key], expected[key]
            ));
        }
    }
    // Text: pycocotools' twelve lines, character for character, after our first line.
    let text = result.to_string();
    let ours: Vec<&str> = text.lines().skip(1).take(12).collect();
    let printed: Vec<&str> = expected["printed"]
        .as_array()
        .expect("printed lines")
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    if ours != printed {
        errors.push(format!(
            "{name}: printed\n{}\nvs pycocotools\n{}",
            ours.join("\n"),
            printed.join("\n")
        ));
    }
    let classes = expected["per_class"].as_object().expect("per_class object");
    assert_eq!(classes.len(), result.per_class.len(), "{name}: class count");
    for c in &result.per_class {
        let e = &classes[&c.name];
        if !close(c.ap, &e["ap"]) || !close(c.ap50, &e["ap50"]) {
            errors.push(format!(
                "{name}/{}: AP {:?} AP50 {:?} vs pycocotools {} {}",
                c.name, c.ap, c.ap50, e["ap"], e["ap50"]
            ));
        }
    }
    errors
}

#[test]
fn agrees_with_pycocotools_on_every_fixture() {
    let names = fixture_names();
    assert!(names.len() >= 11, "fixtures missing: {names:?}");
    let mut errors = Vec::new();
    for name in &names {
        let dir = fixture_dir();
        let gt = CocoGt::from_file(&dir.join(format!("{name}.gt.json"))).unwrap();
        let dets = load_detections(&dir.join(format!("{name}.dt.json"))).unwrap();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        let result = evaluate(&gt, &dets).unwrap();
        errors.extend(check(name, &result, &expected));
    }
    assert!(
        errors.is_empty(),
        "disagreements with pycocotools:\n{}",
        errors.join("\n")
    );
}

fn small_gt() -> CocoGt {
    CocoGt::from_json(
        r#"{"images":[{"id":1,"file_name":"a.png","width":64,"height":64}],
            "categories":[{"id":1,"name":"person"},{"id":2,"name":"car"}],
            "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,10,20],"area":200,"iscrowd":0}]}"#,
    )
    .unwrap()
}

#[test]
fn no_detections_at_all_give_zero_ap() {
    // pycocotools cannot load an empty results file; an empty list is simply a detector
    // that found nothing: AP 0 for classes with ground truth, undefined for the others.
    let result = evaluate(&small_gt(), &[]).unwrap();
    assert_eq!(result.map, Some(0.0));
    assert_eq!(result.per_class[1].ap, None);
}

#[test]
fn perfect_detection_gives_one() {
    let dets =
        parse_detections(r#"[{"image_id":1,"category_id":1,"bbox":[0,0,10,20],"score":0.5}]"#)
            .unwrap();
    let result = evaluate(&small_gt(), &dets).unwrap();
    // Precision is tp / (tp + fp + eps), as in pycocotools: one ulp under 1.
    assert!((result.map.unwrap() - 1.0).abs() < 1e-12);
    assert!((result.map50.unwrap() - 1.0).abs() < 1e-12);
    let json = result.to_json();
    assert!((json["per_class"]["person"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(json["per_class"]["car"], -1.0);
    assert!(
        result
            .to_string()
            .starts_with("mAP50-95=1.0000 mAP50=1.0000\n")
    );
}

#[test]
fn detections_on_unknown_images_are_an_error() {
    let dets =
        parse_detections(r#"[{"image_id":9,"category_id":1,"bbox":[0,0,10,20],"score":0.5}]"#)
            .unwrap();
    let err = evaluate(&small_gt(), &dets).unwrap_err();
    assert!(err.0.contains("image ids"), "{err}");
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    assert!(CocoGt::from_json("{\"images\": 3}").is_err());
    assert!(parse_detections("[{\"image_id\": 1}]").is_err());
    assert!(CocoGt::from_file(Path::new("/nonexistent/gt.json")).is_err());
}

#[test]
fn a_labels_file_names_the_classes_of_json_lines_and_is_refused_for_coco_results() {
    use thermalzsq::eval::read_detections;
    let dir = std::env::temp_dir().join(format!("tzsq-eval-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut gt = small_gt();
    gt.images[0].file_name = "frame_000000".into();
    let labels = ["car".to_string(), "person".to_string()];

    let lines = dir.join("dets.jsonl");
    std::fs::write(
        &lines,
        r#"{"frame":0,"pts":0,"model":"m","detections":[{"label":"class 1","class_id":1,"confidence":0.5,"box":[0,0,10,20]}]}"#,
    )
    .unwrap();
    let dets = read_detections(&lines, &gt, Some(&labels)).unwrap();
    assert_eq!(dets.len(), 1);
    assert_eq!(dets[0].category_id, 1, "class 1 is a person");
    assert!((evaluate(&gt, &dets).unwrap().map.unwrap() - 1.0).abs() < 1e-12);

    let results = dir.join("dets.json");
    std::fs::write(
        &results,
        r#"[{"image_id":1,"category_id":1,"bbox":[0,0,10,20],"score":0.5}]"#,
    )
    .unwrap();
    let e = read_detections(&results, &gt, Some(&labels)).unwrap_err().0;
    assert!(
        e.contains("a labels file applies to thermaldetect JSON lines"),
        "{e}"
    );
    assert_eq!(read_detections(&results, &gt, None).unwrap().len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}
