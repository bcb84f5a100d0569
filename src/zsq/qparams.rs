//! Quantization parameters, the values calibration hands to the quantizer: a real
//! range, the integer profile ([`Precision`]) and the scale and zero point covering a
//! range ([`QParams`]). A leaf of `zsq`, so `calibrate` and `quantize` both read it and
//! neither imports the other.

use std::fmt;
use std::str::FromStr;

use super::ZsqError;
use crate::onnx::DataType;

/// A real-valued range `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Range {
    /// The smallest range holding both (the parameters shared by a group of tensors).
    pub fn union(self, other: Range) -> Range {
        Range {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }
}

/// Which integer types the quantized model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Precision {
    /// CPU default: asymmetric uint8 activations, int8 symmetric per-channel weights,
    /// int32 bias. ONNX Runtime's CPU kernels (MLAS, VNNI) are built for this pair.
    #[default]
    U8S8,
    /// TensorRT: symmetric int8 everywhere, every zero point 0, bias left float (TensorRT
    /// quantizes it itself and takes no int32 DequantizeLinear). ONNX Runtime's CPU EP
    /// does not fuse it on x86 (it runs slower than fp32 there).
    S8S8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::U8S8 => "u8s8",
            Precision::S8S8 => "s8s8",
        }
    }

    /// Activations quantized symmetrically (zero point 0).
    pub fn symmetric(self) -> bool {
        self == Precision::S8S8
    }

    /// The element type of quantized activations.
    pub(super) fn activation_type(self) -> DataType {
        match self {
            Precision::U8S8 => DataType::Uint8,
            Precision::S8S8 => DataType::Int8,
        }
    }

    /// Whether bias becomes int32 (TensorRT quantizes it itself).
    pub(super) fn quantizes_bias(self) -> bool {
        self == Precision::U8S8
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = ZsqError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "u8s8" => Ok(Precision::U8S8),
            "s8s8" => Ok(Precision::S8S8),
            _ => Err(ZsqError::Options(format!(
                "unknown precision `{s}` (expected u8s8 for CPUs or s8s8 for TensorRT)"
            ))),
        }
    }
}

/// Scale and zero point of one quantized tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl QParams {
    /// The parameters covering `range` for this precision's activations: uint8 over
    /// `[min(lo, 0), max(hi, 0)]` (zero exactly representable), or int8 over
    /// `[-a, a]` with `a = max(|lo|, |hi|)` and zero point 0.
    pub fn for_range(range: Range, precision: Precision) -> QParams {
        let (lo, hi) = (f64::from(range.min.min(0.0)), f64::from(range.max.max(0.0)));
        match precision {
            Precision::U8S8 => {
                let scale = (hi - lo) / 255.0;
                if !(scale > 0.0 && scale.is_finite()) {
                    return QParams {
                        scale: 1.0,
                        zero_point: 0,
                    };
                }
                let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i32;
                QParams {
                    scale: scale as f32,
                    zero_point,
                }
            }
            Precision::S8S8 => {
                let amax = lo.abs().max(hi.abs());
                let scale = amax / 127.0;
                QParams {
                    scale: if scale > 0.0 && scale.is_finite() {
                        scale as f32
                    } else {
                        1.0
                    },
                    zero_point: 0,
                }
            }
        }
    }

    /// The real values the quantized type can represent with these parameters.
    pub fn representable(&self, precision: Precision) -> (f32, f32) {
        let (qmin, qmax) = match precision {
            Precision::U8S8 => (0, 255),
            Precision::S8S8 => (-128, 127),
        };
        (
            (qmin - self.zero_point) as f32 * self.scale,
            (qmax - self.zero_point) as f32 * self.scale,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_parameters_cover_the_range_and_zero() {
        let p = QParams::for_range(Range { min: 0.0, max: 1.0 }, Precision::U8S8);
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 1.0 / 255.0).abs() < 1e-9);
        let p = QParams::for_range(
            Range {
                min: -1.0,
                max: 3.0,
            },
            Precision::U8S8,
        );
        assert_eq!(p.zero_point, 64);
        let (lo, hi) = p.representable(Precision::U8S8);
        assert!(lo <= -0.99 && hi >= 2.99, "{lo} {hi}");
        // Positive-only ranges still contain zero.
        let p = QParams::for_range(Range { min: 2.0, max: 4.0 }, Precision::U8S8);
        assert_eq!(p.zero_point, 0);
        let p = QParams::for_range(
            Range {
                min: -0.3,
                max: 6.0,
            },
            Precision::S8S8,
        );
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 6.0 / 127.0).abs() < 1e-7);
        // Degenerate ranges do not divide by zero.
        let p = QParams::for_range(Range { min: 0.0, max: 0.0 }, Precision::U8S8);
        assert_eq!((p.scale, p.zero_point), (1.0, 0));
    }

    #[test]
    fn precision_names_parse() {
        assert_eq!("U8S8".parse::<Precision>().unwrap(), Precision::U8S8);
        assert_eq!("s8s8".parse::<Precision>().unwrap(), Precision::S8S8);
        let err = "int4".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("u8s8"), "{err}");
    }
}
