//! Distillation: images optimised until the model's BN layers see the statistics they
//! remember of the training data (ZeroQ, DeepInversion, Genie), run in ONNX Runtime.
//!
//! Each step is one run of the gradient graph ([`crate::zsq::autodiff`]), which gives
//! the loss and d(loss)/d(images); Adam updates the images on the host. With the
//! thermal prior the optimised image has one grey channel, copied to the model's
//! three: its gradient is the sum of the three channels' gradients. A one-channel
//! model (thermal-only training) is optimised as it is: there is nothing to tie.
//!
//! A model with a fixed batch of 1 (the usual export) gets a gradient graph whose
//! input has the batch asked for: the pruned graph rarely depends on the batch size.
//! When it does (a Reshape with the batch written in) and statistics are per image,
//! the batch is run as several runs of the model's own batch size instead, which
//! gives the same loss and gradient; batch statistics need the whole batch in one run
//! and are then an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::Array4;

use super::ZsqError;
use super::adam::Adam;
use super::autodiff::{
    GradientSession, ImageInput, LayerStats, LossSpec, LossTerms, Statistics, build_gradient_graph,
};
use super::bn::{BnLayer, find_bn_layers};
use super::noise::SplitMix64;
use crate::onnx::Model;
use crate::runtime::ProviderOptions;

/// How to distill.
#[derive(Debug, Clone)]
pub struct DistillOptions {
    /// Images to make.
    pub batch: usize,
    /// Optimisation steps (at most: see `min_improvement`).
    pub iterations: usize,
    /// Stop early once the loss has improved by less than this
    /// fraction over the last [`PATIENCE`] steps (0: run them all).
    pub min_improvement: f32,
    /// Adam's peak step size, in input units (pixel values).
    pub learning_rate: f32,
    /// Fraction of the iterations spent warming the step size up linearly; it then
    /// decays along a cosine to 1 % of its peak.
    pub warmup: f32,
    pub loss: LossTerms,
    pub statistics: Statistics,
    /// Weight of the total-variation prior (mean squared difference of neighbouring
    /// pixels); 0 turns it off.
    pub total_variation: f32,
    /// Optimise one grey channel copied to every input channel. `None`: on when the
    /// model's metadata says `modality` is `thermal`. No effect on one-channel models.
    pub thermal: Option<bool>,
    pub seed: u64,
    /// Input height and width; `None` takes them from the model (which must then
    /// declare them).
    pub size: Option<[usize; 2]>,
    /// Mean and standard deviation of the noise the images start from, in input units.
    pub init_mean: f32,
    pub init_std: f32,
    /// Grid spacing, in pixels, of the starting noise: Gaussian values on a grid this
    /// much coarser than the image, interpolated bilinearly (1: white noise). Smooth
    /// starts are far closer to what detectors expect (measured: a loss 1.5–1000×
    /// lower at step 0 than white noise, and lower after any number of steps).
    pub init_smoothness: usize,
    /// Pixel values are kept in this range after every step (`None`: unbounded). The
    /// default is the input range of YOLO-family detectors (8-bit pixels / 255); give
    /// `None` for models with other input normalisation.
    pub pixel_range: Option<[f32; 2]>,
    /// Raised by another thread to stop: checked before every step (and between the
    /// runs of one step), so distillation stops within one gradient evaluation.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for DistillOptions {
    fn default() -> Self {
        DistillOptions {
            // Measured (docs/autodiff.md, "Time to int8"): 4 images calibrate as well
            // as 8 at half the cost; fewer steps cost accuracy.
            batch: 4,
            iterations: 60,
            min_improvement: 0.0,
            learning_rate: 0.03,
            warmup: 0.05,
            loss: LossTerms::MeanStd,
            statistics: Statistics::PerImage,
            total_variation: 0.0,
            thermal: None,
            seed: 0,
            size: None,
            init_mean: 0.5,
            init_std: 0.25,
            init_smoothness: 8,
            pixel_range: Some([0.0, 1.0]),
            cancel: None,
        }
    }
}

/// Reported after every step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistillProgress {
    /// Steps done (1-based).
    pub iteration: usize,
    pub iterations: usize,
    /// The loss at the images of this step (before its update).
    pub loss: f32,
}

/// How far one BN layer's input statistics are from the layer's, before and after:
/// root mean square over channels (and images, for per-image statistics) of
/// mean − μ and std − σ.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerReport {
    pub name: String,
    pub mean_err_before: f32,
    pub std_err_before: f32,
    pub mean_err_after: f32,
    pub std_err_after: f32,
}

/// Distilled images and how they were made.
#[derive(Debug, Clone)]
pub struct Distilled {
    /// N×C×H×W in the model's input space, ready to feed.
    pub images: Array4<f32>,
    /// The loss (BN statistics + total variation) at every step run (fewer than asked
    /// when the loss stopped improving).
    pub loss_per_iteration: Vec<f32>,
    pub layers: Vec<LayerReport>,
    /// Whole call: graph build, session, steps, final evaluation.
    pub seconds: f64,
    /// Graph build and session creation.
    pub build_seconds: f64,
    pub seconds_per_step: f64,
    /// Whether the thermal (grey) prior was applied.
    pub grey: bool,
    /// Images per gradient-graph run (the batch, or the model's fixed batch).
    pub images_per_run: usize,
}

/// Distills `options.batch` images from `model`'s BatchNormalization statistics.
pub fn distill(
    model: &Model,
    options: &DistillOptions,
    provider: &ProviderOptions,
    progress: &mut dyn FnMut(&DistillProgress),
) -> Result<Distilled, ZsqError> {
    let start = Instant::now();
    check_options(options)?;
    let layers = find_bn_layers(model)?;
    let input = ImageInput::of(model)?;
    let [height, width] = match (options.size, input.height, input.width) {
        (Some(size), ..) => size,
        (None, Some(h), Some(w)) => [h, w],
        _ => {
            return Err(ZsqError::Options(format!(
                "input '{}' has no fixed height and width; give the size to distill at",
                input.name
            )));
        }
    };
    let grey = input.channels > 1
        && options.thermal.unwrap_or_else(|| {
            model
                .metadata("modality")
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("thermal"))
        });
    let spec = LossSpec {
        terms: options.loss,
        statistics: options.statistics,
    };
    let cancelled = || {
        options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    };
    let shape = [options.batch, input.channels, height, width];
    let engine = Engine::new(model, &layers, &input, shape, &spec, provider)?;
    let layout = Layout {
        batch: options.batch,
        optimised: if grey { 1 } else { input.channels },
        channels: input.channels,
        height,
        width,
    };
    let mut problem = Problem::new(engine, layout, options.total_variation);
    let build_seconds = start.elapsed().as_secs_f64();
    if cancelled() {
        return Err(ZsqError::Cancelled);
    }

    let mut params = vec![0.0f32; layout.params()];
    smooth_noise(
        &mut params,
        &mut SplitMix64::new(options.seed),
        [layout.batch * layout.optimised, height, width],
        options.init_smoothness,
        (options.init_mean, options.init_std),
    );
    let mut losses = Vec::with_capacity(options.iterations);
    let steps_start = Instant::now();
    let best = optimise(&mut problem, params, options, &cancelled, &mut |loss| {
        losses.push(loss);
        progress(&DistillProgress {
            iteration: losses.len(),
            iterations: options.iterations,
            loss,
        })
    })?;
    let steps = losses.len();
    let seconds_per_step = steps_start.elapsed().as_secs_f64() / steps.max(1) as f64;
    let (before, after) = (best.first_stats, best.stats);
    let reports = layers
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(layer, (b, a))| {
            let (mean_err_before, std_err_before) = errors(layer, b);
            let (mean_err_after, std_err_after) = errors(layer, a);
            LayerReport {
                name: layer.name.clone(),
                mean_err_before,
                std_err_before,
                mean_err_after,
                std_err_after,
            }
        })
        .collect();
    let mut images = vec![0.0; shape.iter().product()];
    layout.broadcast(&best.params, &mut images);
    let images = Array4::from_shape_vec(shape, images)
        .map_err(|e| ZsqError::Model(format!("distilled images: {e}")))?;
    Ok(Distilled {
        images,
        loss_per_iteration: losses,
        layers: reports,
        seconds: start.elapsed().as_secs_f64(),
        build_seconds,
        seconds_per_step,
        grey,
        images_per_run: problem.engine.per_run,
    })
}

/// The lowest-loss images of a run of steps, and the layers' statistics there and at
/// its first step.
struct Best {
    params: Vec<f32>,
    stats: Vec<LayerStats>,
    first_stats: Vec<LayerStats>,
}

/// Adam on `params` for up to `options.iterations` steps (warm-up, then a cosine),
/// clamped to the pixel range after every update; stops early by
/// `options.min_improvement`. Returns the best images seen.
fn optimise(
    problem: &mut Problem,
    mut params: Vec<f32>,
    options: &DistillOptions,
    cancelled: &dyn Fn() -> bool,
    on_step: &mut dyn FnMut(f32),
) -> Result<Best, ZsqError> {
    let clamp = |params: &mut [f32]| {
        if let Some([lo, hi]) = options.pixel_range {
            params.iter_mut().for_each(|p| *p = p.clamp(lo, hi));
        }
    };
    clamp(&mut params);
    let mut grad = vec![0.0f32; params.len()];
    let mut adam = Adam::new(params.len());
    let mut first_stats = None;
    // The lowest loss seen, with its images and statistics; the best loss after each
    // step (for the early stop); what the divergence guard has left of the step size.
    let mut best = (f32::INFINITY, params.clone(), Vec::new());
    let mut history: Vec<f32> = Vec::with_capacity(options.iterations);
    let mut stopped = false;
    let mut step_scale = 1.0f32;
    for step in 0..options.iterations {
        if cancelled() {
            return Err(ZsqError::Cancelled);
        }
        let (loss, stats) = problem.evaluate(&params, &mut grad, cancelled)?;
        if !loss.is_finite() {
            return Err(ZsqError::Model(format!(
                "the loss became {loss} at step {step}; lower the learning rate"
            )));
        }
        first_stats.get_or_insert_with(|| stats.clone());
        on_step(loss);
        let diverged = loss > DIVERGENCE * best.0;
        if loss < best.0 {
            best = (loss, params.clone(), stats);
        }
        history.push(best.0);
        if plateaued(&history, options.min_improvement) {
            stopped = true;
            break;
        }
        if diverged {
            // Adam's sign-like steps overshot: back to the best images, fresh moments,
            // half the step size.
            params.copy_from_slice(&best.1);
            adam = Adam::new(params.len());
            step_scale *= 0.5;
            continue;
        }
        let lr = step_scale * learning_rate(options, step);
        adam.step(&mut params, &grad, lr);
        clamp(&mut params);
    }
    // The last update is not evaluated yet: keep it if it is the best (a run that
    // stopped early made no update after its last evaluation).
    if !stopped {
        let (loss, stats) = problem.evaluate(&params, &mut grad, cancelled)?;
        first_stats.get_or_insert_with(|| stats.clone());
        if loss <= best.0 || best.2.is_empty() {
            best = (loss, params, stats);
        }
    }
    let first_stats = first_stats.unwrap_or_default();
    Ok(Best {
        params: best.1,
        stats: best.2,
        first_stats,
    })
}

/// Whether the best loss improved by less than `fraction` over the last [`PATIENCE`]
/// steps (never with `fraction` 0).
fn plateaued(best_after_step: &[f32], fraction: f32) -> bool {
    let n = best_after_step.len();
    fraction > 0.0
        && n > PATIENCE
        && best_after_step[n - 1] > (1.0 - fraction) * best_after_step[n - 1 - PATIENCE]
}

/// How the optimised images (N×P×H×W, P = 1 with the grey prior) map onto the
/// model's input (N×C×H×W).
#[derive(Debug, Clone, Copy)]
struct Layout {
    batch: usize,
    optimised: usize,
    channels: usize,
    height: usize,
    width: usize,
}

impl Layout {
    fn params(&self) -> usize {
        self.batch * self.optimised * self.height * self.width
    }

    /// The source plane of each input plane: (input offset, optimised offset).
    fn planes(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let plane = self.height * self.width;
        (0..self.batch).flat_map(move |i| {
            (0..self.channels).map(move |c| {
                let source = i * self.optimised + c.min(self.optimised - 1);
                ((i * self.channels + c) * plane, source * plane)
            })
        })
    }

    /// Copies the optimised images into the model's input (grey copied to every channel).
    fn broadcast(&self, params: &[f32], images: &mut [f32]) {
        let plane = self.height * self.width;
        for (dst, src) in self.planes() {
            images[dst..dst + plane].copy_from_slice(&params[src..src + plane]);
        }
    }

    /// The gradient w.r.t. the optimised images: channels copied from one grey
    /// channel sum their gradients.
    fn reduce(&self, gradient: &[f32], out: &mut [f32]) {
        let plane = self.height * self.width;
        out.fill(0.0);
        for (src, dst) in self.planes() {
            for (o, g) in out[dst..dst + plane]
                .iter_mut()
                .zip(&gradient[src..src + plane])
            {
                *o += g;
            }
        }
    }
}

/// What is optimised: the BN loss of the broadcast images plus the prior.
struct Problem {
    engine: Engine,
    layout: Layout,
    total_variation: f32,
    images: Vec<f32>,
    gradient: Vec<f32>,
}

impl Problem {
    fn new(engine: Engine, layout: Layout, total_variation: f32) -> Problem {
        let len = layout.batch * layout.channels * layout.height * layout.width;
        Problem {
            engine,
            layout,
            total_variation,
            images: vec![0.0; len],
            gradient: vec![0.0; len],
        }
    }

    /// The loss at `params`, its gradient w.r.t. them (into `grad`), and the layers'
    /// statistics.
    fn evaluate(
        &mut self,
        params: &[f32],
        grad: &mut [f32],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(f32, Vec<LayerStats>), ZsqError> {
        self.layout.broadcast(params, &mut self.images);
        let (mut loss, stats) =
            self.engine
                .evaluate(&self.images, &mut self.gradient, cancelled)?;
        self.layout.reduce(&self.gradient, grad);
        if self.total_variation > 0.0 {
            let l = self.layout;
            loss += total_variation(
                params,
                grad,
                [l.batch * l.optimised, l.height, l.width],
                self.total_variation,
            );
        }
        Ok((loss, stats))
    }
}

fn check_options(o: &DistillOptions) -> Result<(), ZsqError> {
    let bad = |what: String| Err(ZsqError::Options(what));
    if o.batch == 0 {
        return bad("the batch must hold at least one image".into());
    }
    if !(o.learning_rate.is_finite() && o.learning_rate > 0.0) {
        return bad(format!(
            "learning rate {} is not a positive number",
            o.learning_rate
        ));
    }
    if !(0.0..1.0).contains(&o.warmup) {
        return bad(format!("warmup {} is not a fraction in [0, 1)", o.warmup));
    }
    if !(o.total_variation.is_finite() && o.total_variation >= 0.0) {
        return bad(format!(
            "total-variation weight {} is not a non-negative number",
            o.total_variation
        ));
    }
    if !(o.init_mean.is_finite() && o.init_std.is_finite() && o.init_std >= 0.0) {
        return bad(format!(
            "initial noise N({}, {}²) is not a distribution",
            o.init_mean, o.init_std
        ));
    }
    if !(0.0..1.0).contains(&o.min_improvement) {
        return bad(format!(
            "minimum improvement {} is not a fraction in [0, 1)",
            o.min_improvement
        ));
    }
    if o.init_smoothness == 0 {
        return bad("the noise grid spacing must be at least 1 pixel".into());
    }
    if o.pixel_range
        .is_some_and(|[lo, hi]| !(lo.is_finite() && hi.is_finite() && lo < hi))
    {
        return bad(format!(
            "pixel range {:?} is not an interval",
            o.pixel_range
        ));
    }
    if o.size.is_some_and(|s| s.contains(&0)) {
        return bad("the image size must not be zero".into());
    }
    Ok(())
}

/// A loss this many times its best so far means the step size is too large.
const DIVERGENCE: f32 = 1.5;

/// Steps over which [`DistillOptions::min_improvement`] is measured.
pub const PATIENCE: usize = 5;

/// Linear warmup to the peak, then a cosine down to 1 % of it.
fn learning_rate(o: &DistillOptions, step: usize) -> f32 {
    let total = o.iterations.max(1) as f32;
    let warmup = (o.warmup * total).round();
    let t = step as f32;
    if t < warmup {
        return o.learning_rate * (t + 1.0) / (warmup + 1.0);
    }
    let progress = ((t - warmup) / (total - warmup).max(1.0)).min(1.0);
    let floor = 0.01;
    o.learning_rate
        * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos()))
}

/// The gradient graph, run once per step or, for a model whose graph needs its own
/// fixed batch, once per slice of that many images.
struct Engine {
    session: GradientSession,
    per_run: usize,
}

impl Engine {
    fn new(
        model: &Model,
        layers: &[BnLayer],
        input: &ImageInput,
        shape: [usize; 4],
        spec: &LossSpec,
        provider: &ProviderOptions,
    ) -> Result<Engine, ZsqError> {
        let whole = build_gradient_graph(model, layers, shape, spec, provider);
        let graph = match (whole, input.batch) {
            (Ok(graph), _) => graph,
            (Err(ZsqError::Model(why)), Some(fixed)) if fixed != shape[0] => {
                if !shape[0].is_multiple_of(fixed) {
                    return Err(ZsqError::Options(format!(
                        "the model only runs batches of {fixed} ({why}); ask for a multiple of {fixed} images"
                    )));
                }
                if spec.statistics == Statistics::Batch {
                    return Err(ZsqError::Model(format!(
                        "the model only runs batches of {fixed} ({why}); batch statistics need \
                         the whole batch in one run: use per-image statistics"
                    )));
                }
                build_gradient_graph(
                    model,
                    layers,
                    [fixed, shape[1], shape[2], shape[3]],
                    spec,
                    provider,
                )?
            }
            (Err(e), _) => return Err(e),
        };
        let per_run = graph.input_shape[0];
        Ok(Engine {
            session: GradientSession::new(&graph, provider)?,
            per_run,
        })
    }

    /// Loss and gradient of the whole batch (the mean over runs: each run's loss is
    /// already a mean over its images), and every layer's statistics.
    fn evaluate(
        &mut self,
        images: &[f32],
        gradient: &mut [f32],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(f32, Vec<LayerStats>), ZsqError> {
        let chunk = self.session.input_shape().iter().product::<usize>();
        let runs = images.len() / chunk;
        let mut loss = 0.0;
        let mut stats: Vec<LayerStats> = Vec::new();
        for (i, (x, g)) in images
            .chunks(chunk)
            .zip(gradient.chunks_mut(chunk))
            .enumerate()
        {
            if i > 0 && cancelled() {
                return Err(ZsqError::Cancelled);
            }
            let eval = self.session.run(x, g)?;
            loss += eval.loss / runs as f32;
            if stats.is_empty() {
                stats = eval.layers;
            } else {
                for (all, part) in stats.iter_mut().zip(eval.layers) {
                    all.mean.extend(part.mean);
                    all.std.extend(part.std);
                }
            }
        }
        if runs > 1 {
            let scale = 1.0 / runs as f32;
            gradient.iter_mut().for_each(|g| *g *= scale);
        }
        Ok((loss, stats))
    }
}

/// Gaussian noise on a grid `spacing` times coarser than the `[planes, h, w]` images,
/// interpolated bilinearly, then shifted and scaled to `(mean, std)` per plane.
fn smooth_noise(
    out: &mut [f32],
    rng: &mut SplitMix64,
    [planes, h, w]: [usize; 3],
    spacing: usize,
    (mean, std): (f32, f32),
) {
    let (gh, gw) = (h.div_ceil(spacing) + 1, w.div_ceil(spacing) + 1);
    let mut grid = vec![0.0f64; gh * gw];
    for plane in out.chunks_mut(h * w).take(planes) {
        grid.iter_mut().for_each(|g| *g = rng.normal());
        let at = |y: usize, x: usize| grid[y * gw + x];
        let mut values = Vec::with_capacity(h * w);
        for y in 0..h {
            let (y0, ty) = (y / spacing, (y % spacing) as f64 / spacing as f64);
            for x in 0..w {
                let (x0, tx) = (x / spacing, (x % spacing) as f64 / spacing as f64);
                let top = (1.0 - tx) * at(y0, x0) + tx * at(y0, x0 + 1);
                let bottom = (1.0 - tx) * at(y0 + 1, x0) + tx * at(y0 + 1, x0 + 1);
                values.push((1.0 - ty) * top + ty * bottom);
            }
        }
        let n = values.len().max(1) as f64;
        let m = values.iter().sum::<f64>() / n;
        let sd = (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
        let k = if sd > 0.0 { f64::from(std) / sd } else { 0.0 };
        for (o, v) in plane.iter_mut().zip(values) {
            *o = mean + ((v - m) * k) as f32;
        }
    }
}

/// Adds `weight` × the mean squared difference between vertical and horizontal
/// neighbours of `planes` (K×H×W) to `grad`, and returns that prior's value.
fn total_variation(params: &[f32], grad: &mut [f32], [k, h, w]: [usize; 3], weight: f32) -> f32 {
    let scale = weight / params.len().max(1) as f32;
    let mut total = 0.0f64;
    for plane in 0..k {
        let base = plane * h * w;
        for y in 0..h {
            for x in 0..w {
                let i = base + y * w + x;
                for j in [(x + 1 < w).then(|| i + 1), (y + 1 < h).then(|| i + w)]
                    .into_iter()
                    .flatten()
                {
                    let d = params[j] - params[i];
                    total += f64::from(d * d);
                    grad[j] += 2.0 * scale * d;
                    grad[i] -= 2.0 * scale * d;
                }
            }
        }
    }
    (total as f32) * scale
}

/// RMS distance of a layer's statistics from its BN statistics (channel c of group g
/// is g mod C).
fn errors(layer: &BnLayer, stats: &LayerStats) -> (f32, f32) {
    let sigma = layer.std();
    let c = layer.channels().max(1);
    let rms = |values: &[f32], target: &[f32]| {
        let sum: f64 = values
            .iter()
            .enumerate()
            .map(|(g, v)| f64::from(v - target[g % c]).powi(2))
            .sum();
        (sum / values.len().max(1) as f64).sqrt() as f32
    };
    (rms(&stats.mean, &layer.mean), rms(&stats.std, &sigma))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let o = DistillOptions {
            iterations: 100,
            learning_rate: 1.0,
            warmup: 0.1,
            ..DistillOptions::default()
        };
        let lr: Vec<f32> = (0..100).map(|t| learning_rate(&o, t)).collect();
        assert!(lr[0] < 0.1 && lr[9] < 1.0);
        assert!((lr[10] - 1.0).abs() < 1e-6);
        assert!(lr.windows(2).skip(10).all(|w| w[1] <= w[0]));
        assert!(lr[99] < 0.02);
    }

    #[test]
    fn smooth_noise_has_the_asked_statistics_and_is_smooth() {
        let (h, w) = (32, 32);
        let mut white = vec![0.0; h * w];
        let mut smooth = vec![0.0; h * w];
        smooth_noise(
            &mut white,
            &mut SplitMix64::new(1),
            [1, h, w],
            1,
            (0.5, 0.25),
        );
        smooth_noise(
            &mut smooth,
            &mut SplitMix64::new(1),
            [1, h, w],
            8,
            (0.5, 0.25),
        );
        for plane in [&white, &smooth] {
            let m = plane.iter().sum::<f32>() / plane.len() as f32;
            let v = plane.iter().map(|x| (x - m).powi(2)).sum::<f32>() / plane.len() as f32;
            assert!(
                (m - 0.5).abs() < 1e-4 && (v.sqrt() - 0.25).abs() < 1e-4,
                "{m} {v}"
            );
        }
        let roughness = |p: &[f32]| p.windows(2).map(|d| (d[1] - d[0]).powi(2)).sum::<f32>();
        assert!(roughness(&smooth) < 0.1 * roughness(&white));
    }

    #[test]
    fn total_variation_gradient_matches_differences() {
        let params: Vec<f32> = (0..12).map(|i| ((i * 7) % 5) as f32 * 0.3).collect();
        let mut grad = vec![0.0; 12];
        let tv = total_variation(&params, &mut grad, [1, 3, 4], 0.5);
        let h = 1e-2;
        for i in 0..12 {
            let mut p = params.clone();
            p[i] += h;
            let up = total_variation(&p, &mut [0.0; 12], [1, 3, 4], 0.5);
            p[i] -= 2.0 * h;
            let down = total_variation(&p, &mut [0.0; 12], [1, 3, 4], 0.5);
            let fd = (up - down) / (2.0 * h);
            assert!((fd - grad[i]).abs() < 1e-3, "{i}: {fd} vs {}", grad[i]);
        }
        assert!(tv > 0.0);
    }

    #[test]
    fn grey_images_broadcast_and_gradients_sum() {
        // 2 images, 1 grey channel to 3, 1×2 pixels.
        let layout = Layout {
            batch: 2,
            optimised: 1,
            channels: 3,
            height: 1,
            width: 2,
        };
        let params = vec![1.0, 2.0, 3.0, 4.0];
        let mut images = vec![0.0; 12];
        layout.broadcast(&params, &mut images);
        assert_eq!(images, [1., 2., 1., 2., 1., 2., 3., 4., 3., 4., 3., 4.]);
        let mut out = vec![0.0; 4];
        layout.reduce(&images, &mut out);
        assert_eq!(out, [3., 6., 9., 12.]);
        // Without the prior every channel is its own.
        let colour = Layout {
            optimised: 3,
            ..layout
        };
        let mut copy = vec![0.0; 12];
        colour.broadcast(&images, &mut copy);
        assert_eq!(copy, images);
    }
}
