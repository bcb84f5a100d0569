//! TensorProto ⇄ `ndarray`: reading a tensor's values whatever field holds them, and
//! making tensors from arrays (raw little-endian data, the form exporters write).

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

use super::error::{OnnxError, Result};
use super::proto::{DataType, TensorProto};

/// An array element type a tensor can be read as and written from:
/// `f32`, `f64`, `i64`, `i32`, `i8`, `u8`.
///
/// Reading converts where no information is lost or where it is the point:
/// float tensors (FLOAT, DOUBLE, FLOAT16, BFLOAT16) read as `f32`/`f64`; integer and
/// BOOL tensors read as any element type, integers checked to fit (an INT64 shape
/// read as `i32` works, a value out of range is an error). Floats never read as
/// integers.
pub trait Element: sealed::Scalar + Copy + 'static {
    /// The data type written by [`TensorProto::from_array`].
    const DATA_TYPE: DataType;
}

mod sealed {
    /// A value as stored, before conversion to the element type asked for.
    #[derive(Debug, Clone, Copy)]
    pub enum Value {
        Int(i64),
        UInt(u64),
        Float(f64),
    }

    pub trait Scalar: Sized {
        const IS_FLOAT: bool;
        const SIZE: usize;
        /// One value from its little-endian bytes (`bytes.len() == SIZE`).
        fn from_le(bytes: &[u8]) -> Self;
        fn put_le(self, out: &mut Vec<u8>);
        /// `None` if the value does not fit.
        fn from_value(value: Value) -> Option<Self>;
    }
}
use sealed::{Scalar, Value};

macro_rules! float_element {
    ($t:ty, $dtype:ident) => {
        impl Element for $t {
            const DATA_TYPE: DataType = DataType::$dtype;
        }
        impl Scalar for $t {
            const IS_FLOAT: bool = true;
            const SIZE: usize = size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().unwrap_or_default())
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn from_value(value: Value) -> Option<Self> {
                Some(match value {
                    Value::Int(v) => v as $t,
                    Value::UInt(v) => v as $t,
                    Value::Float(v) => v as $t,
                })
            }
        }
    };
}

macro_rules! int_element {
    ($t:ty, $dtype:ident) => {
        impl Element for $t {
            const DATA_TYPE: DataType = DataType::$dtype;
        }
        impl Scalar for $t {
            const IS_FLOAT: bool = false;
            const SIZE: usize = size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().unwrap_or_default())
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn from_value(value: Value) -> Option<Self> {
                match value {
                    Value::Int(v) => <$t>::try_from(v).ok(),
                    Value::UInt(v) => <$t>::try_from(v).ok(),
                    Value::Float(_) => None,
                }
            }
        }
    };
}

float_element!(f32, Float);
float_element!(f64, Double);
int_element!(i64, Int64);
int_element!(i32, Int32);
int_element!(i8, Int8);
int_element!(u8, Uint8);

impl TensorProto {
    /// A tensor holding `array`, in `raw_data` (little-endian, row-major).
    pub fn from_array<T, S, D>(name: &str, array: &ArrayBase<S, D>) -> TensorProto
    where
        T: Element,
        S: Data<Elem = T>,
        D: Dimension,
    {
        let mut raw = Vec::with_capacity(array.len() * T::SIZE);
        for &v in array.iter() {
            v.put_le(&mut raw);
        }
        TensorProto {
            dims: array.shape().iter().map(|&d| d as i64).collect(),
            data_type: Some(T::DATA_TYPE as i32),
            name: Some(name.to_string()),
            raw_data: Some(raw),
            ..TensorProto::default()
        }
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Element>(name: &str, value: T) -> TensorProto {
        TensorProto::from_array(name, &ndarray::arr0(value))
    }

    /// The tensor's values as an array of `T` (see [`Element`] for the conversions).
    /// External data must be loaded first: see [`super::Model::tensor_array`].
    pub fn to_array<T: Element>(&self) -> Result<ArrayD<T>> {
        let name = self.name();
        let fail = |problem: String| OnnxError::tensor(name, problem);
        if self.is_external() {
            let location = self.external_entry("location").unwrap_or("?");
            return Err(fail(format!(
                "its data is in external file '{location}'; read it through Model::tensor_array"
            )));
        }
        if self.segment.is_some() {
            return Err(fail(
                "it is one segment of a larger tensor, which is not supported".into(),
            ));
        }
        let raw = self.data_type.unwrap_or(0);
        let dtype =
            DataType::from_i32(raw).ok_or_else(|| fail(format!("unknown data type {raw}")))?;
        let wanted = std::any::type_name::<T>();
        if is_float(dtype) && !T::IS_FLOAT {
            return Err(fail(format!(
                "it holds {dtype} values, which cannot be read as {wanted}"
            )));
        }
        let shape = self
            .dims
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| fail(format!("negative dimension in {:?}", self.dims)))
            })
            .collect::<Result<Vec<usize>>>()?;
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| fail(format!("dimensions {:?} overflow", self.dims)))?;

        let values: Vec<T> = match &self.raw_data {
            Some(raw) => {
                let size = element_size(dtype).ok_or_else(|| {
                    fail(format!("{dtype} tensors cannot be read as arrays here"))
                })?;
                if Some(raw.len()) != count.checked_mul(size) {
                    return Err(fail(format!(
                        "raw_data has {} bytes, but dims {:?} of {dtype} need {}",
                        raw.len(),
                        self.dims,
                        count.saturating_mul(size)
                    )));
                }
                if dtype == T::DATA_TYPE {
                    raw.chunks_exact(size).map(T::from_le).collect()
                } else {
                    convert(
                        raw.chunks_exact(size).map(|b| raw_value(dtype, b)),
                        dtype,
                        &fail,
                    )?
                }
            }
            None => {
                let stored = self.typed_len(dtype).ok_or_else(|| {
                    fail(format!("{dtype} tensors cannot be read as arrays here"))
                })?;
                if stored != count {
                    return Err(fail(format!(
                        "it stores {stored} values, but dims {:?} need {count}",
                        self.dims
                    )));
                }
                convert(self.typed_values(dtype), dtype, &fail)?
            }
        };
        ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| fail(e.to_string()))
    }

    /// The bytes the tensor's data takes in `raw_data` form, where its type has a fixed
    /// size (`None` for strings, sub-byte and unknown types); an error if the dims are
    /// negative or their product overflows.
    pub(crate) fn fixed_data_len(&self) -> Result<Option<usize>> {
        let Some(size) = self.data_type().and_then(element_size) else {
            return Ok(None);
        };
        let fail = |problem: String| OnnxError::tensor(self.name(), problem);
        self.dims
            .iter()
            .try_fold(size, |n, &d| {
                let d = usize::try_from(d)
                    .map_err(|_| fail(format!("negative dimension in {:?}", self.dims)))?;
                n.checked_mul(d)
                    .ok_or_else(|| fail(format!("dimensions {:?} overflow", self.dims)))
            })
            .map(Some)
    }

    /// How many values the typed field for `dtype` holds; `None` for types without one.
    fn typed_len(&self, dtype: DataType) -> Option<usize> {
        use DataType::*;
        Some(match dtype {
            Float => self.float_data.len(),
            Double => self.double_data.len(),
            Int64 => self.int64_data.len(),
            Uint32 | Uint64 => self.uint64_data.len(),
            Int32 | Int16 | Int8 | Uint16 | Uint8 | Bool | Float16 | Bfloat16 => {
                self.int32_data.len()
            }
            _ => return None,
        })
    }

    /// The values of the typed field for `dtype` (only called where `typed_len` is `Some`).
    fn typed_values(&self, dtype: DataType) -> Box<dyn Iterator<Item = Value> + '_> {
        use DataType::*;
        match dtype {
            Float => Box::new(self.float_data.iter().map(|&v| Value::Float(f64::from(v)))),
            Double => Box::new(self.double_data.iter().map(|&v| Value::Float(v))),
            Int64 => Box::new(self.int64_data.iter().map(|&v| Value::Int(v))),
            Uint32 | Uint64 => Box::new(self.uint64_data.iter().map(|&v| Value::UInt(v))),
            // FLOAT16/BFLOAT16 keep their bits in the low 16 bits of int32_data.
            Float16 => Box::new(
                self.int32_data
                    .iter()
                    .map(|&v| Value::Float(f16_to_f64(v as u16))),
            ),
            Bfloat16 => Box::new(
                self.int32_data
                    .iter()
                    .map(|&v| Value::Float(bf16_to_f64(v as u16))),
            ),
            _ => Box::new(self.int32_data.iter().map(|&v| Value::Int(i64::from(v)))),
        }
    }
}

fn convert<T: Element>(
    values: impl Iterator<Item = Value>,
    dtype: DataType,
    fail: &impl Fn(String) -> OnnxError,
) -> Result<Vec<T>> {
    values
        .map(|v| {
            T::from_value(v).ok_or_else(|| {
                fail(format!(
                    "{dtype} value {v:?} does not fit in {}",
                    std::any::type_name::<T>()
                ))
            })
        })
        .collect()
}

fn is_float(dtype: DataType) -> bool {
    matches!(
        dtype,
        DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16
    )
}

/// Bytes per element in `raw_data`, for the types this module reads.
fn element_size(dtype: DataType) -> Option<usize> {
    use DataType::*;
    Some(match dtype {
        Int8 | Uint8 | Bool => 1,
        Int16 | Uint16 | Float16 | Bfloat16 => 2,
        Float | Int32 | Uint32 => 4,
        Double | Int64 | Uint64 => 8,
        _ => return None,
    })
}

/// One little-endian value of `dtype` (`bytes` is exactly [`element_size`] long).
fn raw_value(dtype: DataType, bytes: &[u8]) -> Value {
    use DataType::*;
    let mut buf = [0u8; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    let bits = u64::from_le_bytes(buf);
    match dtype {
        Float => Value::Float(f64::from(f32::from_bits(bits as u32))),
        Double => Value::Float(f64::from_bits(bits)),
        Float16 => Value::Float(f16_to_f64(bits as u16)),
        Bfloat16 => Value::Float(bf16_to_f64(bits as u16)),
        Int8 => Value::Int(i64::from(bits as u8 as i8)),
        Int16 => Value::Int(i64::from(bits as u16 as i16)),
        Int32 => Value::Int(i64::from(bits as u32 as i32)),
        Int64 => Value::Int(bits as i64),
        Bool => Value::Int(i64::from(bits != 0)),
        _ => Value::UInt(bits),
    }
}

/// IEEE half precision to double (exact).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f64.powi(-24),
        0x1f if mantissa == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        _ => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(exponent - 15),
    }
}

/// bfloat16 is the top half of an f32.
fn bf16_to_f64(bits: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(bits) << 16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, arr0, arr2};

    fn round_trip<T: Element + std::fmt::Debug + PartialEq>(array: ArrayD<T>) {
        let t = TensorProto::from_array("x", &array);
        assert_eq!(t.data_type(), Some(T::DATA_TYPE));
        let back: ArrayD<T> = TensorProto::decode(&t.encode_to_vec())
            .unwrap()
            .to_array()
            .unwrap();
        assert_eq!(back, array);
    }

    #[test]
    fn every_element_type_round_trips_through_raw_data() {
        round_trip(arr2(&[[1.5f32, -0.0, f32::MAX], [f32::MIN_POSITIVE, 7.0, -3.25]]).into_dyn());
        round_trip(arr2(&[[1e300f64, -2.5]]).into_dyn());
        round_trip(arr2(&[[i64::MIN, 0, i64::MAX]]).into_dyn());
        round_trip(arr2(&[[i32::MIN], [i32::MAX]]).into_dyn());
        round_trip(arr2(&[[-128i8, 0, 127]]).into_dyn());
        round_trip(arr2(&[[0u8, 255]]).into_dyn());
    }

    #[test]
    fn scalars_have_no_dims() {
        let t = TensorProto::scalar("eps", 1e-5f32);
        assert!(t.dims.is_empty());
        assert_eq!(t.to_array::<f32>().unwrap(), arr0(1e-5f32).into_dyn());
        round_trip(arr0(-7i64).into_dyn());
    }

    #[test]
    fn non_contiguous_arrays_are_written_in_logical_order() {
        let a = arr2(&[[1.0f32, 2.0], [3.0, 4.0]]);
        let t = TensorProto::from_array("t", &a.t());
        assert_eq!(
            t.to_array::<f32>().unwrap(),
            arr2(&[[1.0, 3.0], [2.0, 4.0]]).into_dyn()
        );
    }

    #[test]
    fn typed_fields_are_read() {
        let t = TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Float as i32),
            float_data: vec![1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(
            t.to_array::<f64>().unwrap().as_slice().unwrap(),
            &[1.0, 2.0]
        );
        let t = TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Int8 as i32),
            int32_data: vec![-1, 0, 100],
            ..Default::default()
        };
        assert_eq!(
            t.to_array::<i8>().unwrap().as_slice().unwrap(),
            &[-1, 0, 100]
        );
        assert_eq!(
            t.to_array::<f32>().unwrap().as_slice().unwrap(),
            &[-1.0, 0.0, 100.0]
        );
        let t = TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Uint64 as i32),
            uint64_data: vec![1, u64::MAX],
            ..Default::default()
        };
        let err = t.to_array::<i64>().unwrap_err().to_string();
        assert!(err.contains("does not fit in i64"), "{err}");
    }

    #[test]
    fn half_precision_reads_as_float() {
        // 1.0, -2.0, 65504 (max), smallest subnormal, +inf
        let bits: [u16; 5] = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00];
        let raw: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let t = TensorProto {
            dims: vec![5],
            data_type: Some(DataType::Float16 as i32),
            raw_data: Some(raw),
            ..Default::default()
        };
        let v = t.to_array::<f32>().unwrap();
        assert_eq!(
            v.as_slice().unwrap(),
            &[1.0, -2.0, 65504.0, 5.960_464_5e-8, f32::INFINITY]
        );
        let t = TensorProto {
            dims: vec![1],
            data_type: Some(DataType::Bfloat16 as i32),
            int32_data: vec![0x3fc0], // 1.5
            ..Default::default()
        };
        assert_eq!(t.to_array::<f32>().unwrap().as_slice().unwrap(), &[1.5]);
    }

    #[test]
    fn int64_shapes_read_as_i32_when_they_fit() {
        let t = TensorProto::from_array("shape", &ndarray::arr1(&[1i64, -1, 64]));
        assert_eq!(
            t.to_array::<i32>().unwrap().as_slice().unwrap(),
            &[1, -1, 64]
        );
        let t = TensorProto::from_array("big", &ndarray::arr1(&[1i64 << 40]));
        assert!(t.to_array::<i32>().is_err());
    }

    #[test]
    fn mismatches_are_clear_errors() {
        let f = TensorProto::from_array("w", &ndarray::arr1(&[1.0f32]));
        let err = f.to_array::<i64>().unwrap_err().to_string();
        assert_eq!(
            err,
            "tensor 'w': it holds FLOAT values, which cannot be read as i64"
        );
        let mut short = f.clone();
        short.dims = vec![2];
        let err = short.to_array::<f32>().unwrap_err().to_string();
        assert_eq!(
            err,
            "tensor 'w': raw_data has 4 bytes, but dims [2] of FLOAT need 8"
        );
        let mut neg = f;
        neg.dims = vec![-1];
        assert!(neg.to_array::<f32>().is_err());
    }
}
