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

/// Bytes a plane of `rows` rows of `row_bytes` needs at `stride`: `None` when that
/// overflows (a stride no buffer can hold).
fn plane_bytes(stride: usize, rows: usize, row_bytes: usize) -> Option<usize> {
    stride
        .checked_mul(rows.saturating_sub(1))?
        .checked_add(row_bytes)
}

impl<P: AsRef<[u8]>> Frame<P> {
    /// Checks that the planes hold a whole `width`×`height` frame of `format`.
    ///
    /// The sizes are computed with checked arithmetic: strides come from outside (a
    /// GStreamer `VideoMeta`), and a product that wrapped around in a release build
    /// would pass this check and send `row` far outside the data.
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
            let Some(needed) = plane_bytes(*stride, *rows, *row_bytes) else {
                return Err(ImageError::Frame(format!(
                    "{format} {width}x{height} plane {i}: stride {stride} overflows over {rows} rows"
                )));
            };
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

    /// Plane `p` from the start of row `y` to the end of the plane's data: at least the
    /// row's bytes for a row of the frame (`new` checked that). Past the last row it
    /// panics on the slice bound; it never wraps around to another row.
    pub(crate) fn row(&self, p: usize, y: usize) -> &[u8] {
        let (data, stride) = &self.planes[p];
        &data.as_ref()[y.saturating_mul(*stride)..]
    }
}

impl<P: AsMut<[u8]>> Frame<P> {
    pub(crate) fn row_mut(&mut self, p: usize, y: usize) -> &mut [u8] {
        let (data, stride) = &mut self.planes[p];
        &mut data.as_mut()[y.saturating_mul(*stride)..]
    }
}

/// Where each plane of a frame lies in one buffer: (byte offset, stride), in the
/// format's plane order — what a GStreamer `VideoMeta` or `VideoInfo` gives.
pub type PlaneLayout = [(usize, usize)];

/// The bytes from each plane's offset to the end of the buffer, or why a plane does
/// not start inside it.
fn plane_starts(len: usize, layout: &PlaneLayout) -> Result<(), ImageError> {
    for (i, (offset, _)) in layout.iter().enumerate() {
        if *offset >= len {
            return Err(ImageError::Frame(format!(
                "plane {i} starts at byte {offset}, past the end of the {len}-byte buffer"
            )));
        }
    }
    Ok(())
}

impl<'a> Frame<&'a [u8]> {
    /// The frame a buffer holds, its planes where `layout` puts them: checked like
    /// [`Frame::new`], so a layout that does not fit the buffer is an error.
    pub fn in_buffer(
        format: PixelFormat,
        width: usize,
        height: usize,
        data: &'a [u8],
        layout: &PlaneLayout,
    ) -> Result<Self, ImageError> {
        plane_starts(data.len(), layout)?;
        let planes = layout
            .iter()
            .map(|(offset, stride)| (&data[*offset..], *stride))
            .collect();
        Frame::new(format, width, height, planes)
    }
}

impl<'a> Frame<&'a mut [u8]> {
    /// [`Frame::in_buffer`] to draw on: the planes must not overlap, each gets its own
    /// part of the buffer.
    pub fn in_buffer_mut(
        format: PixelFormat,
        width: usize,
        height: usize,
        data: &'a mut [u8],
        layout: &PlaneLayout,
    ) -> Result<Self, ImageError> {
        let len = data.len();
        plane_starts(len, layout)?;
        if width == 0 || height == 0 {
            return Err(ImageError::Frame(format!("empty {width}x{height} frame")));
        }
        let extents = format.plane_extents(width, height);
        if layout.len() != extents.len() {
            return Err(ImageError::Frame(format!(
                "{format} has {} planes, got {}",
                extents.len(),
                layout.len()
            )));
        }
        // Each plane's bytes, checked as `new` checks them, then split off the buffer
        // in the order they lie in it.
        let mut spans = Vec::with_capacity(layout.len());
        for (i, ((offset, stride), (row_bytes, rows))) in layout.iter().zip(&extents).enumerate() {
            let end = plane_bytes(*stride, *rows, *row_bytes)
                .and_then(|n| n.checked_add(*offset))
                .filter(|end| *end <= len && *stride >= *row_bytes)
                .ok_or_else(|| {
                    ImageError::Frame(format!(
                        "{format} {width}x{height} plane {i}: {} bytes with stride {stride}, need {} (rows of {row_bytes})",
                        len - offset,
                        plane_bytes(*stride, *rows, *row_bytes)
                            .map_or("more than memory holds".to_string(), |n| n.to_string())
                    ))
                })?;
            spans.push((*offset, end, i));
        }
        spans.sort_unstable();
        let mut planes: Vec<Option<(&'a mut [u8], usize)>> = layout.iter().map(|_| None).collect();
        let mut rest = data;
        let mut at = 0;
        for (start, end, i) in spans {
            if start < at {
                return Err(ImageError::Frame(format!(
                    "{format} plane {i} at byte {start} overlaps the plane before it"
                )));
            }
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(start - at);
            let (plane, tail) = tail.split_at_mut(end - start);
            planes[i] = Some((plane, layout[i].1));
            rest = tail;
            at = end;
        }
        let planes = planes
            .into_iter()
            .map(|p| p.expect("every plane was split off"))
            .collect();
        Frame::new(format, width, height, planes)
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
    let lower = stride
        .checked_mul(half)
        .and_then(|start| data.get(start..))
        .ok_or_else(|| ImageError::Frame(format!("no lower half at stride {stride}")))?;
    Frame::new(
        PixelFormat::Gray16Le,
        frame.width,
        half,
        vec![(lower, stride)],
    )
}

/// The upper (image) half of a two-half frame, to draw on.
pub fn upper_half_image(frame: FrameMut<'_>) -> Result<FrameMut<'_>, ImageError> {
    let half = check_two_halves(&frame)?;
    let width = frame.width;
    let (data, stride) = frame.planes.into_iter().next().expect("YUY2 has one plane");
    let len = data.len();
    let upper = stride
        .checked_mul(half)
        .map(|end| end.min(len))
        .ok_or_else(|| ImageError::Frame(format!("no upper half at stride {stride}")))?;
    Frame::new(
        PixelFormat::Yuy2,
        width,
        half,
        vec![(&mut data[..upper], stride)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stride_whose_rows_overflow_is_an_error_not_a_wrapped_size() {
        // stride * (rows - 1) wraps to 0 in release builds: the check would pass and
        // row(1) index far outside the data.
        let data = [0u8; 64];
        let stride = usize::MAX / 2 + 1;
        let e = Frame::new(PixelFormat::Gray8, 4, 3, vec![(&data[..], stride)]).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
    }

    #[test]
    fn frames_in_a_buffer_take_their_planes_where_the_layout_says() {
        // I420 4x2 with its V plane stored before U, rows padded to 8 bytes.
        let mut data = vec![0u8; 64];
        let layout = [(0, 8), (40, 4), (16, 4)];
        data[..4].copy_from_slice(&[1, 2, 3, 4]);
        data[40] = 7; // U
        data[16] = 9; // V
        let frame = Frame::in_buffer(PixelFormat::I420, 4, 2, &data, &layout).unwrap();
        assert_eq!(&frame.row(0, 0)[..4], &[1, 2, 3, 4]);
        assert_eq!((frame.row(1, 0)[0], frame.row(2, 0)[0]), (7, 9));

        let mut frame = Frame::in_buffer_mut(PixelFormat::I420, 4, 2, &mut data, &layout).unwrap();
        frame.row_mut(1, 0)[1] = 5;
        frame.row_mut(2, 0)[1] = 6;
        assert_eq!((data[41], data[17]), (5, 6));
    }

    #[test]
    fn a_layout_outside_the_buffer_or_overlapping_is_an_error() {
        let mut data = vec![0u8; 32];
        let msg = |r: Result<FrameMut<'_>, ImageError>| r.unwrap_err().to_string();
        let e = Frame::in_buffer(PixelFormat::Gray8, 4, 4, &data, &[(40, 4)]).unwrap_err();
        assert!(
            e.to_string().contains("past the end of the 32-byte buffer"),
            "{e}"
        );
        let e = Frame::in_buffer(PixelFormat::Gray8, 4, 4, &data, &[(20, 4)]).unwrap_err();
        assert!(
            e.to_string().contains("12 bytes with stride 4, need 16"),
            "{e}"
        );
        let e = msg(Frame::in_buffer_mut(
            PixelFormat::Gray8,
            4,
            4,
            &mut data,
            &[(0, usize::MAX)],
        ));
        assert!(e.contains("need more than memory holds"), "{e}");
        let e = msg(Frame::in_buffer_mut(
            PixelFormat::Nv12,
            4,
            2,
            &mut data,
            &[(0, 4), (4, 4)],
        ));
        assert!(e.contains("overlaps"), "{e}");
        let e = msg(Frame::in_buffer_mut(
            PixelFormat::Gray8,
            4,
            4,
            &mut data,
            &[(0, 2)],
        ));
        assert!(e.contains("stride 2, need"), "{e}");
    }

    #[test]
    fn the_halves_of_a_two_half_frame_stay_inside_it() {
        let mut data = [0u8; 8 * 4];
        let frame = Frame::new(PixelFormat::Yuy2, 4, 4, vec![(&data[..], 8)]).unwrap();
        let lower = lower_half_counts(&frame).unwrap();
        assert_eq!((lower.height, lower.planes[0].0.len()), (2, 16));
        let frame = Frame::new(PixelFormat::Yuy2, 4, 4, vec![(&mut data[..], 8)]).unwrap();
        let upper = upper_half_image(frame).unwrap();
        assert_eq!((upper.height, upper.planes[0].0.len()), (2, 16));
    }
}
