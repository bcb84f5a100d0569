//! The one error type of the ONNX layer.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong reading, converting or editing an ONNX model, as text a
/// user can act on (it names the byte, field, tensor or value at fault).
#[derive(Debug)]
pub enum OnnxError {
    /// The bytes are not a well-formed ONNX protobuf.
    Decode {
        /// Offset of the offending byte from the start of the buffer.
        offset: usize,
        /// What is wrong, e.g. "truncated protobuf".
        problem: String,
        /// The fields being read, innermost first, e.g. `["TensorProto.raw_data",
        /// "GraphProto.initializer", "ModelProto.graph"]`.
        fields: Vec<String>,
    },
    /// A file's bytes are not a usable ONNX model (`source` says why and where).
    InvalidModel {
        path: PathBuf,
        source: Box<OnnxError>,
    },
    /// A file could not be read or written.
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// A tensor's data cannot be read or converted as asked.
    Tensor { name: String, problem: String },
    /// A graph query or edit is impossible (missing value, cycle, name clash...).
    Graph(String),
}

impl OnnxError {
    pub(crate) fn decode(offset: usize, problem: impl Into<String>) -> Self {
        OnnxError::Decode {
            offset,
            problem: problem.into(),
            fields: Vec::new(),
        }
    }

    /// Records that a decode error happened while reading `message.field`; called on
    /// the way out of each nesting level, so the innermost field comes first.
    pub(crate) fn within(mut self, message: &str, field: &str) -> Self {
        if let OnnxError::Decode { fields, .. } = &mut self {
            fields.push(format!("{message}.{field}"));
        }
        self
    }

    pub(crate) fn tensor(name: &str, problem: impl Into<String>) -> Self {
        OnnxError::Tensor {
            name: name.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        OnnxError::Io {
            path: path.into(),
            action,
            source,
        }
    }
}

impl fmt::Display for OnnxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnnxError::Decode {
                offset,
                problem,
                fields,
            } => {
                write!(f, "{problem} at byte {offset}")?;
                if let Some((inner, outer)) = fields.split_first() {
                    write!(f, " while reading {inner}")?;
                    if !outer.is_empty() {
                        let path: Vec<&str> = outer.iter().rev().map(String::as_str).collect();
                        write!(f, " (inside {})", path.join(" > "))?;
                    }
                }
                Ok(())
            }
            OnnxError::InvalidModel { path, source } => {
                write!(f, "{} is not a valid ONNX model: {source}", path.display())
            }
            OnnxError::Io {
                path,
                action,
                source,
            } => {
                write!(f, "cannot {action} {}: {source}", path.display())
            }
            OnnxError::Tensor { name, problem } => write!(f, "tensor '{name}': {problem}"),
            OnnxError::Graph(problem) => f.write_str(problem),
        }
    }
}

impl std::error::Error for OnnxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OnnxError::Io { source, .. } => Some(source),
            OnnxError::InvalidModel { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

pub type Result<T, E = OnnxError> = std::result::Result<T, E>;
