//! `com.thermalzsq:QLinearSilu`, an ONNX Runtime CPU operator that runs a quantized
//! SiLU (`x·sigmoid(x)`) as one pass over the bytes instead of two.
//!
//! A QDQ model keeps every SiLU standard: DQ → Sigmoid → Q → DQ, and DQ → Mul → Q.
//! ONNX Runtime fuses that into QLinearSigmoid and QLinearMul, two passes over the
//! tensor (2.3–2.6 ms of a ~9.7 ms run of the bundled 320×320 detector on a 2-core
//! Sapphire Rapids). Standard-ONNX alternatives measured slower (docs/quantize.md), so
//! the one pass is this operator, which `detect::silu` substitutes at load time: the
//! model on disk stays plain ONNX.
//!
//! The operator reproduces the two-step result, not a more exact SiLU: its 256-entry
//! table is `Q_y(DQ_x(q) · DQ_s(Q_s(sigmoid(DQ_x(q)))))` with the model's own scales
//! and zero points, so the rewritten model computes what the quantizer calibrated
//! (within one step of ONNX Runtime's own rounding, tested on every input byte). With
//! AVX512-VBMI the table is looked up 64 bytes per instruction pair; elsewhere one
//! byte at a time, which is still one pass instead of two.
//!
//! ONNX Runtime knows nothing of the operator's layout, so around it the channels-last
//! int8 graph goes back to NCHW: a Transpose before it, and one after where a
//! QLinearConv reads it. That is why `detect::silu` substitutes only the SiLUs that
//! feed convolutions.

use std::sync::atomic::{AtomicUsize, Ordering};

use ort::operator::{
    ComputeContext, Kernel, KernelContext, Operator, OperatorDomain, OperatorInput, OperatorOutput,
    ShapeInferenceContext,
};
use ort::value::{PrimitiveTensorElementType, TensorElementType, TensorValueType, ValueType};

/// The operator domain thermalzsq registers on CPU sessions.
pub const SILU_DOMAIN: &str = "com.thermalzsq";
/// The operator's name in [`SILU_DOMAIN`]. Inputs: `x` (uint8), then scale (float)
/// and zero point (uint8) of `x`, of the sigmoid's quantization, and of `y`; output
/// `y` (uint8, `x`'s shape). Every scale and zero point is a per-tensor constant.
pub const SILU_OP: &str = "QLinearSilu";

/// The domain with [`SILU_OP`], for a CPU session builder.
pub(super) fn operator_domain() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(SILU_DOMAIN)?.add(QLinearSilu)
}

struct QLinearSilu;

impl Operator for QLinearSilu {
    type Kernel<'attr> = SiluKernel;

    fn name(&self) -> &str {
        SILU_OP
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        let bytes = || OperatorInput::required(TensorElementType::Uint8);
        let scale = || OperatorInput::required(TensorElementType::Float32);
        [
            bytes(),
            scale(),
            bytes(),
            scale(),
            bytes(),
            scale(),
            bytes(),
        ]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Uint8)]
    }

    fn create_kernel<'attr>(&self, info: &KernelContext<'attr>) -> ort::Result<SiluKernel> {
        let quantization = |index: usize| -> ort::Result<Quantization> {
            Ok(Quantization {
                scale: constant_scalar::<f32>(info, index)?,
                zero_point: constant_scalar::<u8>(info, index + 1)?,
            })
        };
        Ok(SiluKernel {
            table: table(quantization(1)?, quantization(3)?, quantization(5)?),
        })
    }

    /// `y` has `x`'s type and shape. A size unknown here gets a name of its own:
    /// ONNX Runtime would read a bare -1 as a size, and no shape at all as rank 0.
    fn infer_shape(&self, ctx: &mut ShapeInferenceContext) -> ort::Result<()> {
        static UNKNOWN: AtomicUsize = AtomicUsize::new(0);
        let mut x = ctx.inputs().swap_remove(0);
        if let ValueType::Tensor {
            shape,
            dimension_symbols,
            ..
        } = &mut x
        {
            *dimension_symbols = (0..shape.len())
                .map(|i| match dimension_symbols.get(i) {
                    Some(symbol) if !symbol.is_empty() || shape[i] >= 0 => symbol.clone(),
                    None if shape[i] >= 0 => String::new(),
                    _ => format!("{SILU_OP}_{}", UNKNOWN.fetch_add(1, Ordering::Relaxed)),
                })
                .collect();
        }
        ctx.set_output(0, &x)
    }
}

/// Input `index` of a node, which must be a one-element constant.
fn constant_scalar<T: PrimitiveTensorElementType + Copy + std::fmt::Debug>(
    info: &KernelContext<'_>,
    index: usize,
) -> ort::Result<T> {
    let value = info.constant_input::<TensorValueType<T>>(index)?;
    match value.try_extract_tensor::<T>()?.1 {
        [one] => Ok(*one),
        many => Err(ort::Error::new(format!(
            "{SILU_OP}: input {index} holds {} values; scales and zero points are per tensor",
            many.len()
        ))),
    }
}

#[derive(Clone, Copy)]
struct Quantization {
    scale: f32,
    zero_point: u8,
}

impl Quantization {
    fn dequantize(self, q: u8) -> f32 {
        (i32::from(q) - i32::from(self.zero_point)) as f32 * self.scale
    }

    /// ONNX QuantizeLinear: round half to even, saturate.
    fn quantize(self, v: f32) -> u8 {
        ((v / self.scale).round_ties_even() + f32::from(self.zero_point)).clamp(0.0, 255.0) as u8
    }
}

/// `y` for every byte of `x`: the QDQ SiLU's two steps, rounded where they round.
fn table(x: Quantization, sigmoid: Quantization, y: Quantization) -> [u8; 256] {
    std::array::from_fn(|q| {
        let v = x.dequantize(q as u8);
        let s = sigmoid.dequantize(sigmoid.quantize(1.0 / (1.0 + (-v).exp())));
        y.quantize(v * s)
    })
}

struct SiluKernel {
    table: [u8; 256],
}

impl Kernel for SiluKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let missing = || ort::Error::new(format!("{SILU_OP}: input x is missing"));
        let x = ctx.input(0)?.ok_or_else(missing)?;
        let (shape, x) = x.try_extract_tensor::<u8>()?;
        let mut y = ctx
            .output(0, shape.clone())?
            .ok_or_else(|| ort::Error::new(format!("{SILU_OP}: no output")))?;
        let (_, y) = y.try_extract_tensor_mut::<u8>()?;
        look_up(&self.table, x, y);
        Ok(())
    }
}

/// `y[i] = table[x[i]]`.
fn look_up(table: &[u8; 256], x: &[u8], y: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vbmi")
    {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { vbmi::look_up(table, x, y) };
        return;
    }
    for (y, &x) in y.iter_mut().zip(x) {
        *y = table[usize::from(x)];
    }
}

#[cfg(target_arch = "x86_64")]
mod vbmi {
    use std::arch::x86_64::{
        __m512i, _mm512_loadu_si512, _mm512_mask_blend_epi8, _mm512_movepi8_mask,
        _mm512_permutex2var_epi8, _mm512_storeu_si512,
    };

    /// 64 bytes at a time: two 128-entry permutes (the table's halves, picked by the
    /// low 7 bits of each byte) and a blend on the top bit; the tail byte by byte.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) fn look_up(table: &[u8; 256], x: &[u8], y: &mut [u8]) {
        let quarter = |i: usize| load(&table[64 * i..64 * (i + 1)]);
        let (t0, t1, t2, t3) = (quarter(0), quarter(1), quarter(2), quarter(3));
        let mut xs = x.chunks_exact(64);
        let mut ys = y.chunks_exact_mut(64);
        for (x, y) in (&mut xs).zip(&mut ys) {
            let index = load(x);
            let low = _mm512_permutex2var_epi8(t0, index, t1);
            let high = _mm512_permutex2var_epi8(t2, index, t3);
            let v = _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), low, high);
            // SAFETY: `y` is a chunk of 64 bytes; the store is unaligned.
            unsafe { _mm512_storeu_si512(y.as_mut_ptr().cast::<__m512i>(), v) };
        }
        for (y, &x) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
            *y = table[usize::from(x)];
        }
    }

    #[target_feature(enable = "avx512f")]
    fn load(bytes: &[u8]) -> __m512i {
        assert_eq!(bytes.len(), 64);
        // SAFETY: 64 readable bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(bytes.as_ptr().cast::<__m512i>()) }
    }
}
