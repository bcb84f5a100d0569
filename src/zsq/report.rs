//! The quantization report (`zsq quantize --report`, and `<key>.json` in the cache):
//! what was quantized how, the range chosen per tensor, timings per stage, and how
//! well the int8 model agrees with the float one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ZsqError;
use super::qparams::Range;
use super::quantize::QdqSummary;
use crate::onnx::Model;

/// Everything `zsq quantize` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantizeReport {
    pub thermalzsq_version: String,
    pub model: ModelReport,
    pub settings: SettingsReport,
    pub calibration: CalibrationReport,
    /// Seconds per stage, in order.
    pub timings: Vec<StageTiming>,
    pub folding: FoldReport,
    pub placement: QdqSummary,
    /// Per quantized activation, in graph order.
    pub ranges: Vec<RangeReport>,
    /// Agreement of the int8 model with the float model on calibration images.
    pub check: Option<CheckReport>,
    /// Filled by the zero-shot source (distillation); absent for real images.
    pub distillation: Option<DistillationReport>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    /// The image input and its shape (-1 for a symbolic batch).
    pub input: String,
    pub shape: Vec<i64>,
    pub sha256: String,
    pub nodes: usize,
    pub batch_norms: usize,
    pub opset: i64,
    pub modality: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingsReport {
    pub precision: String,
    pub observer: String,
    /// The source that ran: `distill`, `synth`, `images` or `tensor` (`auto` resolved).
    pub source: String,
    /// The text the cache key is the sha256 of (settings part).
    pub canonical: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub source: String,
    pub images: usize,
    /// Passes over the images (2 for histogram observers).
    pub passes: usize,
    pub dir: Option<String>,
    /// File names, in the order used.
    pub files: Vec<String>,
    pub sha256: Option<String>,
    /// Generated scenes: their seed and frame size (`640x512`, or `input`).
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub scene_size: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    pub stage: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FoldReport {
    pub folded: usize,
    pub kept: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeReport {
    pub tensor: String,
    /// Min and max seen on the calibration images.
    pub observed: Range,
    /// What the observer chose for this tensor.
    pub chosen: Range,
    /// The parameters in the model (of the group leader when shared).
    pub scale: f32,
    pub zero_point: i32,
    /// The tensor whose parameters this one shares (MaxPool, Resize, Split, ...).
    pub shares_with: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub images: usize,
    /// The execution provider both models ran on.
    pub provider: String,
    pub outputs: Vec<OutputAgreement>,
    /// The last layers' outputs (head logits before decoding; a head output that is
    /// also a model output is listed under `outputs` only).
    #[serde(default)]
    pub head: Vec<OutputAgreement>,
    /// Op types of ONNX Runtime's optimised int8 graph on the CPU (QLinearConv, ...).
    pub runtime_ops: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputAgreement {
    pub name: String,
    pub cosine: f64,
    pub max_abs_diff: f64,
    /// Largest |value| of the float output, to read `max_abs_diff` against.
    pub float_abs_max: f64,
    /// The output is a selection (a TopK upstream: an end-to-end head's final rows).
    /// Rows whose scores are near-equal swap or drop out under int8, so its cosine
    /// measures reordering more than accuracy: read the head logits instead.
    #[serde(default)]
    pub selected: bool,
}

/// What the zero-shot side reports about distillation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DistillationReport {
    pub loss: String,
    pub iterations: usize,
    pub batch: usize,
    pub seed: u64,
    pub thermal_prior: bool,
    pub loss_per_iteration: Vec<f64>,
    /// Per BN layer, the statistics mismatch before and after distillation.
    pub bn_mismatch_before: Vec<f64>,
    pub bn_mismatch_after: Vec<f64>,
    pub seconds_per_step: f64,
    /// Steps run: fewer than `iterations` when the loss stopped improving.
    #[serde(default)]
    pub steps: usize,
}

impl QuantizeReport {
    /// Writes the report as pretty JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<(), ZsqError> {
        let text = serde_json::to_vec_pretty(self).expect("reports serialise");
        super::cache::write_atomically(path, &text)
    }

    pub fn total_seconds(&self) -> f64 {
        self.timings.iter().map(|t| t.seconds).sum()
    }

    /// The lowest cosine over the checked outputs and head tensors.
    pub fn min_cosine(&self) -> Option<f64> {
        let check = self.check.as_ref()?;
        check
            .outputs
            .iter()
            .chain(&check.head)
            .map(|o| o.cosine)
            .min_by(f64::total_cmp)
    }
}

/// Cosine similarity of two equally long vectors (1 when both are zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// Op types (with their domain when not ONNX's) of ONNX Runtime's optimised graph of
/// `model_bytes` on the CPU at the highest optimisation level: which QDQ groups were
/// fused into integer kernels (QLinearConv, QLinearSigmoid, ...) and what stayed float.
pub fn runtime_op_counts(
    model_bytes: &[u8],
    threads: usize,
) -> Result<BTreeMap<String, usize>, ZsqError> {
    use ort::session::Session;
    use ort::session::builder::GraphOptimizationLevel;
    let env = crate::runtime::environment()?;
    // Unique per call: two calibrations of one model in one process (two pipelines)
    // must not read or delete each other's file.
    let path = std::env::temp_dir().join(format!(
        "thermalzsq-optimized-{}-{}.onnx",
        std::process::id(),
        super::cache::unique()
    ));
    let mut builder = Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(ort::Error::from)?
        .with_optimized_model_path(&path)
        .map_err(ort::Error::from)?
        // Its warning that a level-3 graph is hardware specific is the point here.
        .with_log_level(crate::runtime::LogLevel::Error)
        .map_err(ort::Error::from)?;
    if threads > 0 {
        builder = builder
            .with_intra_threads(threads)
            .map_err(ort::Error::from)?;
    }
    // Committing the session writes the optimised graph.
    let model = builder
        .commit_from_memory(model_bytes)
        .map_err(ZsqError::from)
        .and_then(|session| {
            drop(session);
            Ok(Model::load(&path)?)
        });
    let _ = std::fs::remove_file(&path);
    let mut counts = BTreeMap::new();
    for node in &model?.graph().node {
        let key = match node.domain() {
            "" | "ai.onnx" => node.op_type().to_string(),
            d => format!("{d}.{}", node.op_type()),
        };
        *counts.entry(key).or_default() += 1;
    }
    Ok(counts)
}
