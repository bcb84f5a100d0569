//! Activation calibration: run the float model on calibration images with the tensors
//! to quantize exposed as extra outputs, stream their statistics image by image, and
//! choose one range per tensor with an observer.
//!
//! Statistics are streamed: nothing of an image is kept once its statistics are added
//! (ONNX Runtime's own calibrators keep every intermediate of every image, ~4 GB for 64
//! images at 320). Observers that need a histogram run the images twice: the first
//! pass finds each tensor's min and max, the second fills a histogram whose range is
//! then fixed, `[-A, A]` with `A = max(|min|, |max|)` and [`BINS_PER_SIGN`] bins on each
//! side of zero (so folding the two halves gives TensorRT's 2048-bin |x| histogram, and
//! keeping the sign lets an asymmetric uint8 range be chosen).
//!
//! Observers (docs/quantize.md has the definitions):
//! - `minmax`: the observed min and max.
//! - `percentile`: the p-th percentile of |x| (symmetric profiles), or the (100−p)-th
//!   and p-th percentiles of x (asymmetric); p = 99.999 by default (as ONNX Runtime's percentile calibrator).
//! - `entropy`: the clipping threshold minimising the KL divergence between the
//!   histogram and its quantized version (TensorRT's algorithm, 2048 bins per sign).
//! - `mse`: the clipping threshold minimising the expected squared quantisation error
//!   (rounding noise `s²/12` inside the range, clipping error outside).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ndarray::{ArrayView4, Axis};
use ort::value::TensorRef;

use super::ZsqError;
use super::qparams::Range;
use crate::onnx::{DataType, Model};
use crate::runtime::{ProviderOptions, RuntimeError, load_session_from_memory};

/// Histogram bins on each side of zero.
pub const BINS_PER_SIGN: usize = 2048;

/// How a tensor's range is chosen from its statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observer {
    MinMax,
    /// Percentile in (0, 100], e.g. 99.999.
    Percentile(f64),
    Entropy,
    Mse,
}

/// The default observer: minmax, the best measured for zero-shot calibration on the
/// thermal detector (distilled images: 99.1 % of fp32 mAP, percentile 97.8 %) and
/// within 0.1 point of the best for real images (docs/quantize.md).
impl Default for Observer {
    fn default() -> Self {
        Observer::MinMax
    }
}

impl Observer {
    pub const DEFAULT_PERCENTILE: f64 = 99.999;

    /// Whether the observer needs the histogram pass.
    pub fn needs_histogram(self) -> bool {
        self != Observer::MinMax
    }
}

impl fmt::Display for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observer::MinMax => f.write_str("minmax"),
            Observer::Percentile(p) if *p == Self::DEFAULT_PERCENTILE => f.write_str("percentile"),
            Observer::Percentile(p) => write!(f, "percentile:{p}"),
            Observer::Entropy => f.write_str("entropy"),
            Observer::Mse => f.write_str("mse"),
        }
    }
}

impl FromStr for Observer {
    type Err = ZsqError;

    /// `minmax`, `percentile` (99.999) or `percentile:P`, `entropy`, `mse`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ZsqError::Options(format!(
                "unknown observer `{s}` (expected minmax, percentile, percentile:P with 0 < P <= 100, entropy or mse)"
            ))
        };
        match s.to_ascii_lowercase().as_str() {
            "minmax" => Ok(Observer::MinMax),
            "percentile" => Ok(Observer::Percentile(Self::DEFAULT_PERCENTILE)),
            "entropy" | "kl" => Ok(Observer::Entropy),
            "mse" => Ok(Observer::Mse),
            other => {
                let p: f64 = other
                    .strip_prefix("percentile:")
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?;
                if p > 0.0 && p <= 100.0 {
                    Ok(Observer::Percentile(p))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// Signed histogram over `[-amax, amax]`, [`BINS_PER_SIGN`] bins per sign, plus the
/// exact min, max and count of exact zeros (exactly representable, so error-free).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub amax: f32,
    pub counts: Vec<u64>,
    pub min: f32,
    pub max: f32,
    pub zeros: u64,
    pub total: u64,
}

impl Histogram {
    /// An empty histogram for values within `[min, max]` (from the first pass).
    pub fn new(min: f32, max: f32) -> Self {
        Histogram {
            amax: min.abs().max(max.abs()),
            counts: vec![0; 2 * BINS_PER_SIGN],
            min,
            max,
            zeros: 0,
            total: 0,
        }
    }

    /// Width of one bin.
    pub fn bin_width(&self) -> f64 {
        f64::from(self.amax) / BINS_PER_SIGN as f64
    }

    /// Adds finite values (others are skipped); values outside `[-amax, amax]` go to
    /// the edge bins.
    pub fn add(&mut self, values: &[f32]) {
        if self.amax <= 0.0 {
            let n = values.iter().filter(|v| v.is_finite()).count() as u64;
            self.counts[BINS_PER_SIGN] += n;
            self.zeros += n;
            self.total += n;
            return;
        }
        let inv = BINS_PER_SIGN as f32 / self.amax;
        let offset = BINS_PER_SIGN as f32;
        let last = 2 * BINS_PER_SIGN as i32 - 1;
        let (mut zeros, mut total) = (0u64, 0u64);
        for &v in values {
            if !v.is_finite() {
                continue;
            }
            zeros += u64::from(v == 0.0);
            total += 1;
            // In range, v·inv + offset is >= 0, where truncation is floor (and much
            // cheaper than f32::floor on baseline x86-64); below range it clamps to 0.
            let b = ((v * inv + offset) as i32).clamp(0, last);
            self.counts[b as usize] += 1;
        }
        self.zeros += zeros;
        self.total += total;
    }

    /// |x| histogram: bin j counts values with |x| in `[j·w, (j+1)·w)`.
    fn folded(&self) -> Vec<u64> {
        (0..BINS_PER_SIGN)
            .map(|j| self.counts[BINS_PER_SIGN + j] + self.counts[BINS_PER_SIGN - 1 - j])
            .collect()
    }

    /// The value below which `q` (0..=1) of the mass lies, interpolating linearly within
    /// a bin; clamped to the observed min/max.
    fn quantile(&self, q: f64) -> f32 {
        let target = q * self.total as f64;
        let w = self.bin_width();
        let mut acc = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            // Exact zeros sit at the start of the bin [0, w): a point mass at 0.
            if i == BINS_PER_SIGN && self.zeros > 0 && acc + self.zeros as f64 >= target {
                return 0.0f32.clamp(self.min, self.max);
            }
            let next = acc + c as f64;
            if c > 0 && next >= target {
                let (acc, c) = if i == BINS_PER_SIGN {
                    // The zeros are below every other value of this bin.
                    (acc + self.zeros as f64, c - self.zeros)
                } else {
                    (acc, c)
                };
                let frac = ((target - acc) / c.max(1) as f64).clamp(0.0, 1.0);
                let x = (i as f64 - BINS_PER_SIGN as f64 + frac) * w;
                return (x as f32).clamp(self.min, self.max);
            }
            acc = next;
        }
        self.max
    }

    fn abs_quantile(&self, q: f64) -> f32 {
        let folded = self.folded();
        let target = q * self.total as f64;
        let w = self.bin_width();
        let mut acc = 0.0;
        let amax_seen = self.min.abs().max(self.max.abs());
        for (j, &c) in folded.iter().enumerate() {
            let next = acc + c as f64;
            if c > 0 && next >= target {
                let frac = ((target - acc) / c as f64).clamp(0.0, 1.0);
                return (((j as f64 + frac) * w) as f32).min(amax_seen);
            }
            acc = next;
        }
        amax_seen
    }

    /// The percentile observer's range (`p` in percent).
    pub fn percentile_range(&self, p: f64, symmetric: bool) -> Range {
        if self.total == 0 {
            return Range { min: 0.0, max: 0.0 };
        }
        let q = p / 100.0;
        if symmetric {
            let t = self.abs_quantile(q);
            Range { min: -t, max: t }
        } else {
            Range {
                min: self.quantile(1.0 - q),
                max: self.quantile(q),
            }
        }
    }

    /// The windows the entropy and MSE observers choose among, by threshold index `i`
    /// (threshold `t = i·w`): bins `[lo, hi)` of the signed histogram. Symmetric:
    /// `[-t, t]`; asymmetric: `[max(min, -t), min(max, t)]`, which contains zero.
    fn window(&self, i: usize, symmetric: bool) -> (usize, usize) {
        let z = BINS_PER_SIGN;
        if symmetric {
            return (z - i, z + i);
        }
        let (lo_needed, hi_needed) = self.data_bins();
        (z - i.min(lo_needed), z + i.min(hi_needed))
    }

    /// Bins needed below and above zero to hold the observed min and max.
    fn data_bins(&self) -> (usize, usize) {
        let w = self.bin_width();
        let bins = |v: f32| ((f64::from(v.abs()) / w).ceil() as usize).min(BINS_PER_SIGN);
        (bins(self.min.min(0.0)), bins(self.max.max(0.0)))
    }

    /// The largest threshold index worth trying: beyond it the window stops growing.
    fn max_index(&self) -> usize {
        let (lo, hi) = self.data_bins();
        lo.max(hi).max(1)
    }

    fn range_of_window(&self, lo: usize, hi: usize) -> Range {
        let w = self.bin_width();
        let z = BINS_PER_SIGN as f64;
        Range {
            min: (((lo as f64 - z) * w) as f32).max(self.min.min(0.0)),
            max: (((hi as f64 - z) * w) as f32).min(self.max.max(0.0)),
        }
    }

    /// The entropy (KL divergence) observer's range: among thresholds of at least
    /// `levels` bins (128 for int8's positive half on the |x| histogram, 256 for a
    /// uint8 window), the one whose clipped, quantized distribution Q is closest to
    /// the clipped reference P (outliers added to the edge bins), as TensorRT does.
    pub fn entropy_range(&self, symmetric: bool) -> Range {
        if self.total == 0 || self.amax <= 0.0 {
            return Range { min: 0.0, max: 0.0 };
        }
        let top = self.max_index();
        // Exact zeros (ReLU's spike) are represented exactly by the zero point: leave
        // them out, or the spike's group dominates the divergence and every window
        // wider than one bin per level looks bad.
        let mut counts = self.counts.clone();
        counts[BINS_PER_SIGN] -= self.zeros.min(counts[BINS_PER_SIGN]);
        if symmetric {
            let folded: Vec<u64> = (0..BINS_PER_SIGN)
                .map(|j| counts[BINS_PER_SIGN + j] + counts[BINS_PER_SIGN - 1 - j])
                .collect();
            let levels = 128;
            if top <= levels {
                return self.range_of_window(BINS_PER_SIGN - top, BINS_PER_SIGN + top);
            }
            let table = KlTable::new(&folded);
            let mut best = (f64::INFINITY, top);
            for i in levels..=top {
                let kl = table.kl(0, i, levels);
                if kl < best.0 {
                    best = (kl, i);
                }
            }
            let t = (best.1 as f64 * self.bin_width()) as f32;
            Range { min: -t, max: t }
        } else {
            let levels = 256;
            let table = KlTable::new(&counts);
            let mut best: Option<(f64, usize, usize)> = None;
            let mut last = (usize::MAX, usize::MAX);
            for i in 1..=top {
                let (lo, hi) = self.window(i, false);
                if hi - lo < levels || (lo, hi) == last {
                    continue;
                }
                last = (lo, hi);
                let kl = table.kl(lo, hi, levels);
                if best.is_none_or(|b| kl < b.0) {
                    best = Some((kl, lo, hi));
                }
            }
            match best {
                Some((_, lo, hi)) => self.range_of_window(lo, hi),
                // Fewer bins than levels: nothing to clip.
                None => Range {
                    min: self.min.min(0.0),
                    max: self.max.max(0.0),
                },
            }
        }
    }

    /// The MSE observer's range: the threshold minimising, over the histogram (bin
    /// centres), `Σ_inside n·s²/12 + Σ_outside n·(x − clip(x))²` with `s` the step of
    /// the window's quantization grid (255 steps for uint8, 127 per sign for int8).
    /// Exact zeros are exactly representable and count as error-free.
    pub fn mse_range(&self, symmetric: bool) -> Range {
        if self.total == 0 || self.amax <= 0.0 {
            return Range { min: 0.0, max: 0.0 };
        }
        let w = self.bin_width();
        let z = BINS_PER_SIGN as f64;
        // Prefix sums of n, n·x, n·x² over bin centres.
        let len = self.counts.len();
        let (mut s0, mut s1, mut s2) = (vec![0.0; len + 1], vec![0.0; len + 1], vec![0.0; len + 1]);
        for (i, &c) in self.counts.iter().enumerate() {
            let n = c as f64;
            let x = (i as f64 - z + 0.5) * w;
            s0[i + 1] = s0[i] + n;
            s1[i + 1] = s1[i] + n * x;
            s2[i + 1] = s2[i] + n * x * x;
        }
        // Σ n (x − a)² over bins [from, to).
        let clip_err = |from: usize, to: usize, a: f64| {
            let (n, sx, sxx) = (s0[to] - s0[from], s1[to] - s1[from], s2[to] - s2[from]);
            (sxx - 2.0 * a * sx + a * a * n).max(0.0)
        };
        let top = self.max_index();
        let mut best: Option<(f64, usize, usize)> = None;
        let mut last = (usize::MAX, usize::MAX);
        for i in 1..=top {
            let (lo, hi) = self.window(i, symmetric);
            if (lo, hi) == last {
                continue;
            }
            last = (lo, hi);
            let (a, b) = ((lo as f64 - z) * w, (hi as f64 - z) * w);
            let step = if symmetric {
                b / 127.0
            } else {
                (b - a) / 255.0
            };
            let inside = (s0[hi] - s0[lo] - self.zeros as f64).max(0.0);
            let err = inside * step * step / 12.0 + clip_err(0, lo, a) + clip_err(hi, len, b);
            if best.is_none_or(|bst| err < bst.0) {
                best = Some((err, lo, hi));
            }
        }
        let (_, lo, hi) = best.expect("at least one window");
        let r = self.range_of_window(lo, hi);
        if symmetric {
            let t = r.min.abs().max(r.max.abs());
            Range { min: -t, max: t }
        } else {
            r
        }
    }
}

/// KL divergences of clipped, quantized windows of one histogram, each in
/// O(`levels`) with prefix sums.
///
/// For the bins `[lo, hi)`: P is the window with the mass outside it added to its edge
/// bins; Q merges the window's own bins into `levels` groups and spreads each group's
/// mass evenly over the bins where P is non-zero (TensorRT's construction). Bins where
/// P is zero contribute nothing; a P-bin whose group is empty in Q (only outliers
/// landed there) gets Q = 1e-4 / bins, so clipping into empty space costs a lot but
/// not infinitely.
struct KlTable<'a> {
    hist: &'a [u64],
    /// Prefix sums: counts, non-zero bins, c·ln c.
    count: Vec<f64>,
    nonzero: Vec<u32>,
    clnc: Vec<f64>,
}

fn xlnx(x: f64) -> f64 {
    if x > 0.0 { x * x.ln() } else { 0.0 }
}

impl<'a> KlTable<'a> {
    fn new(hist: &'a [u64]) -> Self {
        let len = hist.len();
        let (mut count, mut nonzero, mut clnc) =
            (vec![0.0; len + 1], vec![0u32; len + 1], vec![0.0; len + 1]);
        for (i, &c) in hist.iter().enumerate() {
            let c = c as f64;
            count[i + 1] = count[i] + c;
            nonzero[i + 1] = nonzero[i] + u32::from(c > 0.0);
            clnc[i + 1] = clnc[i] + xlnx(c);
        }
        KlTable {
            hist,
            count,
            nonzero,
            clnc,
        }
    }

    fn kl(&self, lo: usize, hi: usize, levels: usize) -> f64 {
        let len = self.hist.len();
        let n = hi - lo;
        let total = self.count[len];
        let window = self.count[hi] - self.count[lo];
        if total <= 0.0 || window <= 0.0 || n < levels {
            return f64::INFINITY;
        }
        let below = self.count[lo];
        let above = total - self.count[hi];
        let (first, last) = (self.hist[lo] as f64, self.hist[hi - 1] as f64);
        // Σ p ln p over P's bins (edge bins carry the outliers).
        let plnp = self.clnc[hi] - self.clnc[lo] - xlnx(first) - xlnx(last)
            + xlnx(first + below)
            + xlnx(last + above);
        let mut cross = 0.0; // Σ_g P_g · ln q̂_g
        let per = n as f64 / levels as f64;
        for g in 0..levels {
            let start = lo + (g as f64 * per) as usize;
            let stop = if g == levels - 1 {
                hi
            } else {
                lo + ((g + 1) as f64 * per) as usize
            };
            if start >= stop {
                continue;
            }
            let mass = self.count[stop] - self.count[start];
            let mut p_mass = mass;
            let mut k = f64::from(self.nonzero[stop] - self.nonzero[start]);
            if start == lo && below > 0.0 {
                p_mass += below;
                k += f64::from(first == 0.0);
            }
            if stop == hi && above > 0.0 {
                p_mass += above;
                k += f64::from(last == 0.0);
            }
            if p_mass <= 0.0 {
                continue;
            }
            let q = if mass > 0.0 {
                mass / (k * window)
            } else {
                1e-4 / n as f64
            };
            cross += p_mass * q.ln();
        }
        (plnp - cross) / total - total.ln()
    }
}

/// Streamed statistics of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorStats {
    pub min: f32,
    pub max: f32,
    pub count: u64,
    pub histogram: Option<Histogram>,
}

impl Default for TensorStats {
    fn default() -> Self {
        TensorStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            count: 0,
            histogram: None,
        }
    }
}

impl TensorStats {
    /// First pass: min and max of the finite values.
    pub fn add_minmax(&mut self, values: &[f32]) {
        // Fast path without a branch per value (f32::min/max skip NaN); only when an
        // infinity shows up are the finite values looked for one by one.
        let (lo, hi) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if lo.is_finite() && hi.is_finite() {
            let nans = values.iter().filter(|v| v.is_nan()).count();
            self.min = self.min.min(lo);
            self.max = self.max.max(hi);
            self.count += (values.len() - nans) as u64;
            return;
        }
        for &v in values.iter().filter(|v| v.is_finite()) {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.count += 1;
        }
    }

    /// Second pass: the histogram over the range the first pass found.
    pub fn add_histogram(&mut self, values: &[f32]) {
        let (min, max) = self.observed();
        self.histogram
            .get_or_insert_with(|| Histogram::new(min, max))
            .add(values);
    }

    /// Observed min and max (0, 0 when nothing finite was seen).
    pub fn observed(&self) -> (f32, f32) {
        if self.count == 0 {
            (0.0, 0.0)
        } else {
            (self.min, self.max)
        }
    }

    /// The range `observer` chooses (asymmetric for uint8 activations).
    pub fn range(&self, observer: Observer, symmetric: bool) -> Range {
        let (min, max) = self.observed();
        let minmax = if symmetric {
            let a = min.abs().max(max.abs());
            Range { min: -a, max: a }
        } else {
            Range { min, max }
        };
        let Some(h) = &self.histogram else {
            return minmax;
        };
        match observer {
            Observer::MinMax => minmax,
            Observer::Percentile(p) => h.percentile_range(p, symmetric),
            Observer::Entropy => h.entropy_range(symmetric),
            Observer::Mse => h.mse_range(symmetric),
        }
    }
}

/// How to calibrate.
#[derive(Debug, Clone, Default)]
pub struct CalibrationOptions {
    pub observer: Observer,
    /// Symmetric ranges (int8 activations with zero point 0).
    pub symmetric: bool,
    pub provider: ProviderOptions,
    /// Checked before every run: raised, calibration stops with `Cancelled`.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// The outcome for one tensor.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TensorRange {
    /// What the images produced.
    pub observed: Range,
    /// What the observer chose.
    pub range: Range,
}

/// Ranges of every calibrated tensor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calibration {
    pub tensors: BTreeMap<String, TensorRange>,
    /// Images run through the model (per pass).
    pub images: usize,
    /// Passes over the images (2 when the observer needs histograms).
    pub passes: usize,
}

/// Runs `model` (float32, one image input) on `images` (N, C, H, W, in the model's
/// pre-processed input space) with `tensors` exposed as outputs, streaming their
/// statistics, and chooses a range per tensor. `progress(done, total)` is called after
/// every run.
pub fn calibrate(
    model: &Model,
    tensors: &[String],
    images: ArrayView4<f32>,
    options: &CalibrationOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Calibration, ZsqError> {
    let mut exposed = model.clone();
    {
        let graph = exposed.graph_mut();
        let outputs: std::collections::HashSet<String> =
            graph.output.iter().map(|o| o.name().to_string()).collect();
        for t in tensors.iter().filter(|t| !outputs.contains(*t)) {
            graph.add_output(t, DataType::Float)?;
        }
    }
    let mut loaded = load_session_from_memory(&exposed.to_bytes(), &options.provider)?;
    let input = loaded
        .info
        .inputs
        .first()
        .ok_or_else(|| ZsqError::Model("the model has no input".into()))?
        .clone();
    let shape = images.shape();
    let model_dims = &input.dims;
    if model_dims.len() != 4 {
        return Err(ZsqError::Model(format!(
            "input '{}' has {} dimensions; calibration needs an image input (N, C, H, W)",
            input.name,
            model_dims.len()
        )));
    }
    for (axis, (&want, &got)) in model_dims[1..].iter().zip(&shape[1..]).enumerate() {
        if want >= 0 && want as usize != got {
            return Err(ZsqError::Images(format!(
                "calibration images are {}x{}x{} but input '{}' takes {:?} (C, H, W; axis {} differs)",
                shape[1],
                shape[2],
                shape[3],
                input.name,
                &model_dims[1..],
                axis + 1
            )));
        }
    }
    let batch = match model_dims[0] {
        b if b > 0 => b as usize,
        _ => 1,
    };
    let n = shape[0];
    if n == 0 || !n.is_multiple_of(batch) {
        return Err(ZsqError::Images(format!(
            "{n} calibration images, but input '{}' takes batches of exactly {batch}: give a multiple of {batch}",
            input.name
        )));
    }
    let passes = if options.observer.needs_histogram() {
        2
    } else {
        1
    };
    let total = passes * n;
    let mut stats = vec![TensorStats::default(); tensors.len()];
    let mut done = 0;
    for pass in 0..passes {
        for chunk in images.axis_chunks_iter(Axis(0), batch) {
            if options
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Err(ZsqError::Cancelled);
            }
            let chunk = chunk.as_standard_layout();
            let dims = [batch, shape[1], shape[2], shape[3]];
            let data = chunk.as_slice().expect("standard layout");
            let outputs = loaded.session.run(ort::inputs![
                input.name.as_str() => TensorRef::from_array_view((dims, data))?
            ])?;
            for (t, s) in tensors.iter().zip(stats.iter_mut()) {
                let value = outputs.get(t.as_str()).ok_or_else(|| {
                    ZsqError::Runtime(RuntimeError(format!(
                        "tensor '{t}' is missing from the outputs"
                    )))
                })?;
                let (_, values) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| ZsqError::Runtime(RuntimeError(format!("tensor '{t}': {e}"))))?;
                if pass == 0 {
                    s.add_minmax(values);
                } else {
                    s.add_histogram(values);
                }
            }
            done += batch;
            progress(done, total);
        }
    }
    let mut ranges = choose_ranges(&stats, options.observer, options.symmetric);
    // The image input keeps its observed range whatever the observer: pixels are
    // bounded by construction (no outliers to clip), and a clipping observer on a
    // peaked image histogram cuts the bright end every detection depends on
    // (measured: entropy put a YOLO11 fixture's input at [0, 0.165], stem cosine 0.09).
    if let Some(i) = tensors.iter().position(|t| *t == input.name) {
        ranges[i] = stats[i].range(Observer::MinMax, options.symmetric);
    }
    Ok(Calibration {
        tensors: tensors
            .iter()
            .zip(stats.iter().zip(ranges))
            .map(|(t, (s, range))| {
                let (min, max) = s.observed();
                (
                    t.clone(),
                    TensorRange {
                        observed: Range { min, max },
                        range,
                    },
                )
            })
            .collect(),
        images: n,
        passes,
    })
}

/// Ranges for all tensors, computed on every core (the entropy search is the costly
/// part: up to 2048 thresholds × 4096 bins per tensor).
pub fn choose_ranges(stats: &[TensorStats], observer: Observer, symmetric: bool) -> Vec<Range> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(stats.len().max(1));
    let per = stats.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = stats
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|s| s.range(observer, symmetric))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("range computation panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of standard-normal-ish values (sum of uniforms).
    fn gaussian(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64) / (1u64 << 31) as f64
        };
        (0..n)
            .map(|_| ((0..12).map(|_| next()).sum::<f64>() - 6.0) as f32)
            .collect()
    }

    fn stats_of(values: &[f32]) -> TensorStats {
        let mut s = TensorStats::default();
        for chunk in values.chunks(1000) {
            s.add_minmax(chunk);
        }
        for chunk in values.chunks(1000) {
            s.add_histogram(chunk);
        }
        s
    }

    #[test]
    fn observers_parse_and_print() {
        for name in ["minmax", "percentile", "entropy", "mse", "percentile:99.9"] {
            let o: Observer = name.parse().unwrap();
            assert_eq!(o.to_string(), name);
        }
        assert!("percentile:0".parse::<Observer>().is_err());
        assert!("max".parse::<Observer>().is_err());
    }

    #[test]
    fn minmax_is_the_observed_range() {
        let s = stats_of(&[-1.0, 0.5, 3.0, f32::NAN, f32::INFINITY]);
        assert_eq!(
            s.range(Observer::MinMax, false),
            Range {
                min: -1.0,
                max: 3.0
            }
        );
        assert_eq!(
            s.range(Observer::MinMax, true),
            Range {
                min: -3.0,
                max: 3.0
            }
        );
    }

    #[test]
    fn percentile_matches_a_direct_computation() {
        let mut v = gaussian(200_000, 1);
        v.iter_mut().for_each(|x| *x = *x * 2.0 + 1.0);
        let s = stats_of(&v);
        let w = s.histogram.as_ref().unwrap().bin_width() as f32;
        let mut sorted = v.clone();
        sorted.sort_by(f32::total_cmp);
        let at = |q: f64| sorted[((q * (sorted.len() - 1) as f64).round()) as usize];
        let r = s.range(Observer::Percentile(99.9), false);
        assert!((r.max - at(0.999)).abs() <= w, "{} vs {}", r.max, at(0.999));
        assert!((r.min - at(0.001)).abs() <= w, "{} vs {}", r.min, at(0.001));
        let mut abs: Vec<f32> = v.iter().map(|x| x.abs()).collect();
        abs.sort_by(f32::total_cmp);
        let t = abs[((0.999 * (abs.len() - 1) as f64).round()) as usize];
        let r = s.range(Observer::Percentile(99.9), true);
        assert!((r.max - t).abs() <= w && r.min == -r.max, "{r:?} vs {t}");
    }

    /// Student-t with 3 degrees of freedom: a heavy tail of moderately large values.
    fn student_t(n: usize, seed: u64) -> Vec<f32> {
        let g = gaussian(4 * n, seed);
        g.chunks_exact(4)
            .map(|c| c[0] / ((c[1] * c[1] + c[2] * c[2] + c[3] * c[3]) / 3.0).sqrt())
            .collect()
    }

    #[test]
    fn entropy_and_mse_clip_a_heavy_tail() {
        let s = stats_of(&student_t(100_000, 7));
        for symmetric in [false, true] {
            let minmax = s.range(Observer::MinMax, symmetric);
            assert!(minmax.max > 20.0, "a heavy tail: {minmax:?}");
            // KL clips hard; MSE balances clipping against rounding noise (for t3 its
            // optimum is near 47: clip error ~1.1/a per value vs noise a²/195075).
            for (observer, shrink) in [(Observer::Entropy, 0.5), (Observer::Mse, 0.9)] {
                let r = s.range(observer, symmetric);
                assert!(
                    r.max - r.min < shrink * (minmax.max - minmax.min) && r.max > 2.0,
                    "{observer} symmetric={symmetric}: {r:?} vs minmax {minmax:?}"
                );
                assert!(r.min < -2.0, "{observer}: keeps the negative side: {r:?}");
            }
        }
    }

    #[test]
    fn mse_keeps_few_far_outliers_that_would_cost_more_clipped() {
        // 20 values at 40..59 among 100k standard normals: clipping them to ~4 costs
        // 20·50² in squared error, more than the rounding noise a wide range adds.
        let mut v = gaussian(100_000, 7);
        for i in 0..20 {
            v[i * 5000] = 40.0 + i as f32;
        }
        let s = stats_of(&v);
        let r = s.range(Observer::Mse, false);
        assert!(r.max > 40.0, "{r:?}");
    }

    /// The prefix-sum KL against a direct computation of the same definition.
    #[test]
    fn kl_table_matches_a_direct_computation() {
        let hist: Vec<u64> = (0..600u64)
            .map(|i| {
                if i % 7 == 3 {
                    0
                } else {
                    (i * 37) % 101 + (i == 590) as u64 * 500
                }
            })
            .collect();
        let table = KlTable::new(&hist);
        for (lo, hi, levels) in [(0, 600, 128), (10, 400, 128), (50, 306, 256), (0, 128, 128)] {
            let n = hi - lo;
            let mut p: Vec<f64> = hist[lo..hi].iter().map(|&c| c as f64).collect();
            p[0] += hist[..lo].iter().sum::<u64>() as f64;
            p[n - 1] += hist[hi..].iter().sum::<u64>() as f64;
            let window: f64 = hist[lo..hi].iter().sum::<u64>() as f64;
            let total: f64 = p.iter().sum();
            let mut q = vec![0.0; n];
            let per = n as f64 / levels as f64;
            for g in 0..levels {
                let a = (g as f64 * per) as usize;
                let b = if g == levels - 1 {
                    n
                } else {
                    ((g + 1) as f64 * per) as usize
                };
                let mass: f64 = hist[lo + a..lo + b].iter().sum::<u64>() as f64;
                let k = p[a..b].iter().filter(|&&v| v > 0.0).count() as f64;
                for i in a..b {
                    if p[i] > 0.0 {
                        q[i] = if mass > 0.0 {
                            mass / k / window
                        } else {
                            1e-4 / n as f64
                        };
                    }
                }
            }
            let direct: f64 = p
                .iter()
                .zip(&q)
                .filter(|(pv, _)| **pv > 0.0)
                .map(|(pv, qv)| pv / total * ((pv / total) / qv).ln())
                .sum();
            let fast = table.kl(lo, hi, levels);
            assert!(
                (direct - fast).abs() < 1e-9 * (1.0 + direct.abs()),
                "{lo}..{hi}: {direct} vs {fast}"
            );
        }
    }

    #[test]
    fn a_uniform_distribution_is_not_clipped_much() {
        let v: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 999.0).collect();
        let s = stats_of(&v);
        for observer in [Observer::Entropy, Observer::Mse] {
            let r = s.range(observer, false);
            assert_eq!(r.min, 0.0);
            assert!(r.max > 0.97 && r.max <= 1.0, "{observer}: {r:?}");
        }
    }

    #[test]
    fn relu_like_data_keeps_zero_as_the_lower_end() {
        let v: Vec<f32> = gaussian(50_000, 3)
            .into_iter()
            .map(|x| x.max(0.0))
            .collect();
        let s = stats_of(&v);
        let max = s.range(Observer::MinMax, false).max;
        for observer in [
            Observer::Entropy,
            Observer::Mse,
            Observer::Percentile(99.99),
        ] {
            let r = s.range(observer, false);
            assert_eq!(r.min, 0.0, "{observer}");
            assert!(r.max > 1.5 && r.max <= max, "{observer}: {r:?}");
        }
    }

    #[test]
    fn constant_tensors_give_degenerate_but_finite_ranges() {
        let s = stats_of(&[0.0; 100]);
        for observer in [
            Observer::MinMax,
            Observer::Entropy,
            Observer::Mse,
            Observer::Percentile(99.0),
        ] {
            assert_eq!(s.range(observer, false), Range { min: 0.0, max: 0.0 });
        }
        let s = stats_of(&[2.5; 100]);
        let r = s.range(Observer::Entropy, false);
        assert!(r.max >= 2.4 && r.min == 0.0, "{r:?}");
    }
}
