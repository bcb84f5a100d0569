//! Property enums that more than one element registers.
//!
//! An enum both elements expose lives here so neither element imports the other.

use gst::glib;

/// `execution-provider`: where ONNX Runtime runs the model.
///
/// The GType keeps the name `thermaldetect` first registered it under: gst-inspect
/// shows it, and applications look the enum up by that name to parse its values.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstThermalDetectExecutionProvider")]
pub enum ExecutionProvider {
    #[enum_value(name = "Auto: TensorRT, else CUDA, else CPU", nick = "auto")]
    Auto = 0,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 1,
    #[enum_value(name = "CUDA", nick = "cuda")]
    Cuda = 2,
    #[enum_value(name = "TensorRT", nick = "tensorrt")]
    Tensorrt = 3,
}

impl From<ExecutionProvider> for thermalzsq::runtime::Provider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Auto => Self::Auto,
            ExecutionProvider::Cpu => Self::Cpu,
            ExecutionProvider::Cuda => Self::Cuda,
            ExecutionProvider::Tensorrt => Self::TensorRt,
        }
    }
}
