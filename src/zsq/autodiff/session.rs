//! Running a gradient graph: one `session.run` gives the loss, the gradient and every
//! layer's statistics.

use ort::session::Session;
use ort::value::TensorRef;

use super::{GradientGraph, LayerOutputs};
use crate::runtime::{Provider, ProviderOptions, load_session_with_config};
use crate::zsq::ZsqError;

/// Distillation shares the cores with the pipeline's inference session (and shape
/// discovery runs once): threads that spin between runs would take cycles from
/// both. Measured on 2 busy cores (YOLOv8n-size, 8×3×320×320): 0.8 s per step
/// without spinning, 1.1–1.3 s with it.
pub(super) const NO_SPINNING: [(&str, &str); 1] = [("session.intra_op.allow_spinning", "0")];

/// A gradient graph loaded into ONNX Runtime.
pub struct GradientSession {
    session: Session,
    provider: Provider,
    input: String,
    input_shape: [usize; 4],
    loss: String,
    gradient: String,
    layers: Vec<LayerOutputs>,
}

/// What one run returns besides the gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub loss: f32,
    /// Per layer, in the graph's order.
    pub layers: Vec<LayerStats>,
}

/// One layer's statistics: per image and channel (N·C values, image-major) or per
/// channel over the batch (C values), as the graph's [`super::Statistics`] says.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl GradientSession {
    pub fn new(graph: &GradientGraph, provider: &ProviderOptions) -> Result<Self, ZsqError> {
        let loaded = load_session_with_config(&graph.model.to_bytes(), provider, &NO_SPINNING)?;
        Ok(GradientSession {
            session: loaded.session,
            provider: loaded.provider,
            input: graph.input.clone(),
            input_shape: graph.input_shape,
            loss: graph.loss.clone(),
            gradient: graph.gradient.clone(),
            layers: graph.layers.clone(),
        })
    }

    /// N×C×H×W of the images [`GradientSession::run`] takes.
    pub fn input_shape(&self) -> [usize; 4] {
        self.input_shape
    }

    /// The execution provider the session runs on.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Evaluates the loss at `images` (row-major N×C×H×W) and writes its gradient
    /// into `gradient` (same length).
    pub fn run(&mut self, images: &[f32], gradient: &mut [f32]) -> Result<Evaluation, ZsqError> {
        let len: usize = self.input_shape.iter().product();
        if images.len() != len || gradient.len() != len {
            return Err(ZsqError::Options(format!(
                "the gradient graph takes {:?} images ({len} values); got {} values and a \
                 gradient buffer of {}",
                self.input_shape,
                images.len(),
                gradient.len()
            )));
        }
        let input = TensorRef::from_array_view((self.input_shape, images))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => input])?;
        let (_, loss) = outputs[self.loss.as_str()].try_extract_tensor::<f32>()?;
        let loss = loss.first().copied().unwrap_or(f32::NAN);
        let (_, g) = outputs[self.gradient.as_str()].try_extract_tensor::<f32>()?;
        gradient.copy_from_slice(g);
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (_, mean) = outputs[layer.mean.as_str()].try_extract_tensor::<f32>()?;
            let (_, std) = outputs[layer.std.as_str()].try_extract_tensor::<f32>()?;
            layers.push(LayerStats {
                mean: mean.to_vec(),
                std: std.to_vec(),
            });
        }
        Ok(Evaluation { loss, layers })
    }
}
