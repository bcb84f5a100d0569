//! Automatic gain control: radiometric 16-bit counts to the 8-bit view a detector was
//! trained on.
//!
//! A thermal camera's 8-bit output is a per-frame linear stretch between two
//! percentiles of the raw counts. The demo detectors were trained on exactly that view
//! (`zsq synth` writes it with [`percentile_bounds`]), so the element reproduces it
//! bit for bit instead of feeding raw counts.
//!
//! Many cameras (FLIR's cores among them) equalise the histogram instead, which gives
//! the grey levels to the temperatures most pixels have: [`Agc::Equalize`] is that view,
//! for data sets and detectors made for it (`zsq synth --agc equalize`).

use std::fmt;
use std::str::FromStr;

use super::ImageError;
use super::frame::{FrameMut, PixelFormat};

/// How 16-bit counts become 0..=255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agc {
    /// Per frame, stretch between the `low` and `high` percentiles (0..=100).
    Percentile { low: f64, high: f64 },
    /// Per frame, plateau histogram equalisation ([`equalize_table`]): grey levels go to
    /// the temperatures many pixels have, as the default AGC of FLIR cores does, so a
    /// person a few kelvin above the road is not lost when the sky and a hot exhaust
    /// set the range.
    Equalize,
    /// Per frame, stretch between the smallest and largest count.
    MinMax,
    /// Stretch between fixed raw counts (e.g. a known temperature span).
    Fixed { low: u16, high: u16 },
    /// No stretch: the full 16-bit range maps to 0..=255.
    None,
}

impl Default for Agc {
    fn default() -> Self {
        Agc::Percentile {
            low: 1.0,
            high: 99.0,
        }
    }
}

/// The AGC kinds by name, as the element's `agc` property spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgcMode {
    #[default]
    Percentile,
    Equalize,
    MinMax,
    Fixed,
    None,
}

impl FromStr for AgcMode {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "percentile" => Ok(AgcMode::Percentile),
            "equalize" => Ok(AgcMode::Equalize),
            "minmax" => Ok(AgcMode::MinMax),
            "fixed" => Ok(AgcMode::Fixed),
            "none" => Ok(AgcMode::None),
            _ => Err(ImageError::UnknownName(format!(
                "unknown agc `{s}` (expected percentile, equalize, minmax, fixed or none)"
            ))),
        }
    }
}

impl fmt::Display for AgcMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AgcMode::Percentile => "percentile",
            AgcMode::Equalize => "equalize",
            AgcMode::MinMax => "minmax",
            AgcMode::Fixed => "fixed",
            AgcMode::None => "none",
        })
    }
}

/// A 65536-bin histogram of a frame's counts.
///
/// Filled per frame on the streaming thread, so it is built for speed: two banks take
/// alternate counts, so that neighbouring pixels of equal value (flat sky, a saturated
/// hot spot) do not wait on each other's increment of one bin.
pub struct Histogram {
    banks: Box<[[u32; BINS]; 2]>,
    total: u64,
}

const BINS: usize = 1 << 16;

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            banks: vec![[0; BINS]; 2]
                .into_boxed_slice()
                .try_into()
                .expect("two banks"),
            total: 0,
        }
    }

    pub fn clear(&mut self) {
        for bank in self.banks.iter_mut() {
            bank.fill(0);
        }
        self.total = 0;
    }

    /// Adds every count of `values`.
    pub fn add_all(&mut self, values: impl Iterator<Item = u16>) {
        let mut n = 0;
        for (i, v) in values.enumerate() {
            self.banks[i & 1][v as usize] += 1;
            n = i + 1;
        }
        self.total += n as u64;
    }

    /// Pixels counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The pixels of each count, 0 to 65535.
    pub fn bins(&self) -> impl Iterator<Item = u32> + '_ {
        let [a, b] = &*self.banks;
        a.iter().zip(b.iter()).map(|(&a, &b)| a + b)
    }

    /// `sorted[k]` for two ranks `k_low <= k_high` (0-based), in one pass over the bins.
    fn kth_pair(&self, k_low: u64, k_high: u64) -> (u16, u16) {
        let mut seen = 0u64;
        let mut low = None;
        for (v, c) in self.bins().enumerate() {
            seen += c as u64;
            if seen > k_low && low.is_none() {
                low = Some(v as u16);
            }
            if seen > k_high {
                return (low.unwrap_or(v as u16), v as u16);
            }
        }
        (low.unwrap_or(u16::MAX), u16::MAX)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The stretch bounds of a percentile AGC: `sorted[floor(p/100 · (n−1))]` for the low
/// and the high percentile, the nearest-rank definition numpy calls `method="lower"`.
pub fn percentile_bounds(hist: &Histogram, low: f64, high: f64) -> (u16, u16) {
    let n = hist.total();
    if n == 0 {
        return (0, u16::MAX);
    }
    let rank = |p: f64| ((p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64).floor() as u64;
    let (k_low, k_high) = (rank(low), rank(high));
    if k_low <= k_high {
        hist.kth_pair(k_low, k_high)
    } else {
        let (high, low) = hist.kth_pair(k_high, k_low);
        (low, high)
    }
}

/// Maps `v` into 0..=255 by the linear stretch `lo..=hi`, clamped and rounded half up:
/// `floor(255·(v−lo)/(hi−lo) + ½)`, computed in integers so every implementation of
/// the contract (Rust, numpy) agrees to the bit. A flat frame (`hi <= lo`) maps to 0.
pub fn stretch(v: u16, lo: u16, hi: u16) -> u8 {
    if hi <= lo {
        return 0;
    }
    let (n, d) = ((v.clamp(lo, hi) - lo) as u32, (hi - lo) as u32);
    ((510 * n + d) / (2 * d)) as u8
}

/// [`stretch`] for every count at once: index the table with a count. Only the counts
/// inside the stretch are computed (a division each); the rest are 0 or 255.
pub fn stretch_table(lo: u16, hi: u16, table: &mut Vec<u8>) {
    table.clear();
    if hi <= lo {
        table.resize(BINS, 0);
        return;
    }
    table.resize(lo as usize, 0);
    table.extend((lo..=hi).map(|v| stretch(v, lo, hi)));
    table.resize(BINS, 255);
}

/// No single count takes more than `1/EQUALIZE_PLATEAU` of the pixels in
/// [`equalize_table`]: a flat area (sky, a wall) gets at most about one grey level per
/// centikelvin instead of most of the scale.
pub const EQUALIZE_PLATEAU: u64 = 256;

/// The 8-bit table of plateau histogram equalisation of a frame's histogram.
///
/// Each count's histogram bin is clipped at the plateau `P = max(1, ⌈n / 256⌉)` (n:
/// pixels), `c(v)` is the cumulative clipped count up to and including `v`, `v₀` the
/// smallest count present, and `out(v) = round(255·(c(v) − c(v₀)) / (c_max − c(v₀)))`
/// (half up, in integers like [`stretch`]); counts below `v₀` map to 0, a frame of one
/// count to 0. The table is non-decreasing (hotter never looks darker) and, without
/// clipping, gives every grey level about the same number of pixels.
pub fn equalize_table(hist: &Histogram, table: &mut Vec<u8>) {
    table.clear();
    let n = hist.total();
    let plateau = n.div_ceil(EQUALIZE_PLATEAU).max(1);
    let clipped = |c: u32| (c as u64).min(plateau);
    let Some(first) = hist.bins().find(|&c| c > 0) else {
        table.resize(BINS, 0);
        return;
    };
    let base = clipped(first);
    let total: u64 = hist.bins().map(clipped).sum();
    let span = total - base;
    let mut cumulative = 0u64;
    table.extend(hist.bins().map(|c| {
        cumulative += clipped(c);
        if span == 0 || cumulative <= base {
            0
        } else {
            ((510 * (cumulative - base) + span) / (2 * span)) as u8
        }
    }));
}

impl Agc {
    /// The stretch bounds for one frame (`hist` holds its counts where the mode needs it).
    /// [`Agc::Equalize`] is not a linear stretch: its bounds are the coldest and hottest
    /// count, for display only; [`AgcTable`] gives its mapping.
    pub fn bounds(&self, hist: &Histogram) -> (u16, u16) {
        match *self {
            Agc::Percentile { low, high } => percentile_bounds(hist, low, high),
            Agc::MinMax | Agc::Equalize => percentile_bounds(hist, 0.0, 100.0),
            Agc::Fixed { low, high } => (low, high),
            Agc::None => (0, u16::MAX),
        }
    }

    /// Whether [`Agc::bounds`] reads the histogram (so it must be filled per frame).
    pub fn needs_histogram(&self) -> bool {
        matches!(self, Agc::Percentile { .. } | Agc::MinMax | Agc::Equalize)
    }
}

/// The count → 8-bit lookup table of an AGC, rebuilt only when a frame needs another
/// one (a linear stretch whose bounds did not move keeps its table).
#[derive(Debug, Clone, Default)]
pub struct AgcTable {
    bounds: Option<(u16, u16)>,
    table: Vec<u8>,
}

impl AgcTable {
    /// The table for the frame whose counts `hist` holds (see [`Agc::needs_histogram`]).
    pub fn update(&mut self, agc: &Agc, hist: &Histogram) -> &[u8] {
        if *agc == Agc::Equalize {
            equalize_table(hist, &mut self.table);
            self.bounds = None;
        } else {
            let bounds = agc.bounds(hist);
            if self.bounds != Some(bounds) {
                stretch_table(bounds.0, bounds.1, &mut self.table);
                self.bounds = Some(bounds);
            }
        }
        &self.table
    }
}

/// Applies an AGC to a whole 16-bit frame: the 8-bit view a camera (and `zsq synth`)
/// produces.
pub fn agc_view(counts: &[u16], agc: &Agc) -> Vec<u8> {
    let mut hist = Histogram::new();
    if agc.needs_histogram() {
        hist.add_all(counts.iter().copied());
    }
    let table = AgcTable::default().update(agc, &hist).to_vec();
    counts.iter().map(|&v| table[v as usize]).collect()
}

/// Applies a percentile AGC to a whole 16-bit frame: the 8-bit view a camera (and
/// `zsq synth`) produces.
pub fn percentile_stretch(counts: &[u16], low: f64, high: f64) -> Vec<u8> {
    let mut hist = Histogram::new();
    hist.add_all(counts.iter().copied());
    let (lo, hi) = percentile_bounds(&hist, low, high);
    counts.iter().map(|&v| stretch(v, lo, hi)).collect()
}

/// Replaces a 16-bit frame's counts by its AGC view scaled back to 16 bits (`v8 · 257`),
/// so displays and encoders downstream show the picture the detector saw instead of a
/// nearly flat raw image. The radiometric counts are gone afterwards.
pub fn apply_in_place(frame: &mut FrameMut, agc: &Agc, hist: &mut Histogram) {
    let big = frame.format == PixelFormat::Gray16Be;
    let read = |b: &[u8]| {
        if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        }
    };
    let (w, h) = (frame.width, frame.height);
    if agc.needs_histogram() {
        hist.clear();
        for y in 0..h {
            hist.add_all(frame.row(0, y)[..2 * w].chunks_exact(2).map(read));
        }
    }
    let mut tables = AgcTable::default();
    let table = tables.update(agc, hist);
    for y in 0..h {
        for px in frame.row_mut(0, y)[..2 * w].chunks_exact_mut(2) {
            let v = table[read(px) as usize] as u16 * 257;
            px.copy_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_bounds_are_nearest_rank_lower() {
        // 0..=999: numpy.percentile(x, [1, 99], method="lower") = [9, 989]
        let counts: Vec<u16> = (0..1000).rev().collect();
        let mut hist = Histogram::new();
        hist.add_all(counts.iter().copied());
        assert_eq!(percentile_bounds(&hist, 1.0, 99.0), (9, 989));
        assert_eq!(percentile_bounds(&hist, 0.0, 100.0), (0, 999));
    }

    #[test]
    fn stretch_clamps_and_rounds() {
        assert_eq!(stretch(100, 100, 200), 0);
        assert_eq!(stretch(50, 100, 200), 0);
        assert_eq!(stretch(200, 100, 200), 255);
        assert_eq!(stretch(60000, 100, 200), 255);
        assert_eq!(stretch(150, 100, 200), 128); // 127.5 rounds up
        assert_eq!(stretch(7, 5, 5), 0);
    }

    #[test]
    fn a_frame_is_replaced_by_its_agc_view() {
        use crate::imaging::frame::Frame;
        let counts: Vec<u16> = (0..100).map(|i| 29_000 + 10 * i).collect();
        let mut bytes: Vec<u8> = counts.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut frame = Frame::new(
            PixelFormat::Gray16Le,
            10,
            10,
            vec![(bytes.as_mut_slice(), 20)],
        )
        .unwrap();
        apply_in_place(&mut frame, &Agc::MinMax, &mut Histogram::new());
        let out: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        let want: Vec<u16> = percentile_stretch(&counts, 0.0, 100.0)
            .iter()
            .map(|&v| v as u16 * 257)
            .collect();
        assert_eq!(out, want);
        assert_eq!((out[0], out[99]), (0, 65535));
    }

    #[test]
    fn equalize_is_monotone_and_spreads_grey_levels_evenly() {
        // A skewed frame: most pixels in a narrow cold band, a few hot ones far above.
        let mut counts: Vec<u16> = (0..60_000u32).map(|i| 27_000 + (i % 400) as u16).collect();
        counts.extend((0..4_000u32).map(|i| 30_000 + (i % 2_000) as u16));
        let mut hist = Histogram::new();
        hist.add_all(counts.iter().copied());
        let mut table = Vec::new();
        equalize_table(&hist, &mut table);
        assert_eq!(table.len(), 65536);
        assert!(table.windows(2).all(|p| p[0] <= p[1]), "monotone");
        assert_eq!((table[27_000], table[31_999], table[65_535]), (0, 255, 255));
        let out = agc_view(&counts, &Agc::Equalize);
        // Roughly flat: each quarter of the grey scale holds 10-40 % of the pixels
        // (a linear stretch of this frame puts 94 % into the darkest eighth).
        for q in 0..4 {
            let share =
                out.iter().filter(|&&v| v as usize / 64 == q).count() as f64 / out.len() as f64;
            assert!((0.1..0.4).contains(&share), "quarter {q}: {share}");
        }
        let linear = agc_view(&counts, &Agc::MinMax);
        assert!(linear.iter().filter(|&&v| v < 32).count() > 55_000);
        // A flat frame and an empty one map to 0.
        assert!(
            agc_view(&[500; 100], &Agc::Equalize)
                .iter()
                .all(|&v| v == 0)
        );
        assert!(agc_view(&[], &Agc::Equalize).is_empty());
        assert_eq!("equalize".parse::<AgcMode>().unwrap(), AgcMode::Equalize);
        assert_eq!(AgcMode::Equalize.to_string(), "equalize");
    }

    #[test]
    fn agc_view_of_a_percentile_agc_is_percentile_stretch() {
        let counts: Vec<u16> = (0..5_000).map(|i| 28_000 + (i * 7 % 900) as u16).collect();
        assert_eq!(
            agc_view(&counts, &Agc::default()),
            percentile_stretch(&counts, 1.0, 99.0)
        );
    }

    #[test]
    fn percentile_stretch_uses_the_full_range() {
        let counts: Vec<u16> = (0..10_000).map(|i| 29_000 + (i % 500) as u16).collect();
        let out = percentile_stretch(&counts, 1.0, 99.0);
        assert_eq!(*out.iter().min().unwrap(), 0);
        assert_eq!(*out.iter().max().unwrap(), 255);
    }
}
