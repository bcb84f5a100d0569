//! `zsq report` end to end on a small YOLOv8 fixture with a tiny plan: it writes the
//! Markdown table and the figures, and a rerun reads every measurement from the cache.

use std::path::Path;

use thermalzsq::runtime::ProviderOptions;
use thermalzsq::zsq::w4a8::W4a8Options;
use zsq::results::{Plan, ReportOptions, SynthSet, run_report};

#[test]
fn report_writes_the_table_and_figures_and_reruns_from_the_cache() {
    let dir = std::env::temp_dir().join(format!("thermalzsq-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/onnx/yolov8_scenes.onnx");
    let plan = Plan {
        eval: SynthSet { scenes: 3, seed: 2 },
        calib: SynthSet { scenes: 3, seed: 1 },
        calib_images: 3,
        size: (160, 128),
        seeds: vec![0, 1],
        batch: 2,
        iterations: 2,
        sweep: vec![0],
        w4a8: W4a8Options {
            iterations: 4,
            ..W4a8Options::default()
        },
        w4a8_real_images: 2,
        agreement_images: 2,
        latency_runs: 1,
        full: false,
    };
    let options = ReportOptions {
        models: vec![model],
        out: dir.join("out"),
        doc: dir.join("docs/results.md"),
        figures: dir.join("docs/results"),
        fresh: false,
        plan,
        provider: ProviderOptions {
            threads: 2,
            ..ProviderOptions::default()
        },
    };
    let mut lines = Vec::new();
    let first = run_report(&options, &mut |l| lines.push(l.to_string())).unwrap();
    assert_eq!(first.cached, 0);
    assert!(first.computed > 10, "{} measurements", first.computed);
    let m = &first.models[0];
    assert_eq!(m.zsq.len(), 5, "the main model gets every ablation");
    assert!(
        m.zsq.iter().all(|(_, r)| r.len() == 2),
        "one record per seed"
    );
    assert_eq!(m.w4a8.len(), 4);
    assert_eq!(m.sweep.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 2]);

    let md = std::fs::read_to_string(&options.doc).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| yolov8_scenes | thermal |"))
        .unwrap_or_else(|| panic!("a table row for the model: {md}"));
    assert_eq!(
        row.matches('±').count(),
        2 * 5,
        "mean±std of both mAPs per ablation: {row}"
    );
    assert!(md.contains("## Where zero-shot loses to real data"));
    for f in ["accuracy.png", "distilled.png", "steps.png"] {
        let bytes = std::fs::read(options.figures.join(f)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{f}");
        assert!(md.contains(&format!("(results/{f})")), "{f} linked");
    }

    let second = run_report(&options, &mut |_| {}).unwrap();
    assert_eq!(second.computed, 0, "everything comes from the cache");
    assert_eq!(second.cached, first.computed);
    assert_eq!(
        second.models[0].zsq[0].1, first.models[0].zsq[0].1,
        "cached records are the computed ones"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
