//! `docs/results.md` and its figures from a [`Report`].

use std::fmt::Write as _;
use std::path::Path;

use ndarray::{Array3, Axis};

use super::chart::{self, Bars, PALETTE, Reference, Series};
use super::store::Record;
use super::{Ablation, Domain, ModelResults, Plan, Report, ReportError, W4Kind, mean_std};
use thermalzsq::zsq::calibrate::Observer;

/// mAP50-95 and mAP50 of a set of records (one per seed) on `domain`: mean ± std.
fn stats(records: &[Record], domain: Domain) -> Option<((f64, f64), (f64, f64))> {
    let values: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| r.evals.get(domain.name()).copied())
        .collect();
    if values.is_empty() {
        return None;
    }
    let a: Vec<f64> = values.iter().map(|v| v.0).collect();
    let b: Vec<f64> = values.iter().map(|v| v.1).collect();
    Some((mean_std(&a), mean_std(&b)))
}

/// A table cell: `0.480 / 0.781`, or with seeds `0.476±0.002 / 0.778±0.003`.
pub fn cell(records: &[Record], domain: Domain) -> String {
    match stats(records, domain) {
        None => "—".into(),
        Some(((m, ms), (m50, m50s))) if records.len() > 1 => {
            format!("{m:.3}±{ms:.3} / {m50:.3}±{m50s:.3}")
        }
        Some(((m, _), (m50, _))) => format!("{m:.3} / {m50:.3}"),
    }
}

fn map(records: &[Record], domain: Domain) -> Option<f64> {
    stats(records, domain).map(|s| s.0.0)
}

fn zsq_records(m: &ModelResults, a: Ablation) -> &[Record] {
    m.zsq
        .iter()
        .find(|(x, _)| *x == a)
        .map_or(&[], |(_, r)| r.as_slice())
}

fn w4_records(m: &ModelResults, k: W4Kind) -> &[Record] {
    m.w4a8
        .iter()
        .find(|(x, _)| *x == k)
        .map_or(&[], |(_, r)| r.as_slice())
}

fn ptq_record(m: &ModelResults, percentile: bool) -> &[Record] {
    m.ptq
        .iter()
        .find(|(o, _)| matches!(o, Observer::Percentile(_)) == percentile)
        .map_or(&[], |(_, r)| std::slice::from_ref(r))
}

fn ablation_header(a: Ablation) -> &'static str {
    match a {
        Ablation::Default => "ZSQ mean+std",
        Ablation::MeanOnly => "ZSQ mean only",
        Ablation::StdOnly => "ZSQ std only",
        Ablation::PriorFlipped => "ZSQ prior flipped¹",
        Ablation::BatchStatistics => "ZSQ batch stats²",
    }
}

/// The accuracy table: one row per (model, evaluation domain).
pub fn accuracy_table(models: &[ModelResults]) -> String {
    let order = [
        Ablation::MeanOnly,
        Ablation::StdOnly,
        Ablation::Default,
        Ablation::PriorFlipped,
        Ablation::BatchStatistics,
    ];
    let mut s = String::new();
    s.push_str("| model | evaluated on | FP32 | PTQ real minmax | PTQ real percentile |");
    for a in order {
        let _ = write!(s, " {} |", ablation_header(a));
    }
    s.push_str("\n|---|---|---|---|---|");
    for _ in order {
        s.push_str("---|");
    }
    s.push('\n');
    for m in models {
        for &d in &m.evals {
            let _ = write!(
                s,
                "| {} | {} | {} | {} | {} |",
                m.label,
                d.name(),
                cell(std::slice::from_ref(&m.fp32), d),
                cell(ptq_record(m, false), d),
                cell(ptq_record(m, true), d)
            );
            for a in order {
                let _ = write!(s, " {} |", cell(zsq_records(m, a), d));
            }
            s.push('\n');
        }
    }
    s
}

/// Cost table: distillation seconds, quantization seconds, latency.
pub fn cost_table(models: &[ModelResults]) -> String {
    let mut s = String::from(
        "| model | distillation s (mean+std, per seed) | zero-shot quantize s (total) | real-image PTQ s (minmax) | fp32 ms/frame | int8 ms/frame | speed-up | W4A8 ms/frame |\n|---|---|---|---|---|---|---|---|\n",
    );
    for m in models {
        let zs = zsq_records(m, Ablation::Default);
        let (d, ds) = mean_std(&zs.iter().map(|r| r.seconds).collect::<Vec<_>>());
        let (q, _) = mean_std(&zs.iter().map(|r| r.quantize_seconds).collect::<Vec<_>>());
        let ptq = ptq_record(m, false)
            .first()
            .map_or("—".into(), |r| format!("{:.1}", r.quantize_seconds));
        let (f, i, w) = m.latency;
        let _ = writeln!(
            s,
            "| {} | {d:.1}±{ds:.1} | {q:.1} | {ptq} | {f:.1} | {i:.1} | {:.2}× | {} |",
            m.label,
            f / i,
            if w.is_finite() {
                format!("{w:.1}")
            } else {
                "—".into()
            }
        );
    }
    s
}

/// The W4A8 table (own domain): mAP and agreement with fp32.
pub fn w4a8_table(models: &[ModelResults]) -> String {
    let mut s = String::from(
        "| model | FP32 | W8A8 zero-shot | W4A8 nearest, distilled | W4A8 AdaRound, distilled | W4A8 nearest, real | W4A8 AdaRound, real |\n|---|---|---|---|---|---|---|\n",
    );
    let mut agreement = String::from(
        "| model | W8A8 zero-shot | W4A8 nearest, distilled | W4A8 AdaRound, distilled | W4A8 nearest, real | W4A8 AdaRound, real |\n|---|---|---|---|---|---|\n",
    );
    for m in models.iter().filter(|m| !m.w4a8.is_empty()) {
        let d = m.domain;
        let _ = write!(
            s,
            "| {} | {} | {} |",
            m.label,
            cell(std::slice::from_ref(&m.fp32), d),
            cell(zsq_records(m, Ablation::Default), d)
        );
        let fmt_agree =
            |a: Option<(f64, f64)>| a.map_or("—".into(), |(sc, bx)| format!("{sc:.4} / {bx:.2}"));
        let _ = write!(
            agreement,
            "| {} | {} |",
            m.label,
            fmt_agree(m.int8_agreement)
        );
        for k in W4Kind::ALL {
            let r = w4_records(m, k);
            let _ = write!(s, " {} |", cell(r, d));
            let a: Vec<(f64, f64)> = r.iter().filter_map(|r| r.agreement).collect();
            let mean = (!a.is_empty()).then(|| {
                (
                    a.iter().map(|x| x.0).sum::<f64>() / a.len() as f64,
                    a.iter().map(|x| x.1).sum::<f64>() / a.len() as f64,
                )
            });
            let _ = write!(agreement, " {} |", fmt_agree(mean));
        }
        s.push('\n');
        agreement.push('\n');
    }
    format!(
        "{s}\nAgreement with the fp32 outputs on held-out images (RMSE of the class scores / of the box coordinates in input pixels; lower is closer):\n\n{agreement}"
    )
}

/// Plain sentences: where zero-shot loses to real data, and by how much.
pub fn verdict(models: &[ModelResults]) -> String {
    let mut s = String::new();
    for m in models {
        let d = m.domain;
        let (Some(fp), Some(zs)) = (
            map(std::slice::from_ref(&m.fp32), d),
            map(zsq_records(m, Ablation::Default), d),
        ) else {
            continue;
        };
        let best_real = [ptq_record(m, false), ptq_record(m, true)]
            .iter()
            .filter_map(|r| map(r, d))
            .fold(f64::NAN, f64::max);
        let pts = |x: f64| x * 100.0;
        let _ = write!(
            s,
            "- **{}** ({}): zero-shot int8 {:.3} vs fp32 {:.3} ({:+.1} points); vs the best real-data PTQ {:.3}: ",
            m.label,
            d.name(),
            zs,
            fp,
            pts(zs - fp),
            best_real
        );
        let gap = pts(zs - best_real);
        if gap < -0.5 {
            let _ = write!(s, "zero-shot **loses {:.1} points** to real data.", -gap);
        } else if gap < 0.0 {
            let _ = write!(
                s,
                "zero-shot is {:.1} points behind real data (within 0.5 point).",
                -gap
            );
        } else {
            let _ = write!(
                s,
                "zero-shot matches or beats real data ({gap:+.1} points)."
            );
        }
        let ada = (
            map(w4_records(m, W4Kind::AdaRoundDistilled), d),
            map(w4_records(m, W4Kind::AdaRoundReal), d),
            map(w4_records(m, W4Kind::NearestDistilled), d),
        );
        if let (Some(zd), Some(real), Some(near)) = ada {
            let _ = write!(
                s,
                " W4A8: AdaRound on distilled images {:.3} ({:+.1} points vs fp32, {:+.1} vs round-to-nearest), on real images {:.3}: distilled images are {:.1} points {} real ones.",
                zd,
                pts(zd - fp),
                pts(zd - near),
                real,
                pts(zd - real).abs(),
                if zd < real { "behind" } else { "ahead of" }
            );
        }
        s.push('\n');
        if m.evals.len() > 1 {
            for &other in m.evals.iter().filter(|&&e| e != d) {
                if let (Some(fo), Some(zo)) = (
                    map(std::slice::from_ref(&m.fp32), other),
                    map(zsq_records(m, Ablation::Default), other),
                ) {
                    let _ = writeln!(
                        s,
                        "- **{}** on {} images (domain gap): fp32 {:.3} ({:+.1} points vs its own domain), zero-shot int8 {:.3}.",
                        m.label,
                        other.name(),
                        fo,
                        pts(fo - fp),
                        zo
                    );
                }
            }
        }
    }
    s
}

/// What the step sweep says, in words: step 0 is calibration on the starting images
/// (smoothed Gaussian noise), before any BN matching, so the sweep shows how much of the
/// zero-shot accuracy the distillation itself buys.
fn sweep_verdict(m: &ModelResults) -> String {
    let (Some((first, r0)), Some((last, rn))) = (m.sweep.first(), m.sweep.last()) else {
        return String::new();
    };
    let (Some(((a, sa), _)), Some(((b, sb), _))) = (stats(r0, m.domain), stats(rn, m.domain))
    else {
        return String::new();
    };
    let gain = (b - a) * 100.0;
    let noise = 2.0 * sa.max(sb) * 100.0;
    let words = if gain.abs() <= noise.max(0.3) {
        "no difference beyond the seed-to-seed spread: on this model, with the minmax \
         observer, the starting noise images already give ranges as good as the distilled \
         ones: the BN matching itself buys no mAP here"
    } else if gain > 0.0 {
        "the distillation steps are what the zero-shot accuracy comes from"
    } else {
        "the distillation steps lose accuracy against the starting noise images"
    };
    format!(
        "Step {first} calibrates on the starting images (smoothed Gaussian noise) before any \
         BN matching. {}: {a:.3} at {first} steps, {b:.3} at {last} ({gain:+.1} points): \
         {words}.\n\n",
        m.name
    )
}

fn figure_distilled(report: &Report, path: &Path) -> Result<(), ReportError> {
    let mut rows = Vec::new();
    let take = |a: &ndarray::Array4<f32>, n: usize| -> Vec<Array3<f32>> {
        a.axis_iter(Axis(0)).take(n).map(|v| v.to_owned()).collect()
    };
    for m in &report.models {
        if let Some(images) = &m.distilled {
            rows.push((format!("{}\n(distilled)", m.short), take(images, 6)));
        }
    }
    for (d, images) in &report.real_examples {
        rows.push((format!("real {} images", d.name()), take(images, 6)));
    }
    chart::image_rows(
        "What the detectors remember: distilled vs real images",
        &rows,
        2,
    )
    .save_png(path)?;
    Ok(())
}

fn figure_sweep(report: &Report, path: &Path) -> Result<bool, ReportError> {
    let Some(m) = report.models.iter().find(|m| !m.sweep.is_empty()) else {
        return Ok(false);
    };
    let d = m.domain;
    let points: Vec<(f64, f64, f64)> = m
        .sweep
        .iter()
        .filter_map(|(n, r)| stats(r, d).map(|((v, e), _)| (*n as f64, v, e)))
        .collect();
    let mut refs = Vec::new();
    if let Some(v) = map(std::slice::from_ref(&m.fp32), d) {
        refs.push(Reference {
            label: "fp32".into(),
            color: chart::BLACK,
            y: v,
        });
    }
    for (k, percentile) in [(false, false), (true, true)] {
        let _ = k;
        if let Some(v) = map(ptq_record(m, percentile), d) {
            refs.push(Reference {
                label: if percentile {
                    "PTQ real pct".into()
                } else {
                    "PTQ real minmax".into()
                },
                color: PALETTE[if percentile { 4 } else { 1 }],
                y: v,
            });
        }
    }
    chart::line_chart(
        &format!("{}: mAP50-95 vs distillation steps", m.short),
        "distillation steps (batch of distilled images)",
        "mAP50-95",
        &[Series {
            label: "zero-shot int8".into(),
            color: PALETTE[0],
            points,
        }],
        &refs,
    )
    .save_png(path)?;
    Ok(true)
}

fn figure_ablation(report: &Report, path: &Path) -> Result<(), ReportError> {
    let groups: Vec<String> = report.models.iter().map(|m| m.short.clone()).collect();
    let mut bars = Vec::new();
    // Points of mAP50-95 against the model's fp32, on its own domain.
    let delta = |m: &ModelResults, r: &[Record]| {
        let fp = map(std::slice::from_ref(&m.fp32), m.domain).unwrap_or(f64::NAN);
        stats(r, m.domain).map_or((f64::NAN, 0.0), |((v, e), _)| ((v - fp) * 100.0, e * 100.0))
    };
    for (i, pct) in [false, true].into_iter().enumerate() {
        bars.push(Bars {
            label: if pct {
                "PTQ real pct"
            } else {
                "PTQ real minmax"
            }
            .into(),
            color: PALETTE[1 + i * 3],
            values: report
                .models
                .iter()
                .map(|m| delta(m, ptq_record(m, pct)))
                .collect(),
        });
    }
    let zsq = [
        (Ablation::MeanOnly, "ZSQ mean", PALETTE[0]),
        (Ablation::StdOnly, "ZSQ std", PALETTE[5]),
        (Ablation::Default, "ZSQ mean+std", PALETTE[2]),
        (Ablation::PriorFlipped, "ZSQ prior flipped", PALETTE[3]),
        (Ablation::BatchStatistics, "ZSQ batch stats", chart::GREY),
    ];
    for (a, label, color) in zsq {
        bars.push(Bars {
            label: label.into(),
            color,
            values: report
                .models
                .iter()
                .map(|m| delta(m, zsq_records(m, a)))
                .collect(),
        });
    }
    chart::bar_chart(
        "int8 mAP50-95 minus fp32 (points)",
        "points",
        &groups,
        &bars,
    )
    .save_png(path)?;
    Ok(())
}

/// Writes the Markdown report at `doc` and its figures under `figures`.
pub fn write(report: &Report, plan: &Plan, doc: &Path, figures: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(figures)?;
    figure_distilled(report, &figures.join("distilled.png"))?;
    figure_ablation(report, &figures.join("accuracy.png"))?;
    let sweep = figure_sweep(report, &figures.join("steps.png"))?;
    let rel = |name: &str| {
        let dir = doc.parent().unwrap_or(Path::new("."));
        let f = figures.join(name);
        f.strip_prefix(dir).unwrap_or(&f).display().to_string()
    };
    std::fs::write(doc, render(report, plan, sweep, &rel))?;
    Ok(())
}

/// The Markdown text (`rel` names a figure relative to the document).
pub fn render(report: &Report, plan: &Plan, sweep: bool, rel: &dyn Fn(&str) -> String) -> String {
    let mc = &report.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Results: zero-shot vs real-data int8 quantization of thermal detectors\n"
    );
    let _ = writeln!(
        s,
        "Generated by `make report` (`zsq report`) on **{}**, on {} ({} cores), ONNX Runtime {} (CPU EP, u8s8), thermalzsq commit `{}`. The run took **{:.1} minutes** ({} measurements computed, {} read from the cache).\n",
        mc.date,
        mc.cpu,
        mc.cores,
        mc.onnxruntime,
        mc.commit,
        report.seconds / 60.0,
        report.computed,
        report.cached
    );
    let _ = writeln!(
        s,
        "This reruns the comparison of Sevsay & Akagündüz (2024) — zero-shot quantization (distilled calibration images from the BatchNorm statistics) against post-training quantization with real images, for RGB-trained and thermal-trained detectors — on the bundled demo detectors, and goes past it with W4A8.\n"
    );
    s.push_str("## Setup\n\n");
    let _ = writeln!(
        s,
        "- Held-out data: `zsq synth --scenes {} --seed {}` ({}×{}); thermal models are scored on its 16-bit radiometric frames through the detector's own AGC, the RGB model on its RGB twin (and on the thermal frames: the domain gap). mAP is COCO mAP50-95 / mAP50 (pycocotools-exact).",
        plan.eval.scenes, plan.eval.seed, plan.size.0, plan.size.1
    );
    let _ = writeln!(
        s,
        "- Real-data PTQ: our quantizer calibrated on the first {} images of `zsq synth --seed {}` (the training distribution) of the model's domain, observers minmax and percentile.",
        plan.calib_images, plan.calib.seed
    );
    let _ = writeln!(
        s,
        "- Zero-shot (ZSQ): {} distilled images, {} Adam steps, per-image BN statistics, minmax observer; thermal prior (one grey channel) on for thermal models, off for the RGB model. Every ZSQ number is the mean ± sample std over distillation seeds {:?}.",
        plan.batch, plan.iterations, plan.seeds
    );
    let _ = writeln!(
        s,
        "- Quantized: everything but the detection tail (u8s8, per-channel int8 weights); same quantizer for real and distilled images, so the images are the only difference."
    );
    let _ = writeln!(
        s,
        "- Latency: median ms per 320×320 frame, fp32 vs int8 vs W4A8 timed in interleaved blocks in the same process, {} runs × 5 rounds each.",
        plan.latency_runs
    );
    let _ = writeln!(
        s,
        "- W4A8: 4-bit symmetric per-channel weights (MSE-clipped scales, first layer and head outputs kept 8-bit), 8-bit activations; AdaRound reconstruction {} steps per layer on the same {} distilled images (or {} real images).",
        plan.w4a8.iterations, plan.batch, plan.w4a8_real_images
    );
    let _ = writeln!(
        s,
        "- Cached: every measurement is stored under `out/report/cache/` keyed by the model's sha256 and every setting; `zsq report --fresh` recomputes.\n"
    );
    if !plan.left_out().is_empty() {
        let _ = writeln!(
            s,
            "Left out of the default run to fit the 45-minute budget on a 2-core machine (`zsq report --full` runs them): {}.\n",
            plan.left_out().join("; ")
        );
    }
    s.push_str("## Accuracy (mAP50-95 / mAP50)\n\n");
    s.push_str(&accuracy_table(&report.models));
    s.push_str(
        "\n¹ The thermal prior switched the other way from the model's default (off for thermal models, on for the RGB model). ² Batch statistics (DeepInversion/Genie) instead of per-image (ZeroQ). — : not measured in this run.\n\n",
    );
    let _ = writeln!(
        s,
        "mAP50-95 lost to int8 on each model's own domain, in points against its fp32 (error bars: std over seeds):\n\n![accuracy]({})\n",
        rel("accuracy.png")
    );
    s.push_str("## Where zero-shot loses to real data\n\n");
    s.push_str(&verdict(&report.models));
    s.push('\n');
    s.push_str("## Cost\n\n");
    s.push_str(&cost_table(&report.models));
    s.push('\n');
    s.push_str("## Beyond the paper: W4A8 with reconstruction on distilled images\n\n");
    s.push_str(&w4a8_table(&report.models));
    s.push('\n');
    if sweep {
        s.push_str("## How few distillation steps suffice\n\n");
        let _ = writeln!(s, "![steps]({})\n", rel("steps.png"));
        if let Some(m) = report.models.iter().find(|m| !m.sweep.is_empty()) {
            s.push_str("| steps | mAP50-95 / mAP50 |\n|---|---|\n");
            for (n, r) in &m.sweep {
                let _ = writeln!(s, "| {n} | {} |", cell(r, m.domain));
            }
            s.push('\n');
            s.push_str(&sweep_verdict(m));
        }
    }
    s.push_str("## Distilled images\n\n");
    let _ = writeln!(
        s,
        "First distilled images (mean+std, first seed) of each model, above real images of each domain:\n\n![distilled]({})\n",
        rel("distilled.png")
    );
    s.push_str("## Reproduce\n\n```\nmake report                        # this page (cached measurements are reused)\nmake report REPORT_ARGS=--fresh    # recompute everything\nmake report REPORT_ARGS=--full     # also W4A8 on every model\n```\n\n");
    let _ = writeln!(s, "Run key: `{}`", report.plan_text);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Machine;

    fn record(thermal: (f64, f64), rgb: Option<(f64, f64)>, seconds: f64) -> Record {
        let mut r = Record::new("k");
        r.evals.insert("thermal".into(), thermal);
        if let Some(v) = rgb {
            r.evals.insert("RGB".into(), v);
        }
        r.seconds = seconds;
        r.quantize_seconds = seconds + 1.0;
        r
    }

    fn model(name: &str, domain: Domain, with_extras: bool) -> ModelResults {
        let rgb = (domain == Domain::Rgb).then_some((0.6, 0.9));
        let seeds = |base: f64| {
            vec![
                record((base, 0.80), rgb, 30.0),
                record((base + 0.002, 0.81), rgb, 32.0),
                record((base + 0.004, 0.82), rgb, 34.0),
            ]
        };
        let mut zsq = vec![
            (Ablation::Default, seeds(0.470)),
            (Ablation::MeanOnly, seeds(0.400)),
            (Ablation::StdOnly, seeds(0.300)),
        ];
        if with_extras {
            zsq.push((Ablation::PriorFlipped, seeds(0.460)));
        }
        ModelResults {
            name: name.into(),
            label: format!("{name} label"),
            short: name.into(),
            domain,
            evals: if domain == Domain::Rgb {
                vec![Domain::Rgb, Domain::Thermal]
            } else {
                vec![Domain::Thermal]
            },
            prior_default: domain == Domain::Thermal,
            fp32: record((0.480, 0.781), rgb, 0.0),
            ptq: vec![
                (Observer::MinMax, record((0.4764, 0.78), rgb, 2.0)),
                (
                    Observer::Percentile(99.999),
                    record((0.4773, 0.78), rgb, 2.0),
                ),
            ],
            zsq,
            sweep: Vec::new(),
            w4a8: if with_extras {
                W4Kind::ALL
                    .iter()
                    .map(|&k| (k, vec![record((0.45, 0.75), None, 40.0)]))
                    .collect()
            } else {
                Vec::new()
            },
            int8_agreement: Some((0.01, 0.5)),
            latency: (20.0, 10.0, if with_extras { 10.5 } else { f64::NAN }),
            distilled: None,
        }
    }

    #[test]
    fn tables_show_means_and_stds_over_seeds_and_dashes_for_what_was_not_run() {
        let models = vec![
            model("det_thermal_ft", Domain::Thermal, true),
            model("det_rgb", Domain::Rgb, false),
        ];
        let t = accuracy_table(&models);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(
            rows.len(),
            2 + 1 + 2,
            "header, rule, one row per model and domain"
        );
        assert!(
            rows[2].starts_with(
                "| det_thermal_ft label | thermal | 0.480 / 0.781 | 0.476 / 0.780 | 0.477 / 0.780 |"
            ),
            "{}",
            rows[2]
        );
        assert!(
            rows[2].contains("0.472±0.002 / 0.810±0.010"),
            "mean+std over 3 seeds: {}",
            rows[2]
        );
        assert!(
            rows[3].contains("| det_rgb label | RGB | 0.600 / 0.900 |"),
            "{}",
            rows[3]
        );
        assert!(rows[4].contains("| det_rgb label | thermal |"));
        assert!(
            rows[3].ends_with("— | — |"),
            "no extra ablations on det_rgb: {}",
            rows[3]
        );

        let c = cost_table(&models);
        assert!(c.contains("| det_thermal_ft label | 32.0±2.0 |"), "{c}");
        assert!(c.contains("| 2.00× | 10.5 |"), "{c}");
        assert!(c.contains("| 2.00× | — |"), "no W4A8 latency: {c}");

        let w = w4a8_table(&models);
        assert!(w.contains("det_thermal_ft label"));
        assert!(
            !w.contains("det_rgb label"),
            "models without W4A8 rows are left out"
        );
    }

    #[test]
    fn the_verdict_says_by_how_much_zero_shot_loses() {
        let mut m = model("det_thermal_ft", Domain::Thermal, true);
        let v = verdict(std::slice::from_ref(&m));
        assert!(
            v.contains("zero-shot int8 0.472 vs fp32 0.480 (-0.8 points)"),
            "{v}"
        );
        assert!(v.contains("**loses 0.5 points**"), "0.472 vs 0.4773: {v}");
        m.zsq[0].1 = vec![record((0.40, 0.7), None, 30.0)];
        let v = verdict(std::slice::from_ref(&m));
        assert!(v.contains("**loses 7.7 points**"), "{v}");
        assert!(v.contains("W4A8"), "{v}");
        let rgb = model("det_rgb", Domain::Rgb, false);
        let v = verdict(&[rgb]);
        assert!(v.contains("on thermal images (domain gap)"), "{v}");
    }

    #[test]
    fn render_writes_date_machine_and_what_was_left_out() {
        let report = Report {
            machine: Machine {
                date: "2026-11-26 20:00 UTC".into(),
                cpu: "Test CPU".into(),
                cores: 2,
                onnxruntime: "1.31.1".into(),
                commit: "abc".into(),
            },
            plan_text: "key".into(),
            models: vec![model("det_thermal_ft", Domain::Thermal, true)],
            real_examples: Default::default(),
            seconds: 600.0,
            cached: 1,
            computed: 2,
        };
        let plan = Plan::default();
        let md = render(&report, &plan, false, &|n| format!("results/{n}"));
        assert!(md.contains("2026-11-26 20:00 UTC"));
        assert!(md.contains("Test CPU (2 cores)"));
        assert!(md.contains("10.0 minutes"));
        assert!(md.contains("Left out of the default run"));
        assert!(md.contains("![accuracy](results/accuracy.png)"));
        let full = Plan {
            full: true,
            ..Plan::default()
        };
        assert!(!render(&report, &full, false, &|n| n.into()).contains("Left out"));
    }
}
