//! `thermalzsq::eval::evaluate_mot` against py-motmetrics 1.4.0: every committed fixture
//! (made by tools/fixtures/mot_eval_fixtures.py) must agree on every metric but for rounding,
//! and the assignment must pick the pairs py-motmetrics' scipy solver picks.

use std::path::{Path, PathBuf};

use serde_json::Value;
use thermalzsq::eval::{MotSummary, evaluate_mot, parse_mot_ground_truth, parse_mot_hypotheses};
use thermalzsq::track::assign::assign;

const TOLERANCE: f64 = 1e-12;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mot")
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

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(name)).unwrap()
}

fn evaluate_fixture(name: &str) -> MotSummary {
    let gt = parse_mot_ground_truth(&read(&format!("{name}.gt.txt"))).unwrap();
    let hyp = parse_mot_hypotheses(&read(&format!("{name}.hyp.txt"))).unwrap();
    evaluate_mot(&gt, &hyp).unwrap()
}

/// Differences between our summary and motmetrics' (`null` there is a NaN or an
/// infinity, which JSON cannot hold).
fn disagreements(name: &str, ours: &MotSummary, expected: &Value) -> Vec<String> {
    let ours = serde_json::to_value(ours).unwrap();
    let ours = ours.as_object().unwrap();
    let mut errors = Vec::new();
    for (metric, value) in ours {
        let theirs = &expected[metric];
        let agree = match (value.as_f64(), theirs.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= TOLERANCE,
            (None, None) => value.is_null() && theirs.is_null(),
            _ => false,
        };
        if !agree {
            errors.push(format!("{name}: {metric} = {value} vs motmetrics {theirs}"));
        }
    }
    let expected_metrics = expected.as_object().unwrap().len() - 1; // less "motmetrics"
    assert_eq!(ours.len(), expected_metrics, "{name}: metric count");
    errors
}

#[test]
fn agrees_with_motmetrics_on_every_fixture() {
    let names = fixture_names();
    assert!(names.len() >= 10, "fixtures missing: {names:?}");
    let mut errors = Vec::new();
    for name in &names {
        let expected: Value =
            serde_json::from_str(&read(&format!("{name}.expected.json"))).unwrap();
        errors.extend(disagreements(name, &evaluate_fixture(name), &expected));
    }
    assert!(
        errors.is_empty(),
        "disagreements with py-motmetrics:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_fixtures_cover_the_cases_they_are_named_after() {
    let m = evaluate_fixture("id_switch");
    assert_eq!(
        (m.num_switches, m.num_misses, m.num_false_positives),
        (1, 0, 0)
    );
    let m = evaluate_fixture("fragmentation");
    assert_eq!(m.num_fragmentations, 2);
    let m = evaluate_fixture("crossing");
    assert_eq!(m.num_switches, 2);
    let m = evaluate_fixture("never_matched");
    assert_eq!(
        (m.mostly_tracked, m.partially_tracked, m.mostly_lost),
        (1, 2, 1)
    );
    let m = evaluate_fixture("empty_frames");
    assert_eq!(
        (m.num_frames, m.num_misses, m.num_false_positives),
        (6, 1, 1)
    );
}

#[test]
fn picks_the_pairs_motmetrics_picks_on_tied_and_forbidden_costs() {
    let fixture: Value = serde_json::from_str(&read("assignments.json")).unwrap();
    let problems = fixture["problems"].as_array().unwrap();
    assert!(problems.len() >= 100);
    for p in problems {
        let cost: Vec<Vec<f64>> = p["cost"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let row = row.as_array().unwrap();
                row.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect()
            })
            .collect();
        let expected: Vec<(usize, usize)> = p["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                let pair = pair.as_array().unwrap();
                (
                    pair[0].as_u64().unwrap() as usize,
                    pair[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(assign(&cost, f64::INFINITY), expected, "cost {cost:?}");
    }
}

#[test]
fn ground_truth_rows_flagged_zero_are_ignored_and_boxes_become_zero_based() {
    let gt = parse_mot_ground_truth("1,1,11,21,30,40,1,1,1.0\n1,2,50,50,10,10,0,1,1\n").unwrap();
    assert_eq!(gt.len(), 1);
    assert_eq!((gt[0].frame, gt[0].id), (1, 1));
    assert_eq!(gt[0].bbox, [10.0, 20.0, 30.0, 40.0]);
}

#[test]
fn hypotheses_may_have_six_columns_and_white_space_separators() {
    let hyp =
        parse_mot_hypotheses("3 7 1.5 2.5 10 20\n\n4, 7, 1, 1, 5, 5, 0.9, -1, -1, -1\n").unwrap();
    assert_eq!(hyp.len(), 2);
    assert_eq!(hyp[0].bbox, [0.5, 1.5, 10.0, 20.0]);
    assert_eq!((hyp[1].frame, hyp[1].id), (4, 7));
}

#[test]
fn malformed_rows_are_reported_with_their_line() {
    let err = parse_mot_ground_truth("1,1,0,0,10,10,1\n2,1,0,0,10,10\n").unwrap_err();
    assert!(err.0.contains("line 2"), "{err}");
    let err = parse_mot_hypotheses("1,1.5,0,0,10,10\n").unwrap_err();
    assert!(err.0.contains("id 1.5"), "{err}");
    let err = parse_mot_hypotheses("1,1,0,nan,10,10\n").unwrap_err();
    assert!(err.0.contains("finite"), "{err}");
}

#[test]
fn an_id_twice_on_one_frame_is_an_error() {
    let gt = parse_mot_ground_truth("1,1,0,0,10,10,1\n").unwrap();
    let hyp = parse_mot_hypotheses("1,4,0,0,10,10\n1,4,20,0,10,10\n").unwrap();
    let err = evaluate_mot(&gt, &hyp).unwrap_err();
    assert!(err.0.contains("id 4 appears twice on frame 1"), "{err}");
}
