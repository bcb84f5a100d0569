//! Evaluation results and their two presentations: pycocotools' summary for people, one
//! JSON object for scripts.

use serde_json::{Map, Value, json};

/// AP of one category; `None` when the category has no ground truth (pycocotools: -1).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAp {
    pub category_id: i64,
    pub name: String,
    /// AP averaged over IoU .50:.05:.95.
    pub ap: Option<f64>,
    /// AP at IoU .50.
    pub ap50: Option<f64>,
}

/// One of the twelve numbers of pycocotools' `COCOeval.summarize()` (`stats[i]` is
/// [`SUMMARY`]`[i]`): its JSON key and the label pycocotools prints before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryLine {
    /// Key in `zsq eval --json` (the element's message uses it with `-` for `_`).
    pub key: &'static str,
    /// Average recall rather than average precision.
    pub recall: bool,
    /// IoU threshold(s) as pycocotools prints them.
    pub iou: &'static str,
    /// Area range: `all`, `small` (< 32²), `medium`, `large` (> 96²).
    pub area: &'static str,
    /// Detections per image and category.
    pub max_dets: u32,
}

const fn line(
    key: &'static str,
    recall: bool,
    iou: &'static str,
    area: &'static str,
    max_dets: u32,
) -> SummaryLine {
    SummaryLine {
        key,
        recall,
        iou,
        area,
        max_dets,
    }
}

/// pycocotools' summary, in its order.
pub const SUMMARY: [SummaryLine; 12] = [
    line("map", false, "0.50:0.95", "all", 100),
    line("map50", false, "0.50", "all", 100),
    line("map75", false, "0.75", "all", 100),
    line("map_small", false, "0.50:0.95", "small", 100),
    line("map_medium", false, "0.50:0.95", "medium", 100),
    line("map_large", false, "0.50:0.95", "large", 100),
    line("ar1", true, "0.50:0.95", "all", 1),
    line("ar10", true, "0.50:0.95", "all", 10),
    line("ar100", true, "0.50:0.95", "all", 100),
    line("ar_small", true, "0.50:0.95", "small", 100),
    line("ar_medium", true, "0.50:0.95", "medium", 100),
    line("ar_large", true, "0.50:0.95", "large", 100),
];

impl SummaryLine {
    /// The line exactly as pycocotools prints it (three decimals, -1.000 for undefined),
    /// so that the two can be compared by eye or by `diff`.
    pub fn pycocotools(&self, value: Option<f64>) -> String {
        let (title, kind) = if self.recall {
            ("Average Recall", "(AR)")
        } else {
            ("Average Precision", "(AP)")
        };
        format!(
            " {title:<18} {kind} @[ IoU={:<9} | area={:>6} | maxDets={:>3} ] = {:.3}",
            self.iou,
            self.area,
            self.max_dets,
            value.unwrap_or(-1.0)
        )
    }
}

/// COCO metrics over all categories that have ground truth (pycocotools' `stats`), and
/// the AP of each category in category-id order. `None` where pycocotools gives -1: no
/// category has ground truth (in that area range).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    /// mAP50-95 (pycocotools `stats[0]`).
    pub map: Option<f64>,
    /// mAP50 (`stats[1]`).
    pub map50: Option<f64>,
    /// mAP75 (`stats[2]`).
    pub map75: Option<f64>,
    /// mAP50-95 of objects under 32² pixels of area (`stats[3]`).
    pub map_small: Option<f64>,
    /// ... between 32² and 96² (`stats[4]`).
    pub map_medium: Option<f64>,
    /// ... over 96² (`stats[5]`).
    pub map_large: Option<f64>,
    /// Recall (mean over IoU .50:.95 and categories) with 1, 10 and 100 detections per
    /// image and category (`stats[6..9]`).
    pub ar1: Option<f64>,
    pub ar10: Option<f64>,
    pub ar100: Option<f64>,
    /// Recall per area range, 100 detections (`stats[9..12]`).
    pub ar_small: Option<f64>,
    pub ar_medium: Option<f64>,
    pub ar_large: Option<f64>,
    pub per_class: Vec<ClassAp>,
}

/// -1 for a missing value, as pycocotools prints it.
fn or_minus_one(v: Option<f64>) -> f64 {
    v.unwrap_or(-1.0)
}

impl EvalResult {
    /// From the twelve numbers in [`SUMMARY`] order.
    pub fn from_summary(s: [Option<f64>; 12], per_class: Vec<ClassAp>) -> Self {
        let [
            map,
            map50,
            map75,
            map_small,
            map_medium,
            map_large,
            ar1,
            ar10,
            ar100,
            ar_small,
            ar_medium,
            ar_large,
        ] = s;
        EvalResult {
            map,
            map50,
            map75,
            map_small,
            map_medium,
            map_large,
            ar1,
            ar10,
            ar100,
            ar_small,
            ar_medium,
            ar_large,
            per_class,
        }
    }

    /// The twelve numbers in [`SUMMARY`] order (pycocotools' `stats`).
    pub fn summary(&self) -> [Option<f64>; 12] {
        [
            self.map,
            self.map50,
            self.map75,
            self.map_small,
            self.map_medium,
            self.map_large,
            self.ar1,
            self.ar10,
            self.ar100,
            self.ar_small,
            self.ar_medium,
            self.ar_large,
        ]
    }

    /// One JSON object: the [`SUMMARY`] keys (`map`, `map50`, `map75`, `map_small`, ...,
    /// `ar_large`), `"per_class": {name: AP}` and `"per_class50": {name: AP50}`, with -1
    /// where a value is undefined (as pycocotools).
    pub fn to_json(&self) -> Value {
        let per = |f: fn(&ClassAp) -> Option<f64>| -> Map<String, Value> {
            self.per_class
                .iter()
                .map(|c| (c.name.clone(), json!(or_minus_one(f(c)))))
                .collect()
        };
        let mut out: Map<String, Value> = SUMMARY
            .iter()
            .zip(self.summary())
            .map(|(line, v)| (line.key.to_string(), json!(or_minus_one(v))))
            .collect();
        out.insert("per_class".into(), Value::Object(per(|c| c.ap)));
        out.insert("per_class50".into(), Value::Object(per(|c| c.ap50)));
        Value::Object(out)
    }
}

impl std::fmt::Display for EvalResult {
    /// `mAP50-95=0.xxxx mAP50=0.xxxx`, pycocotools' twelve summary lines, then one line
    /// per category.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<f64>| v.map_or_else(|| "-1".to_string(), |v| format!("{v:.4}"));
        writeln!(f, "mAP50-95={} mAP50={}", show(self.map), show(self.map50))?;
        for (line, v) in SUMMARY.iter().zip(self.summary()) {
            writeln!(f, "{}", line.pycocotools(v))?;
        }
        let width = self
            .per_class
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        for c in &self.per_class {
            write!(
                f,
                "  {:<width$}  AP50-95={} AP50={}",
                c.name,
                show(c.ap),
                show(c.ap50)
            )?;
            if c.ap.is_none() {
                write!(f, "  (no ground truth)")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
