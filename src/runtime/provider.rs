//! Execution-provider policy: which provider a session runs on, and what happens when
//! the one asked for is missing.
//!
//! `Auto` tries TensorRT, then CUDA, then the CPU and says why each step fell through;
//! an explicit provider that cannot be used is an error, never a silent CPU fallback.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use ort::ep::{self, ExecutionProvider};

use super::RuntimeError;

/// An execution provider, or the automatic choice among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    #[default]
    Auto,
    Cpu,
    Cuda,
    TensorRt,
}

impl Provider {
    /// The providers `Auto` tries, best first.
    pub const AUTO_ORDER: [Provider; 3] = [Provider::TensorRt, Provider::Cuda, Provider::Cpu];

    /// The short name used on command lines and in element properties.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Auto => "auto",
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        }
    }

    /// Whether the loaded ONNX Runtime library was built with this provider.
    /// (`Auto` is always available: the CPU is.)
    pub fn is_compiled_in(self) -> Result<bool, RuntimeError> {
        super::environment()?;
        Ok(match self {
            Provider::Auto | Provider::Cpu => true,
            Provider::Cuda => ep::CUDA::is_available()?,
            Provider::TensorRt => ep::TensorRT::is_available()?,
        })
    }

    /// Whether a session asked for with this choice runs on the CPU for sure: `cpu`,
    /// or `auto` with neither TensorRT nor CUDA in this ONNX Runtime. (`auto` with a GPU
    /// provider may still fall back to the CPU when the session is made.)
    pub fn certainly_cpu(self) -> Result<bool, RuntimeError> {
        Ok(match self {
            Provider::Cpu => true,
            Provider::Auto => {
                !Provider::TensorRt.is_compiled_in()? && !Provider::Cuda.is_compiled_in()?
            }
            Provider::Cuda | Provider::TensorRt => false,
        })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Provider::Auto),
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "tensorrt" | "trt" => Ok(Provider::TensorRt),
            other => Err(RuntimeError(format!(
                "unknown execution provider `{other}` (expected auto, cpu, cuda or tensorrt)"
            ))),
        }
    }
}

/// How a session is placed on hardware.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderOptions {
    pub provider: Provider,
    /// GPU index for CUDA and TensorRT.
    pub device_id: i32,
    /// Intra-op threads on the CPU; 0 lets ONNX Runtime choose (one per core).
    pub threads: usize,
    /// Where TensorRT keeps built engines, so the next start skips the build.
    pub trt_cache_dir: Option<PathBuf>,
    /// Let TensorRT pick fp16 kernels where they are faster.
    pub trt_fp16: bool,
}

impl ProviderOptions {
    /// The ONNX Runtime registrations for one concrete provider. TensorRT gets CUDA
    /// behind it for the nodes TensorRT does not take; the CPU needs none.
    pub(super) fn dispatch(&self, provider: Provider) -> Vec<ep::ExecutionProviderDispatch> {
        let cuda = || {
            ep::CUDA::default()
                .with_device_id(self.device_id)
                .build()
                .error_on_failure()
        };
        match provider {
            Provider::Auto | Provider::Cpu => Vec::new(),
            Provider::Cuda => vec![cuda()],
            Provider::TensorRt => {
                let mut trt = ep::TensorRT::default()
                    .with_device_id(self.device_id)
                    .with_fp16(self.trt_fp16);
                if let Some(dir) = &self.trt_cache_dir {
                    let dir = dir.display().to_string();
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(&dir)
                        .with_timing_cache(true)
                        .with_timing_cache_path(dir);
                }
                vec![trt.build().error_on_failure(), cuda()]
            }
        }
    }
}
