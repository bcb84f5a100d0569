//! Giving a model with a symbolic image height and width (`yolo export dynamic=True`,
//! `torch.onnx.export(dynamic_axes=…)`) the fixed size it will run at.
//!
//! The size is written into the model itself, before anything else reads it, rather
//! than handed to ONNX Runtime per run: distillation builds a gradient graph with static
//! shapes, calibration and the int8 check run the model at one size, TensorRT builds a
//! static engine (a symbolic input needs optimisation profiles), and the int8 model made
//! from a fixed model is fixed too — so whatever runs it downstream needs no size. The
//! size must be a multiple of the model's largest stride (metadata `stride`, else 32,
//! YOLO's): a YOLO head's grids only line up with the input at such sizes.

use std::fmt;
use std::str::FromStr;

use super::error::{OnnxError, Result};
use super::model::Model;
use super::proto::DimValue;

/// The stride assumed when the model's metadata names none (YOLOv5/v8/v11: 32).
pub const DEFAULT_STRIDE: usize = 32;

/// Width and height of a model's image input, as `WxH` (e.g. `640x512`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InputSize {
    pub width: usize,
    pub height: usize,
}

impl fmt::Display for InputSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for InputSize {
    type Err = OnnxError;

    fn from_str(s: &str) -> Result<Self> {
        let parsed = s
            .trim()
            .split_once(['x', 'X'])
            .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
        match parsed {
            Some((width, height)) if width > 0 && height > 0 => Ok(InputSize { width, height }),
            _ => Err(OnnxError::Graph(format!(
                "input size `{s}` does not read: expected WIDTHxHEIGHT, e.g. 640x512"
            ))),
        }
    }
}

impl Model {
    /// The largest stride of the detection head: metadata `stride` (a positive
    /// integer, as Ultralytics writes it), else [`DEFAULT_STRIDE`].
    pub fn input_stride(&self) -> Result<usize> {
        match self.metadata("stride") {
            None => Ok(DEFAULT_STRIDE),
            Some(text) => match text.trim().parse::<usize>() {
                Ok(s) if s > 0 => Ok(s),
                _ => Err(OnnxError::Graph(format!(
                    "model metadata `stride` does not read: `{text}`; expected a positive integer, e.g. 32"
                ))),
            },
        }
    }

    /// The height and width of the model's image input (its one data input, N×C×H×W),
    /// each `None` where it is not a fixed number; `None` for another kind of input.
    fn image_height_width(&self) -> Option<[Option<usize>; 2]> {
        let view = self.graph().view();
        let inputs: Vec<_> = view.data_inputs().collect();
        let [input] = inputs.as_slice() else {
            return None;
        };
        let dims = &input.r#type.as_ref()?.shape()?.dim;
        (dims.len() == 4).then(|| [fixed(&dims[2]), fixed(&dims[3])])
    }

    /// Whether the model's image input (its one data input, N×C×H×W) has a height or
    /// width that is not a fixed number: it needs an input size to run.
    pub fn has_symbolic_input_size(&self) -> bool {
        self.image_height_width()
            .is_some_and(|hw| hw.iter().any(Option::is_none))
    }

    /// The model's image input's height and width, when both are fixed numbers.
    pub fn fixed_input_size(&self) -> Option<InputSize> {
        match self.image_height_width()? {
            [Some(height), Some(width)] => Some(InputSize { width, height }),
            _ => None,
        }
    }

    /// Whether `size` is a multiple of the model's largest stride
    /// ([`Model::input_stride`]); the error suggests the next size that is.
    pub fn check_stride(&self, size: InputSize) -> Result<()> {
        let stride = self.input_stride()?;
        if size.width.is_multiple_of(stride) && size.height.is_multiple_of(stride) {
            return Ok(());
        }
        let round = |v: usize| (v.div_ceil(stride) * stride).max(stride);
        Err(OnnxError::Graph(format!(
            "input size {size} is not a multiple of the model's stride {stride}; use e.g. {}x{}",
            round(size.width),
            round(size.height)
        )))
    }

    /// Fixes the height and width of the model's one image input (N×C×H×W) to `size`.
    /// Symbolic axes take the size; fixed ones must already equal it. Returns whether
    /// the model changed; when it did, the intermediate shapes the exporter recorded
    /// (`value_info`, hints only) are dropped, as they may name the old symbols.
    pub fn fix_input_size(&mut self, size: InputSize) -> Result<bool> {
        self.check_stride(size)?;
        let names: Vec<String> = self
            .graph()
            .view()
            .data_inputs()
            .map(|i| i.name().to_string())
            .collect();
        let [name] = names.as_slice() else {
            return Err(OnnxError::Graph(format!(
                "the model has {} inputs ({}); an input size applies to one image input",
                names.len(),
                names.join(", ")
            )));
        };
        let input = self
            .graph_mut()
            .input
            .iter_mut()
            .find(|i| i.name() == name.as_str())
            .expect("a data input is a graph input");
        let dims = input
            .r#type
            .as_mut()
            .and_then(|t| t.shape_mut())
            .map(|s| &mut s.dim)
            .filter(|d| d.len() == 4)
            .ok_or_else(|| {
                OnnxError::Graph(format!(
                    "input '{name}' is not an N×C×H×W image: an input size cannot apply to it"
                ))
            })?;
        if let (Some(h), Some(w)) = (fixed(&dims[2]), fixed(&dims[3]))
            && (w, h) != (size.width, size.height)
        {
            return Err(OnnxError::Graph(format!(
                "input '{name}' has a fixed size of {w}x{h}, not {size}: leave the input size unset to run it at {w}x{h}"
            )));
        }
        let mut changed = false;
        for (axis, value) in [("height", size.height), ("width", size.width)] {
            let dim = &mut dims[if axis == "height" { 2 } else { 3 }];
            match fixed(dim) {
                Some(v) if v != value => {
                    return Err(OnnxError::Graph(format!(
                        "input '{name}' has a fixed {axis} of {v}, not {value}: give an input size of that {axis}"
                    )));
                }
                Some(_) => {}
                None => {
                    dim.value = Some(DimValue::Value(value as i64));
                    changed = true;
                }
            }
        }
        if changed {
            self.graph_mut().value_info.clear();
        }
        Ok(changed)
    }
}

/// A dimension's size, if it is a fixed positive number.
fn fixed(d: &super::proto::Dimension) -> Option<usize> {
    match d.value {
        Some(DimValue::Value(v)) if v > 0 => Some(v as usize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_sizes_read_as_width_x_height() {
        let s: InputSize = "640x512".parse().unwrap();
        assert_eq!((s.width, s.height), (640, 512));
        assert_eq!(s.to_string(), "640x512");
        assert_eq!(
            " 320X256 ".parse::<InputSize>().unwrap(),
            InputSize {
                width: 320,
                height: 256
            }
        );
        for bad in ["", "640", "0x320", "640x", "axb", "640x512x3"] {
            let e = bad.parse::<InputSize>().unwrap_err().to_string();
            assert!(e.contains("expected WIDTHxHEIGHT"), "{bad}: {e}");
        }
    }
}
