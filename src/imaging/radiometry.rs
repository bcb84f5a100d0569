//! Temperatures from radiometric counts: what only a thermal camera can tell.
//!
//! Why: a radiometric LWIR camera measures every pixel's apparent temperature; the AGC
//! that makes the detector's 8-bit view throws that away. Read from the raw 16-bit
//! frame instead, a detection gets its temperature (a person's skin is 30-37 °C, a lamp
//! post sits at the air temperature), which is both an output (fire watch, fever
//! screening, overheating machinery) and a plausibility check of the detection.
//!
//! A count becomes kelvin by the camera's linear law: FLIR Lepton 3.5 / Boson+ in
//! TLinear mode and `zsq synth` recordings send centikelvin (K = count / 100); InfiRay
//! P2 Pro / Topdon TC001 send 1/64 K in the lower frame half (K = count / 64); other
//! cameras give a gain and an offset (K = gain · count + offset).

use std::fmt;

use super::frame::{FrameRef, PixelFormat};

const ZERO_CELSIUS_IN_KELVIN: f64 = 273.15;

/// How a camera's 16-bit counts map to kelvin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Radiometry {
    /// K = count / 100 (FLIR TLinear high resolution, `zsq synth`).
    Centikelvin,
    /// K = count / 64 (InfiRay P2 Pro / Topdon TC001 raw half).
    P2Pro,
    /// K = gain · count + offset.
    Linear { gain: f64, offset: f64 },
}

impl Radiometry {
    /// The temperature of a count, in kelvin.
    pub fn kelvin(self, count: u16) -> f64 {
        let c = count as f64;
        match self {
            Radiometry::Centikelvin => c / 100.0,
            Radiometry::P2Pro => c / 64.0,
            Radiometry::Linear { gain, offset } => gain * c + offset,
        }
    }

    /// The temperature of a count, in degrees Celsius.
    pub fn celsius(self, count: u16) -> f64 {
        self.kelvin(count) - ZERO_CELSIUS_IN_KELVIN
    }
}

impl std::str::FromStr for Radiometry {
    type Err = String;

    /// `centikelvin`, `p2pro` or `linear:GAIN:OFFSET` (K = GAIN · count + OFFSET).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown radiometry `{text}` (expected centikelvin, p2pro or linear:GAIN:OFFSET, K = GAIN x count + OFFSET)"
            )
        };
        match text {
            "centikelvin" => Ok(Radiometry::Centikelvin),
            "p2pro" => Ok(Radiometry::P2Pro),
            _ => {
                let rest = text.strip_prefix("linear:").ok_or_else(bad)?;
                let (gain, offset) = rest.split_once(':').ok_or_else(bad)?;
                let (gain, offset): (f64, f64) = (
                    gain.parse().map_err(|_| bad())?,
                    offset.parse().map_err(|_| bad())?,
                );
                if !(gain > 0.0 && gain.is_finite() && offset.is_finite()) {
                    return Err(format!("radiometry `{text}`: GAIN must be above 0"));
                }
                Ok(Radiometry::Linear { gain, offset })
            }
        }
    }
}

/// A detection's temperature in °C: the hottest pixel of the box without its edges
/// ([`MAX_INSET`]), the median and the 90th percentile of its core ([`CORE_INSET`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxTemperature {
    pub max: f32,
    pub median: f32,
    pub p90: f32,
}

/// A frame's temperature in °C: coldest, hottest and mean pixel, and where the hottest
/// pixel is (`[x, y]`, the spot meter of thermal cameras).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneTemperature {
    pub min: f32,
    pub max: f32,
    pub mean: f32,
    pub hottest: [usize; 2],
}

/// The part of each side of a box left out before its hottest pixel is sought: the
/// box's edge is mostly background. Small, because the hottest part of an object is
/// often at its edge (a person's head at the top of the box, a car's exhaust at its
/// end). Measured on `zsq synth` recordings (docs/temperature.md): 5 % keeps the
/// hottest pixel of 98 % of detected people within 1.5 °C of the truth; 10 % on all
/// sides cuts into heads (86 %).
pub const MAX_INSET: f32 = 0.05;

/// The part of each side, `[left and right, top and bottom]`, left out before the
/// median and the 90th percentile are read: a standing person fills the middle of its
/// box, its sides are background between the arms and legs. With 25 % left and right
/// the median of detected people is within 1.5 °C of their own pixels' median for
/// 69 % of them, against 26 % with 5 % on every side.
pub const CORE_INSET: [f32; 2] = [0.25, 0.05];

/// Why a frame has no temperatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRadiometric(pub PixelFormat);

impl fmt::Display for NotRadiometric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames carry no radiometric counts (GRAY16_LE or GRAY16_BE do)",
            self.0
        )
    }
}

impl std::error::Error for NotRadiometric {}

/// A 16-bit frame's counts, readable per row whatever its byte order.
pub struct Counts<'f, 'a> {
    frame: &'f FrameRef<'a>,
    big_endian: bool,
}

impl<'f, 'a> Counts<'f, 'a> {
    /// The counts of a GRAY16 frame; other formats have none.
    pub fn new(frame: &'f FrameRef<'a>) -> Result<Self, NotRadiometric> {
        match frame.format {
            PixelFormat::Gray16Le | PixelFormat::Gray16Be => Ok(Counts {
                frame,
                big_endian: frame.format == PixelFormat::Gray16Be,
            }),
            other => Err(NotRadiometric(other)),
        }
    }

    /// The counts of row `y`, columns `x0..x1`.
    fn row(&self, y: usize, x0: usize, x1: usize) -> impl Iterator<Item = u16> + '_ {
        let big = self.big_endian;
        self.frame.row(0, y)[2 * x0..2 * x1]
            .chunks_exact(2)
            .map(move |b| {
                if big {
                    u16::from_be_bytes([b[0], b[1]])
                } else {
                    u16::from_le_bytes([b[0], b[1]])
                }
            })
    }

    /// The temperature of `bbox` (`[x0, y0, x1, y1]` in frame pixels); `None` when
    /// nothing of it is inside the frame. `scratch` is reused between boxes.
    pub fn in_box(
        &self,
        bbox: [f32; 4],
        radiometry: Radiometry,
        scratch: &mut Vec<u16>,
    ) -> Option<BoxTemperature> {
        let (w, h) = (self.frame.width, self.frame.height);
        let [x0, y0, x1, y1] = inner_pixels(bbox, [MAX_INSET; 2], w, h)?;
        let max = (y0..y1)
            .flat_map(|y| self.row(y, x0, x1))
            .max()
            .expect("a box holds a pixel");
        let [x0, y0, x1, y1] = inner_pixels(bbox, CORE_INSET, w, h)?;
        scratch.clear();
        for y in y0..y1 {
            scratch.extend(self.row(y, x0, x1));
        }
        let n = scratch.len();
        // Nearest rank, `sorted[floor(q · (n - 1))]`, as the AGC's percentiles.
        let rank = |q: f64| (q * (n - 1) as f64).floor() as usize;
        let mut at = |k: usize| *scratch.select_nth_unstable(k).1;
        let p90 = at(rank(0.9));
        let median = at(rank(0.5));
        let c = |v: u16| radiometry.celsius(v) as f32;
        Some(BoxTemperature {
            max: c(max),
            median: c(median),
            p90: c(p90),
        })
    }

    /// The frame's coldest, hottest and mean temperature.
    pub fn scene(&self, radiometry: Radiometry) -> SceneTemperature {
        let (w, h) = (self.frame.width, self.frame.height);
        let (mut lo, mut hi, mut sum) = (u16::MAX, 0u16, 0u64);
        let mut hottest = [0, 0];
        for y in 0..h {
            for (x, v) in self.row(y, 0, w).enumerate() {
                lo = lo.min(v);
                if v > hi || (y, x) == (0, 0) {
                    hi = v;
                    hottest = [x, y];
                }
                sum += v as u64;
            }
        }
        let mean = sum as f64 / (w * h) as f64;
        // Mean of counts, then kelvin: the laws are linear.
        let mean_c = match radiometry {
            Radiometry::Centikelvin => mean / 100.0,
            Radiometry::P2Pro => mean / 64.0,
            Radiometry::Linear { gain, offset } => gain * mean + offset,
        } - ZERO_CELSIUS_IN_KELVIN;
        SceneTemperature {
            min: radiometry.celsius(lo) as f32,
            max: radiometry.celsius(hi) as f32,
            mean: mean_c as f32,
            hottest,
        }
    }
}

/// The whole pixels of `bbox` clipped to the frame and shrunk by `inset` (the part of
/// the width left out on the left and on the right, of the height at the top and at
/// the bottom), as `[x0, y0, x1, y1)`; at least one pixel when the box overlaps the
/// frame.
fn inner_pixels(
    bbox: [f32; 4],
    inset: [f32; 2],
    width: usize,
    height: usize,
) -> Option<[usize; 4]> {
    let (w, h) = (width as f32, height as f32);
    let [x0, y0, x1, y1] = [
        bbox[0].clamp(0.0, w),
        bbox[1].clamp(0.0, h),
        bbox[2].clamp(0.0, w),
        bbox[3].clamp(0.0, h),
    ];
    if !(x1 > x0 && y1 > y0) {
        return None;
    }
    let (dx, dy) = ((x1 - x0) * inset[0], (y1 - y0) * inset[1]);
    let clip = |v: f32, n: usize| (v.max(0.0) as usize).min(n);
    let (ix0, ix1) = (
        clip((x0 + dx).floor(), width),
        clip((x1 - dx).ceil(), width),
    );
    let (iy0, iy1) = (
        clip((y0 + dy).floor(), height),
        clip((y1 - dy).ceil(), height),
    );
    (ix1 > ix0 && iy1 > iy0).then_some([ix0, iy0, ix1, iy1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::frame::Frame;

    fn frame_of(counts: &[u16], big: bool) -> (Vec<u8>, PixelFormat) {
        let bytes = counts
            .iter()
            .flat_map(|v| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect();
        let format = if big {
            PixelFormat::Gray16Be
        } else {
            PixelFormat::Gray16Le
        };
        (bytes, format)
    }

    #[test]
    fn each_law_gives_kelvin_and_celsius() {
        assert_eq!(Radiometry::Centikelvin.kelvin(30_915), 309.15);
        assert!((Radiometry::Centikelvin.celsius(30_915) - 36.0).abs() < 1e-9);
        assert_eq!(Radiometry::P2Pro.kelvin(64 * 300), 300.0);
        let linear = Radiometry::Linear {
            gain: 0.04,
            offset: 100.0,
        };
        assert!((linear.kelvin(5000) - 300.0).abs() < 1e-9);
    }

    #[test]
    fn the_max_skips_the_box_edge_and_median_and_p90_read_its_core() {
        // A 20x20 box at the origin of a 40x40 frame at 20 °C. Its edge (MAX_INSET: 1
        // pixel) holds a 90 °C pixel that no reading sees; inside, at (2, 1), a 37 °C
        // pixel outside the core that the max sees; the core (CORE_INSET: columns 5..15,
        // rows 1..19) holds 30.15 °C plus 0..179 hundredths.
        let (w, h) = (40, 40);
        let mut counts = vec![29_315u16; w * h];
        for y in 1..19 {
            for x in 5..15 {
                counts[y * w + x] = 30_330 + ((y - 1) * 10 + (x - 5)) as u16;
            }
        }
        counts[0] = 36_315;
        counts[w + 2] = 31_015;
        for big in [false, true] {
            let (bytes, format) = frame_of(&counts, big);
            let frame = Frame::new(format, w, h, vec![(&bytes[..], 2 * w)]).unwrap();
            let t = Counts::new(&frame)
                .unwrap()
                .in_box(
                    [0.0, 0.0, 20.0, 20.0],
                    Radiometry::Centikelvin,
                    &mut Vec::new(),
                )
                .unwrap();
            // 180 core values: median = sorted[89], p90 = sorted[floor(0.9 * 179)] = [161].
            assert!((t.max - 37.0).abs() < 1e-4, "{t:?}");
            assert!((t.median - 31.04).abs() < 1e-4, "{t:?}");
            assert!((t.p90 - 31.76).abs() < 1e-4, "{t:?}");
        }
    }

    #[test]
    fn boxes_outside_the_frame_have_no_temperature_and_cut_ones_are_clipped() {
        let counts = vec![30_000u16; 16];
        let (bytes, format) = frame_of(&counts, false);
        let frame = Frame::new(format, 4, 4, vec![(&bytes[..], 8)]).unwrap();
        let c = Counts::new(&frame).unwrap();
        let r = Radiometry::Centikelvin;
        assert_eq!(c.in_box([5.0, 5.0, 9.0, 9.0], r, &mut Vec::new()), None);
        assert_eq!(c.in_box([2.0, 2.0, 2.0, 3.0], r, &mut Vec::new()), None);
        let t = c
            .in_box([-3.0, 1.0, 2.5, 100.0], r, &mut Vec::new())
            .unwrap();
        assert!((t.max - 26.85).abs() < 1e-4);
    }

    #[test]
    fn the_scene_has_min_max_mean_and_the_hottest_pixel() {
        let (w, h) = (4, 3);
        let mut counts = vec![64 * 290u16; w * h];
        counts[7] = 64 * 310; // x 3, y 1
        counts[2] = 64 * 280;
        let (bytes, format) = frame_of(&counts, false);
        let frame = Frame::new(format, w, h, vec![(&bytes[..], 2 * w)]).unwrap();
        let s = Counts::new(&frame).unwrap().scene(Radiometry::P2Pro);
        assert_eq!(s.hottest, [3, 1]);
        assert!((s.max - 36.85).abs() < 1e-4 && (s.min - 6.85).abs() < 1e-4);
        // (10 · 290 + 310 + 280) / 12 K
        assert!((s.mean - (3490.0 / 12.0 - 273.15)).abs() < 1e-4, "{s:?}");
    }

    #[test]
    fn radiometries_parse_from_their_names() {
        assert_eq!("p2pro".parse(), Ok(Radiometry::P2Pro));
        assert_eq!(
            "linear:0.04:100".parse(),
            Ok(Radiometry::Linear {
                gain: 0.04,
                offset: 100.0
            })
        );
        for bad in ["kelvin", "linear:0.04", "linear:x:1", "linear:0:1"] {
            let e = bad.parse::<Radiometry>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn eight_bit_frames_have_no_counts() {
        let bytes = [0u8; 16];
        let frame = Frame::new(PixelFormat::Gray8, 4, 4, vec![(&bytes[..], 4)]).unwrap();
        let e = Counts::new(&frame).err().unwrap();
        assert!(
            e.to_string()
                .contains("GRAY8 frames carry no radiometric counts")
        );
    }
}
