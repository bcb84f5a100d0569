//! Frame → detector input tensor.
//!
//! The contract shared with the training code (tools/): the 8-bit view (AGC for 16-bit
//! counts), grey replicated to the model's channels (or RGB for colour models),
//! letterboxed into the model's input — scale `r = min(W/w, H/h)`, size
//! `round(w·r)×round(h·r)` (ties to even, as Python rounds), bilinear resampling with
//! half-pixel centres and no antialiasing (`torch.nn.functional.interpolate(...,
//! mode="bilinear", align_corners=False)`), centred at `((W−w')/2, (H−h')/2)` rounded
//! down, padding 114/255 — values in 0..=1, planar channels (NCHW).

use std::fmt;
use std::str::FromStr;

use super::ImageError;
use super::agc::{Agc, AgcTable, Histogram};
use super::frame::{FrameRef, PixelFormat};

/// Value of the letterbox border.
pub const PAD: f32 = 114.0 / 255.0;

/// Which end of the scale is hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Polarity {
    #[default]
    WhiteHot,
    BlackHot,
}

impl FromStr for Polarity {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "white-hot" => Ok(Polarity::WhiteHot),
            "black-hot" => Ok(Polarity::BlackHot),
            _ => Err(ImageError::UnknownName(format!(
                "unknown polarity `{s}` (expected white-hot or black-hot)"
            ))),
        }
    }
}

impl fmt::Display for Polarity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Polarity::WhiteHot => "white-hot",
            Polarity::BlackHot => "black-hot",
        })
    }
}

/// Where a frame lands inside the model input, to map boxes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub frame_width: usize,
    pub frame_height: usize,
    /// Size of the resized frame inside the input.
    pub width: usize,
    pub height: usize,
    pub pad_x: usize,
    pub pad_y: usize,
}

impl Letterbox {
    pub fn new(
        frame_width: usize,
        frame_height: usize,
        input_width: usize,
        input_height: usize,
    ) -> Self {
        let r = (input_width as f64 / frame_width as f64)
            .min(input_height as f64 / frame_height as f64);
        let width = ((frame_width as f64 * r).round_ties_even() as usize).clamp(1, input_width);
        let height = ((frame_height as f64 * r).round_ties_even() as usize).clamp(1, input_height);
        Letterbox {
            frame_width,
            frame_height,
            width,
            height,
            pad_x: (input_width - width) / 2,
            pad_y: (input_height - height) / 2,
        }
    }

    /// A point in model-input pixels to frame pixels (not clamped).
    pub fn to_frame(&self, x: f32, y: f32) -> (f32, f32) {
        let sx = self.frame_width as f32 / self.width as f32;
        let sy = self.frame_height as f32 / self.height as f32;
        ((x - self.pad_x as f32) * sx, (y - self.pad_y as f32) * sy)
    }
}

/// What decides the tensor a [`Preprocess`] makes of a frame: everything but its
/// scratch buffers. Two pre-processings with equal settings make the same tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreSettings {
    pub input_width: usize,
    pub input_height: usize,
    pub channels: usize,
    pub colour: bool,
    pub agc: Agc,
    pub polarity: Polarity,
}

/// A frame's input tensor made ahead of its inference (on another thread, while the
/// detector runs on the frame before), with the settings it was made with.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub settings: PreSettings,
    pub input: Vec<f32>,
    pub letterbox: Letterbox,
}

/// Turns frames into input tensors for one model; keeps its scratch buffers.
pub struct Preprocess {
    pub input_width: usize,
    pub input_height: usize,
    /// 1 (grey) or 3 (RGB) input channels.
    pub channels: usize,
    /// The model was trained on colour images (else on thermal grey).
    pub colour: bool,
    pub agc: Agc,
    pub polarity: Polarity,
    hist: Histogram,
    /// Counts → 8 bits for the current frame's AGC bounds (which it was built for).
    agc_table: AgcTable,
    /// 8-bit level → input value (polarity applied).
    levels: [f32; 256],
    /// Source planes at frame resolution as 8-bit levels, for the inputs that are not
    /// read straight from the frame: R, G, B of a colour frame for a colour model, or
    /// the luma of packed RGB; `levels` turns them into input values while resampling.
    planes: [Vec<u8>; 3],
    taps: Option<Taps>,
}

impl Preprocess {
    pub fn new(input_width: usize, input_height: usize, channels: usize, colour: bool) -> Self {
        Preprocess {
            input_width,
            input_height,
            channels,
            colour,
            agc: Agc::default(),
            polarity: Polarity::default(),
            hist: Histogram::new(),
            agc_table: AgcTable::default(),
            levels: [0.0; 256],
            planes: Default::default(),
            taps: None,
        }
    }

    /// A pre-processing that makes tensors with `settings`.
    pub fn with_settings(settings: PreSettings) -> Self {
        let mut pre = Preprocess::new(
            settings.input_width,
            settings.input_height,
            settings.channels,
            settings.colour,
        );
        pre.agc = settings.agc;
        pre.polarity = settings.polarity;
        pre
    }

    pub fn settings(&self) -> PreSettings {
        PreSettings {
            input_width: self.input_width,
            input_height: self.input_height,
            channels: self.channels,
            colour: self.colour,
            agc: self.agc,
            polarity: self.polarity,
        }
    }

    /// Makes `frame`'s tensor in `input` (a buffer to reuse; resized to
    /// [`Preprocess::tensor_len`]), for a detector to run later
    /// ([`crate::detect::Detector::detect_prepared`]).
    pub fn prepare(&mut self, frame: &FrameRef, mut input: Vec<f32>) -> Prepared {
        input.resize(self.tensor_len(), 0.0);
        let letterbox = self.run(frame, &mut input);
        Prepared {
            settings: self.settings(),
            input,
            letterbox,
        }
    }

    /// Elements of the input tensor.
    pub fn tensor_len(&self) -> usize {
        self.channels * self.input_width * self.input_height
    }

    /// Fills `out` (NCHW, `tensor_len()` floats) from `frame`.
    ///
    /// Grey inputs (16-bit counts through the AGC table, 8-bit grey, the luma of
    /// YUV) are resampled straight from the frame's rows; only colour and packed RGB
    /// go through 8-bit planes first.
    pub fn run(&mut self, frame: &FrameRef, out: &mut [f32]) -> Letterbox {
        assert_eq!(out.len(), self.tensor_len(), "input tensor size");
        let colour = self.colour && self.channels == 3 && !is_grey(frame.format);
        let n = if colour { 3 } else { 1 };
        let invert = self.polarity == Polarity::BlackHot;
        for (i, l) in self.levels.iter_mut().enumerate() {
            *l = if invert {
                1.0 - i as f32 / 255.0
            } else {
                i as f32 / 255.0
            };
        }
        let lb = Letterbox::new(
            frame.width,
            frame.height,
            self.input_width,
            self.input_height,
        );
        let taps = match self.taps.take() {
            Some(t) if t.fits(&lb) => t,
            _ => Taps::new(&lb),
        };
        let plane_len = self.input_width * self.input_height;
        // A copy: the AGC table below borrows `self` mutably.
        let (levels, dst_w) = (&{ self.levels }, self.input_width);
        let rows = |y| frame.row(0, y);
        let first = &mut out[..plane_len];
        match frame.format {
            PixelFormat::Gray16Le | PixelFormat::Gray16Be => {
                let table = self.agc_table(frame);
                if frame.format == PixelFormat::Gray16Be {
                    let at =
                        |r: &[u8], x| table[u16::from_be_bytes([r[2 * x], r[2 * x + 1]]) as usize];
                    taps.resize(rows, at, levels, first, dst_w, &lb);
                } else {
                    let at =
                        |r: &[u8], x| table[u16::from_le_bytes([r[2 * x], r[2 * x + 1]]) as usize];
                    taps.resize(rows, at, levels, first, dst_w, &lb);
                }
            }
            PixelFormat::Gray8 | PixelFormat::I420 | PixelFormat::Nv12 if !colour => {
                taps.resize(rows, |r: &[u8], x| r[x], levels, first, dst_w, &lb);
            }
            PixelFormat::Yuy2 if !colour => {
                taps.resize(rows, |r: &[u8], x| r[2 * x], levels, first, dst_w, &lb);
            }
            _ => {
                fill_planes(&mut self.planes, frame, colour);
                let w = frame.width;
                for (c, plane) in self.planes[..n].iter().enumerate() {
                    let dst = &mut out[c * plane_len..(c + 1) * plane_len];
                    let rows = |y: usize| &plane[y * w..(y + 1) * w];
                    taps.resize(rows, |r: &[u8], x| r[x], levels, dst, dst_w, &lb);
                }
            }
        }
        for c in n..self.channels {
            out.copy_within(0..plane_len, c * plane_len);
        }
        self.taps = Some(taps);
        lb
    }

    /// The AGC lookup table (count to 8-bit level) for a 16-bit frame.
    fn agc_table(&mut self, frame: &FrameRef) -> &[u8] {
        let big = frame.format == PixelFormat::Gray16Be;
        if self.agc.needs_histogram() {
            self.hist.clear();
            for y in 0..frame.height {
                self.hist.add_all(counts(frame.row(0, y), frame.width, big));
            }
        }
        self.agc_table.update(&self.agc, &self.hist)
    }
}

/// The 8-bit planes of a YUV (for a colour model) or packed RGB frame at frame
/// resolution: R, G and B for a colour model, else the luma in the first.
fn fill_planes(planes: &mut [Vec<u8>; 3], frame: &FrameRef, colour: bool) {
    let (w, h) = (frame.width, frame.height);
    let n = if colour { 3 } else { 1 };
    for p in &mut planes[..n] {
        p.resize(w * h, 0);
    }
    let [p0, p1, p2] = planes;
    for y in 0..h {
        match frame.format {
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::Yuy2 => {
                for x in 0..w {
                    let (yy, u, v) = yuv_at(frame, x, y);
                    [p0[y * w + x], p1[y * w + x], p2[y * w + x]] = yuv_to_rgb(yy, u, v);
                }
            }
            rgb => {
                let (bpp, [ri, gi, bi]) = rgb.rgb_layout().expect("packed RGB");
                let row = &frame.row(0, y)[..bpp * w];
                for (x, px) in row.chunks_exact(bpp).enumerate() {
                    let (r, g, b) = (px[ri], px[gi], px[bi]);
                    if colour {
                        [p0[y * w + x], p1[y * w + x], p2[y * w + x]] = [r, g, b];
                    } else {
                        p0[y * w + x] = luma(r, g, b);
                    }
                }
            }
        }
    }
}

/// The first `w` 16-bit counts of a row.
fn counts(row: &[u8], w: usize, big_endian: bool) -> impl Iterator<Item = u16> + '_ {
    row[..2 * w].chunks_exact(2).map(move |b| {
        let b = [b[0], b[1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    })
}

/// BT.601 luma of an RGB pixel, rounded: what a grey camera would have shown.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
}

fn is_grey(format: PixelFormat) -> bool {
    matches!(
        format,
        PixelFormat::Gray8 | PixelFormat::Gray16Le | PixelFormat::Gray16Be
    )
}

/// Y, U, V of pixel (x, y) of a YUV frame.
fn yuv_at(frame: &FrameRef, x: usize, y: usize) -> (u8, u8, u8) {
    match frame.format {
        PixelFormat::I420 => (
            frame.row(0, y)[x],
            frame.row(1, y / 2)[x / 2],
            frame.row(2, y / 2)[x / 2],
        ),
        PixelFormat::Nv12 => {
            let uv = frame.row(1, y / 2);
            (frame.row(0, y)[x], uv[x / 2 * 2], uv[x / 2 * 2 + 1])
        }
        PixelFormat::Yuy2 => {
            let row = frame.row(0, y);
            (row[2 * x], row[x / 2 * 4 + 1], row[x / 2 * 4 + 3])
        }
        other => unreachable!("{other} is not YUV"),
    }
}

/// BT.601 limited-range YUV to 8-bit RGB, as a colour camera's RGB output would be.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as f32 - 16.0) * 1.164_383;
    let (d, e) = (u as f32 - 128.0, v as f32 - 128.0);
    [
        c + 1.596_027 * e,
        c - 0.391_762 * d - 0.812_968 * e,
        c + 2.017_232 * d,
    ]
    .map(|x| x.round().clamp(0.0, 255.0) as u8)
}

/// Bilinear taps (half-pixel centres, no antialiasing) for one letterbox geometry.
struct Taps {
    geometry: (usize, usize, usize, usize),
    x: Vec<(usize, usize, f32)>,
    y: Vec<(usize, usize, f32)>,
}

impl Taps {
    fn new(lb: &Letterbox) -> Self {
        Taps {
            geometry: (lb.frame_width, lb.frame_height, lb.width, lb.height),
            x: axis_taps(lb.frame_width, lb.width),
            y: axis_taps(lb.frame_height, lb.height),
        }
    }

    fn fits(&self, lb: &Letterbox) -> bool {
        self.geometry == (lb.frame_width, lb.frame_height, lb.width, lb.height)
    }

    /// Resamples a source image into the letterbox of `dst` (`dst_w` wide): `rows(y)`
    /// is row `y`, `at(row, x)` the 8-bit level of its pixel `x`, `levels` the input
    /// value of a level.
    fn resize<'a>(
        &self,
        rows: impl Fn(usize) -> &'a [u8],
        at: impl Fn(&[u8], usize) -> u8,
        levels: &[f32; 256],
        dst: &mut [f32],
        dst_w: usize,
        lb: &Letterbox,
    ) {
        dst.fill(PAD);
        let value = |row: &[u8], x| levels[at(row, x) as usize];
        for (oy, &(y0, y1, ly)) in self.y.iter().enumerate() {
            let (r0, r1) = (rows(y0), rows(y1));
            let start = (lb.pad_y + oy) * dst_w + lb.pad_x;
            let out = &mut dst[start..start + lb.width];
            for (o, &(x0, x1, lx)) in out.iter_mut().zip(&self.x) {
                let top = (1.0 - lx) * value(r0, x0) + lx * value(r0, x1);
                let bottom = (1.0 - lx) * value(r1, x0) + lx * value(r1, x1);
                *o = (1.0 - ly) * top + ly * bottom;
            }
        }
    }
}

/// Per output index: the two source indices and the weight of the second, as
/// `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)` computes them.
fn axis_taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f32 / dst as f32;
    (0..dst)
        .map(|o| {
            let s = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (s as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            (i0, i1, (s - i0 as f32).clamp(0.0, 1.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::frame::{Frame, packed_planes};

    #[test]
    fn letterbox_geometry_matches_the_training_contract() {
        let lb = Letterbox::new(640, 512, 320, 320);
        assert_eq!((lb.width, lb.height, lb.pad_x, lb.pad_y), (320, 256, 0, 32));
        let lb = Letterbox::new(160, 120, 320, 320);
        assert_eq!((lb.width, lb.height, lb.pad_x, lb.pad_y), (320, 240, 0, 40));
        let lb = Letterbox::new(256, 192, 320, 320);
        assert_eq!((lb.width, lb.height, lb.pad_x, lb.pad_y), (320, 240, 0, 40));
        assert_eq!(lb.to_frame(160.0, 140.0), (128.0, 80.0));
    }

    #[test]
    fn downscale_by_two_averages_two_by_two() {
        let taps = axis_taps(4, 2);
        assert_eq!(taps, vec![(0, 1, 0.5), (2, 3, 0.5)]);
        let taps = axis_taps(2, 4); // upscale: edges clamp
        assert_eq!(taps[0], (0, 1, 0.0));
        assert_eq!(taps[3], (1, 1, 0.25)); // both taps on the last pixel
    }

    #[test]
    fn grey16_frame_is_stretched_letterboxed_and_replicated() {
        let (w, h) = (8, 4);
        let mut planes = packed_planes(PixelFormat::Gray16Le, w, h);
        // left half cold (1000), right half hot (2000)
        for y in 0..h {
            for x in 0..w {
                let v: u16 = if x < w / 2 { 1000 } else { 2000 };
                planes[0].0[y * 2 * w + 2 * x..][..2].copy_from_slice(&v.to_le_bytes());
            }
        }
        let frame = Frame::new(
            PixelFormat::Gray16Le,
            w,
            h,
            planes.iter().map(|(d, s)| (d.as_slice(), *s)).collect(),
        )
        .unwrap();
        let mut pre = Preprocess::new(8, 8, 3, false);
        let mut out = vec![0.0; pre.tensor_len()];
        let lb = pre.run(&frame, &mut out);
        assert_eq!((lb.width, lb.height, lb.pad_x, lb.pad_y), (8, 4, 0, 2));
        for c in 0..3 {
            let plane = &out[c * 64..(c + 1) * 64];
            assert!(plane[..16].iter().all(|&v| v == PAD), "top border");
            assert_eq!(plane[2 * 8], 0.0, "cold is black");
            assert_eq!(plane[2 * 8 + 7], 1.0, "hot is white");
            assert!(plane[48..].iter().all(|&v| v == PAD), "bottom border");
        }
        pre.polarity = Polarity::BlackHot;
        pre.run(&frame, &mut out);
        assert_eq!(out[2 * 8], 1.0);
    }
}
