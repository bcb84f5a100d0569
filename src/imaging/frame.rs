//! Raw video frames as the camera delivers them, without GStreamer: a pixel format,
//! a size and one slice plus stride per plane.

use std::fmt;
use std::str::FromStr;

use super::ImageError;

/// The pixel layouts thermal cameras and the usual converters produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    Gray8,
    Gray16Le,
    Gray16Be,
    Rgb,
    Bgr,
    Rgbx,
    Bgrx,
    Rgba,
    Bgra,
    /// Planar 4:2:0: Y, U, V.
    I420,
    /// Semi-planar 4:2:0: Y, interleaved UV.
    Nv12,
    /// Packed 4:2:2: Y0 U Y1 V.
    Yuy2,
}

impl PixelFormat {
    pub const ALL: [PixelFormat; 12] = [
        PixelFormat::Gray8,
        PixelFormat::Gray16Le,
        PixelFormat::Gray16Be,
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::Yuy2,
    ];

    /// The GStreamer caps name of the format (`GRAY16_LE`, …).
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Gray8 => "GRAY8",
            PixelFormat::Gray16Le => "GRAY16_LE",
            PixelFormat::Gray16Be => "GRAY16_BE",
            PixelFormat::Rgb => "RGB",
            PixelFormat::Bgr => "BGR",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Bgrx => "BGRx",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Yuy2 => "YUY2",
        }
    }

    /// Whether samples are 16-bit radiometric counts (the AGC applies to these).
    pub fn is_16bit(self) -> bool {
        matches!(self, PixelFormat::Gray16Le | PixelFormat::Gray16Be)
    }

    /// Bytes per pixel of packed RGB formats and the byte offsets of R, G, B.
    pub(crate) fn rgb_layout(self) -> Option<(usize, [usize; 3])> {
        match self {
            PixelFormat::Rgb => Some((3, [0, 1, 2])),
            PixelFormat::Bgr => Some((3, [2, 1, 0])),
            PixelFormat::Rgbx | PixelFormat::Rgba => Some((4, [0, 1, 2])),
            PixelFormat::Bgrx | PixelFormat::Bgra => Some((4, [2, 1, 0])),
            _ => None,
        }
    }

    /// Per plane: (bytes of one row, number of rows) for a `width`×`height` frame.
    fn plane_extents(self, width: usize, height: usize) -> Vec<(usize, usize)> {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        match self {
            PixelFormat::Gray8 => vec![(width, height)],
            PixelFormat::Gray16Le | PixelFormat::Gray16Be => vec![(2 * width, height)],
            PixelFormat::I420 => vec![(width, height), (cw, ch), (cw, ch)],
            PixelFormat::Nv12 => vec![(width, height), (2 * cw, ch)],
            PixelFormat::Yuy2 => vec![(4 * cw, height)],
            rgb => {
                let (bpp, _) = rgb.rgb_layout().expect("remaining formats are packed RGB");
                vec![(bpp * width, height)]
            }
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PixelFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ImageError::UnknownName(format!("unsupported pixel format `{s}`")))
    }
}

/// A frame's planes, borrowed (`&[u8]` to read, `&mut [u8]` to draw on).
#[derive(Debug)]
pub struct Frame<P> {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    /// One (data, stride in bytes) per plane, in the format's plane order.
    pub planes: Vec<(P, usize)>,
}

impl<P: AsRef<[u8]>> Frame<P> {
    /// Checks that the planes hold a whole `width`×`height` frame of `format`.
    pub fn new(
        format: PixelFormat,
        width: usize,
        height: usize,
        planes: Vec<(P, usize)>,
    ) -> Result<Self, ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::Frame(format!("empty {width}x{height} frame")));
        }
        let extents = format.plane_extents(width, height);
        if planes.len() != extents.len() {
            return Err(ImageError::Frame(format!(
                "{format} has {} planes, got {}",
                extents.len(),
                planes.len()
            )));
        }
        for (i, ((data, stride), (row_bytes, rows))) in planes.iter().zip(&extents).enumerate() {
            let needed = stride * (rows - 1) + row_bytes;
            if *stride < *row_bytes || data.as_ref().len() < needed {
                return Err(ImageError::Frame(format!(
                    "{format} {width}x{height} plane {i}: {} bytes with stride {stride}, need {needed} (rows of {row_bytes})",
                    data.as_ref().len()
                )));
            }
        }
        Ok(Frame {
            format,
            width,
            height,
            planes,
        })
    }

    /// Row `y` of plane `p`, exactly as many bytes as the row holds.
    pub(crate) fn row(&self, p: usize, y: usize) -> &[u8] {
        let (data, stride) = &self.planes[p];
        &data.as_ref()[y * stride..]
    }
}

impl<P: AsMut<[u8]>> Frame<P> {
    pub(crate) fn row_mut(&mut self, p: usize, y: usize) -> &mut [u8] {
        let (data, stride) = &mut self.planes[p];
        &mut data.as_mut()[y * *stride..]
    }
}

/// A frame to read.
pub type FrameRef<'a> = Frame<&'a [u8]>;
/// A frame to draw on.
pub type FrameMut<'a> = Frame<&'a mut [u8]>;

/// Tightly packed planes for a `width`×`height` frame of `format`, all zero: test and
/// tool frames.
pub fn packed_planes(format: PixelFormat, width: usize, height: usize) -> Vec<(Vec<u8>, usize)> {
    format
        .plane_extents(width, height)
        .into_iter()
        .map(|(row_bytes, rows)| (vec![0u8; row_bytes * rows], row_bytes))
        .collect()
}

/// Encodes an 8-bit grey image as a tightly packed frame of `format`: grey formats
/// carry it (16-bit scaled by 257), RGB formats as R = G = B, YUV formats as luma with
/// neutral chroma. Tests and tools use it to feed one scene in every format.
pub fn encode_grey(
    format: PixelFormat,
    width: usize,
    height: usize,
    grey: &[u8],
) -> Vec<(Vec<u8>, usize)> {
    assert_eq!(grey.len(), width * height, "grey image size");
    let mut planes = packed_planes(format, width, height);
    let px = |x: usize, y: usize| grey[y * width + x];
    for (p, (data, stride)) in planes.iter_mut().enumerate() {
        for (y, row) in data.chunks_exact_mut(*stride).enumerate() {
            match (format, p) {
                (PixelFormat::Gray8 | PixelFormat::I420 | PixelFormat::Nv12, 0) => {
                    (0..width).for_each(|x| row[x] = px(x, y))
                }
                (PixelFormat::Gray16Le, _) => (0..width).for_each(|x| {
                    row[2 * x..2 * x + 2].copy_from_slice(&(px(x, y) as u16 * 257).to_le_bytes())
                }),
                (PixelFormat::Gray16Be, _) => (0..width).for_each(|x| {
                    row[2 * x..2 * x + 2].copy_from_slice(&(px(x, y) as u16 * 257).to_be_bytes())
                }),
                (PixelFormat::I420 | PixelFormat::Nv12, _) => row.fill(128),
                (PixelFormat::Yuy2, _) => (0..width).for_each(|x| {
                    row[2 * x] = px(x, y);
                    row[2 * x + 1] = 128;
                }),
                (rgb, _) => {
                    let (bpp, _) = rgb.rgb_layout().expect("packed RGB");
                    (0..width).for_each(|x| row[bpp * x..bpp * (x + 1)].fill(px(x, y)))
                }
            }
        }
    }
    planes
}

/// Cameras of the InfiRay P2 Pro / Topdon TC001 family send YUY2 frames twice the
/// sensor's height: the upper half is the 8-bit image, the lower half carries each
/// pixel's raw 16-bit count (little-endian, 1/64 K) in the two bytes YUY2 gives a pixel.
/// These split such a frame into the counts to detect on and the image to draw on.
fn check_two_halves<P: AsRef<[u8]>>(frame: &Frame<P>) -> Result<usize, ImageError> {
    if frame.format != PixelFormat::Yuy2 || !frame.height.is_multiple_of(2) {
        return Err(ImageError::Frame(format!(
            "input-layout=thermal-bottom-half needs YUY2 frames of even height (a 256x384 P2 Pro frame), got {} {}x{}",
            frame.format, frame.width, frame.height
        )));
    }
    Ok(frame.height / 2)
}

/// The lower half of a two-half frame as GRAY16_LE counts.
pub fn lower_half_counts<'a>(frame: &FrameRef<'a>) -> Result<FrameRef<'a>, ImageError> {
    let half = check_two_halves(frame)?;
    let (data, stride) = frame.planes[0];
    Frame::new(
        PixelFormat::Gray16Le,
        frame.width,
        half,
        vec![(&data[stride * half..], stride)],
    )
}

/// The upper (image) half of a two-half frame, to draw on.
pub fn upper_half_image(frame: FrameMut<'_>) -> Result<FrameMut<'_>, ImageError> {
    let half = check_two_halves(&frame)?;
    let width = frame.width;
    let (data, stride) = frame.planes.into_iter().next().expect("YUY2 has one plane");
    Frame::new(
        PixelFormat::Yuy2,
        width,
        half,
        vec![(&mut data[..stride * half], stride)],
    )
}
