//! Evaluation results and their two presentations: a line per metric for people, one
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

/// COCO mAP over all categories that have ground truth, and the AP of each category in
/// category-id order.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    /// mAP50-95 (pycocotools `stats[0]`); `None` when no category has ground truth.
    pub map: Option<f64>,
    /// mAP50 (pycocotools `stats[1]`).
    pub map50: Option<f64>,
    pub per_class: Vec<ClassAp>,
}

fn mean_of_present(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let present: Vec<f64> = values.flatten().collect();
    (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
}

/// -1 for a missing value, as pycocotools prints it.
fn or_minus_one(v: Option<f64>) -> f64 {
    v.unwrap_or(-1.0)
}

impl EvalResult {
    /// Means over the categories that have ground truth. Every category contributes the
    /// same number of precision points, so this equals pycocotools' mean over all points.
    pub fn from_classes(per_class: Vec<ClassAp>) -> Self {
        EvalResult {
            map: mean_of_present(per_class.iter().map(|c| c.ap)),
            map50: mean_of_present(per_class.iter().map(|c| c.ap50)),
            per_class,
        }
    }

    /// One JSON object: `{"map", "map50", "per_class": {name: AP}, "per_class50": {name:
    /// AP50}}`, with -1 where a value is undefined (as pycocotools).
    pub fn to_json(&self) -> Value {
        let per = |f: fn(&ClassAp) -> Option<f64>| -> Map<String, Value> {
            self.per_class
                .iter()
                .map(|c| (c.name.clone(), json!(or_minus_one(f(c)))))
                .collect()
        };
        json!({
            "map": or_minus_one(self.map),
            "map50": or_minus_one(self.map50),
            "per_class": per(|c| c.ap),
            "per_class50": per(|c| c.ap50),
        })
    }
}

impl std::fmt::Display for EvalResult {
    /// `mAP50-95=0.xxxx mAP50=0.xxxx`, then one line per category.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<f64>| v.map_or_else(|| "-1".to_string(), |v| format!("{v:.4}"));
        writeln!(f, "mAP50-95={} mAP50={}", show(self.map), show(self.map50))?;
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
