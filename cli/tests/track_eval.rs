//! `zsq eval --tracks` as a user runs it: the binary on the committed py-motmetrics
//! fixtures (tests/fixtures/mot/, made by tools/fixtures/mot_eval_fixtures.py), the
//! tracker's output read both as MOTChallenge rows and as thermaltrack JSON lines, and
//! the `gt.txt` that `zsq synth --recording` writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

/// Agreement with py-motmetrics on the same rows: the same sums in another order, so
/// equal but for rounding (measured: within 1e-15).
const TOLERANCE: f64 = 1e-12;
/// Boxes that went through thermaltrack's JSON lines are f32 (24-bit mantissa): MOTP,
/// an IoU average, moves by ~1e-8 (measured 7e-9 on `random`); counts stay exact.
const F32_TOLERANCE: f64 = 1e-6;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mot")
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".expected.json").map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-track-eval-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn zsq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zsq"))
        .args(args)
        .output()
        .unwrap()
}

/// `zsq eval --tracks GT TRACKS --json`, parsed.
fn eval_json(gt: &Path, tracks: &Path) -> Value {
    let out = zsq(&[
        "eval",
        "--tracks",
        gt.to_str().unwrap(),
        tracks.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "zsq eval --tracks {}: {}",
        tracks.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Metrics on which `ours` and motmetrics' `expected` differ by more than `tolerance`
/// (`null` stands for a NaN on both sides).
fn disagreements(name: &str, ours: &Value, expected: &Value, tolerance: f64) -> Vec<String> {
    let expected = expected.as_object().unwrap();
    let mut errors = Vec::new();
    for (metric, theirs) in expected.iter().filter(|(k, _)| *k != "motmetrics") {
        let value = &ours[metric];
        let agree = match (value.as_f64(), theirs.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= tolerance,
            _ => value.is_null() && theirs.is_null(),
        };
        if !agree {
            errors.push(format!("{name}: {metric} = {value} vs motmetrics {theirs}"));
        }
    }
    assert_eq!(
        ours.as_object().unwrap().len(),
        expected.len() - 1,
        "{name}: the JSON has every metric motmetrics computed"
    );
    errors
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir().join(format!("{name}.expected.json")));
    serde_json::from_str(&text.unwrap()).unwrap()
}

/// MOTChallenge hypothesis rows rewritten as the JSON lines thermaltrack writes: MOT
/// frame F is element frame F − 1, `[x, y, w, h]` from 1 becomes `[x0, y0, x1, y1]`
/// from 0; every frame up to the last gets a line, empty ones included, as the element
/// writes them.
fn as_thermaltrack_lines(hyp: &str) -> String {
    let rows: Vec<Vec<f64>> = hyp
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|f| f.trim().parse().unwrap()).collect())
        .collect();
    let last = rows.iter().map(|r| r[0] as u64).max().unwrap_or(0);
    let mut text = String::new();
    for frame in 1..=last {
        let tracks: Vec<Value> = rows
            .iter()
            .filter(|r| r[0] as u64 == frame)
            .map(|r| {
                let (x0, y0) = (r[2] - 1.0, r[3] - 1.0);
                json!({"id": r[1] as u64, "label": "person", "class_id": 0,
                       "confidence": 0.9, "box": [x0, y0, x0 + r[4], y0 + r[5]], "age": 1})
            })
            .collect();
        let line = json!({"frame": frame - 1, "pts": null, "tracks": tracks, "events": []});
        text.push_str(&format!("{line}\n"));
    }
    text
}

#[test]
fn every_fixture_scores_as_py_motmetrics_scores_it() {
    let names = fixture_names();
    assert!(names.len() >= 10, "fixtures missing: {names:?}");
    let dir = fixture_dir();
    let mut errors = Vec::new();
    for name in &names {
        let ours = eval_json(
            &dir.join(format!("{name}.gt.txt")),
            &dir.join(format!("{name}.hyp.txt")),
        );
        errors.extend(disagreements(name, &ours, &expected(name), TOLERANCE));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn thermaltrack_json_lines_score_as_the_same_rows_in_mot_format() {
    let dir = fixture_dir();
    let work = workdir("jsonl");
    let mut errors = Vec::new();
    for name in fixture_names() {
        // Boxes pass through f32 as the element writes them: the real-valued rows of
        // `random` lose a few ulps (F32_TOLERANCE).
        let hyp = std::fs::read_to_string(dir.join(format!("{name}.hyp.txt"))).unwrap();
        let tracks = work.join(format!("{name}.jsonl"));
        std::fs::write(&tracks, as_thermaltrack_lines(&hyp)).unwrap();
        let ours = eval_json(&dir.join(format!("{name}.gt.txt")), &tracks);
        errors.extend(disagreements(&name, &ours, &expected(&name), F32_TOLERANCE));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_text_report_names_each_metric_with_its_value() {
    let dir = fixture_dir();
    let out = zsq(&[
        "eval",
        "--tracks",
        dir.join("crossing.gt.txt").to_str().unwrap(),
        dir.join("crossing.hyp.txt").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // motmetrics: MOTA 0.95, IDF1 0.55, 2 switches, both objects mostly tracked.
    for line in [
        "MOTA      0.9500",
        "IDF1      0.5500",
        "ID switches       2",
        "mostly tracked    2 / partially 0 / mostly lost 0 (of 2 objects)",
    ] {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
}

#[test]
fn unreadable_tracks_are_an_error_that_names_the_file_and_line() {
    let work = workdir("bad");
    let tracks = work.join("tracks.jsonl");
    std::fs::write(
        &tracks,
        "{\"frame\":0,\"pts\":null,\"tracks\":[],\"events\":[]}\n{\"frame\":1}\n",
    )
    .unwrap();
    let gt = fixture_dir().join("crossing.gt.txt");
    let out = zsq(&[
        "eval",
        "--tracks",
        gt.to_str().unwrap(),
        tracks.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tracks.jsonl") && err.contains("line 2") && err.contains("thermaltrack"),
        "{err}"
    );
}

#[test]
fn synth_recording_ground_truth_matches_its_labels_and_scores_itself_perfectly() {
    let work = workdir("synth");
    let out = zsq(&[
        "synth",
        "--out",
        work.to_str().unwrap(),
        "--scenes",
        "0",
        "--seed",
        "101",
        "--size",
        "320x256",
        "--recording",
        "30",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gt_path = work.join("gt.txt");
    let gt = std::fs::read_to_string(&gt_path).unwrap();
    let coco: Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("recording.json")).unwrap())
            .unwrap();

    // Row for row the recording's COCO labels: frame = image id + 1, corner from 1.
    let rows: Vec<Vec<f64>> = gt
        .lines()
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    let annotations = coco["annotations"].as_array().unwrap();
    assert!(!annotations.is_empty());
    assert_eq!(rows.len(), annotations.len());
    for (row, a) in rows.iter().zip(annotations) {
        let b: Vec<f64> = a["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(row.len(), 9, "{row:?}");
        assert_eq!(row[0], a["image_id"].as_f64().unwrap() + 1.0);
        assert_eq!(&row[2..6], &[b[0] + 1.0, b[1] + 1.0, b[2], b[3]]);
        assert_eq!((row[6], row[7]), (1.0, a["category_id"].as_f64().unwrap()));
        assert!((0.4..=1.0).contains(&row[8]), "visibility {}", row[8]);
    }
    // Ids count from 1 in order of first appearance, once per frame.
    let mut seen = 0.0;
    for row in &rows {
        assert!(
            row[1] <= seen + 1.0,
            "id {} before id {}",
            row[1],
            seen + 1.0
        );
        seen = f64::max(seen, row[1]);
    }
    let mut keys: Vec<(u64, u64)> = rows.iter().map(|r| (r[0] as u64, r[1] as u64)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), rows.len(), "an id twice on one frame");

    let perfect = eval_json(&gt_path, &gt_path);
    assert_eq!(perfect["mota"], 1.0);
    assert_eq!(perfect["idf1"], 1.0);
    assert_eq!(perfect["num_switches"], 0);
    assert_eq!(perfect["num_objects"], rows.len());
}
