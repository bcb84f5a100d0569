//! The one error type of the pixel code: a frame that does not hold what it claims, a
//! name that is not one of ours, a PNG that cannot be read.

use std::fmt;
use std::path::PathBuf;

/// What went wrong with a frame or an image, as one line a user can act on.
#[derive(Debug)]
pub enum ImageError {
    /// Planes that do not hold a whole frame of their format and size, or a frame of the
    /// wrong layout for what was asked of it.
    Frame(String),
    /// A pixel format, AGC or polarity name that is not one of ours.
    UnknownName(String),
    /// A PNG file that cannot be opened.
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A PNG file that cannot be decoded.
    Decode {
        path: PathBuf,
        source: png::DecodingError,
    },
    /// A PNG that decodes to a layout the frames do not take (`why` says which).
    Layout { path: PathBuf, why: String },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Frame(why) | ImageError::UnknownName(why) => f.write_str(why),
            ImageError::Open { path, source } => {
                write!(f, "cannot read image {}: {source}", path.display())
            }
            ImageError::Decode { path, source } => {
                write!(f, "cannot read image {}: {source}", path.display())
            }
            ImageError::Layout { path, why } => {
                write!(f, "cannot read image {}: {why}", path.display())
            }
        }
    }
}

impl std::error::Error for ImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ImageError::Open { source, .. } => Some(source),
            ImageError::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}
