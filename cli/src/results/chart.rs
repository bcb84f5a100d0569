//! Small PNG charts for `docs/results/`: a line chart with error bars and a grouped bar
//! chart on an RGB canvas, text in the detector overlay's bitmap font. Why not a
//! plotting library: `make report` must run with what `make test` installs (no Python,
//! no new crates), and these two charts need a few hundred lines.

use std::path::Path;

use thermalzsq::imaging::font;

pub type Rgb = [u8; 3];

pub const BLACK: Rgb = [0, 0, 0];
pub const WHITE: Rgb = [255, 255, 255];
pub const GREY: Rgb = [150, 150, 150];
pub const LIGHT: Rgb = [228, 228, 228];

/// Colours for series, distinct for the colour-blind (Okabe–Ito).
pub const PALETTE: [Rgb; 8] = [
    [0, 114, 178],
    [230, 159, 0],
    [0, 158, 115],
    [204, 121, 167],
    [213, 94, 0],
    [86, 180, 233],
    [240, 228, 66],
    [90, 90, 90],
];

/// An RGB image being drawn on.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        let mut pixels = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            pixels.extend_from_slice(&background);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    #[cfg(test)]
    pub fn pixel(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Fills `[x0, x1) × [y0, y1)` (clipped to the canvas).
    pub fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.max(0)..y1.min(self.height as i64) {
            for x in x0.max(0)..x1.min(self.width as i64) {
                self.put(x, y, c);
            }
        }
    }

    /// A straight line `width` pixels wide; `dash` > 0 draws dashes of that length.
    pub fn line(
        &mut self,
        (x0, y0): (f64, f64),
        (x1, y1): (f64, f64),
        c: Rgb,
        width: usize,
        dash: usize,
    ) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        let half = width as i64 / 2;
        for i in 0..=steps {
            if dash > 0 && (i / dash) % 2 == 1 {
                continue;
            }
            let t = i as f64 / steps as f64;
            let (x, y) = (
                (x0 + (x1 - x0) * t).round() as i64,
                (y0 + (y1 - y0) * t).round() as i64,
            );
            self.fill(
                x - half,
                y - half,
                x - half + width as i64,
                y - half + width as i64,
                c,
            );
        }
    }

    /// Writes `text` with its top-left corner at (x, y), each font pixel `scale` wide.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: usize, c: Rgb) {
        let s = scale as i64;
        for (k, ch) in text.chars().enumerate() {
            let gx = x + (k * font::WIDTH * scale) as i64;
            for (row, bits) in font::glyph(ch).iter().enumerate() {
                for col in 0..font::WIDTH {
                    if bits & (1 << (font::WIDTH - 1 - col)) != 0 {
                        let (px, py) = (gx + col as i64 * s, y + row as i64 * s);
                        self.fill(px, py, px + s, py + s, c);
                    }
                }
            }
        }
    }

    pub fn text_width(text: &str, scale: usize) -> i64 {
        (text.chars().count() * font::WIDTH * scale) as i64
    }

    /// Copies an RGB image (row-major, 3 bytes per pixel) to (x, y).
    pub fn blit(&mut self, x: i64, y: i64, width: usize, height: usize, rgb: &[u8]) {
        for row in 0..height {
            for col in 0..width {
                let i = (row * width + col) * 3;
                self.put(
                    x + col as i64,
                    y + row as i64,
                    [rgb[i], rgb[i + 1], rgb[i + 2]],
                );
            }
        }
    }

    pub fn save_png(&self, path: &Path) -> std::io::Result<()> {
        let file = std::fs::File::create(path)?;
        let mut encoder = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .and_then(|mut w| w.write_image_data(&self.pixels))
            .map_err(std::io::Error::other)
    }
}

/// About `target` round tick values covering `[lo, hi]` (steps of 1, 2 or 5 × 10^k).
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater)
        || !lo.is_finite()
        || !hi.is_finite()
    {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Decimals that tell ticks `step` apart.
fn decimals(ticks: &[f64]) -> usize {
    let step = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    if !step.is_finite() || step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    }
}

/// Plot area and axis mapping shared by the charts.
struct Frame {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
    y: (f64, f64),
}

impl Frame {
    fn y_px(&self, v: f64) -> f64 {
        let (lo, hi) = self.y;
        self.bottom as f64 - (v - lo) / (hi - lo) * (self.bottom - self.top) as f64
    }

    /// Title, y axis with grid lines and tick labels, and the y label above the axis.
    fn draw_axes(&self, c: &mut Canvas, title: &str, y_label: &str) {
        c.text(self.left, 10, title, 2, BLACK);
        c.text(self.left - 40, self.top - 18, y_label, 1, BLACK);
        let ticks = ticks(self.y.0, self.y.1, 6);
        let dec = decimals(&ticks);
        for t in ticks {
            let y = self.y_px(t);
            c.line((self.left as f64, y), (self.right as f64, y), LIGHT, 1, 0);
            let label = format!("{t:.dec$}");
            c.text(
                self.left - 6 - Canvas::text_width(&label, 1),
                y as i64 - 5,
                &label,
                1,
                BLACK,
            );
        }
        c.line(
            (self.left as f64, self.top as f64),
            (self.left as f64, self.bottom as f64),
            BLACK,
            1,
            0,
        );
        c.line(
            (self.left as f64, self.bottom as f64),
            (self.right as f64, self.bottom as f64),
            BLACK,
            1,
            0,
        );
    }
}

/// One line of a line chart: points (x, y, ± error).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub color: Rgb,
    pub points: Vec<(f64, f64, f64)>,
}

/// A horizontal reference line (e.g. the fp32 accuracy).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub label: String,
    pub color: Rgb,
    pub y: f64,
}

/// Lines with error bars over a numeric x axis, dashed reference lines, a legend.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    references: &[Reference],
) -> Canvas {
    let (w, h) = (760, 460);
    let mut c = Canvas::new(w, h, WHITE);
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2]))
        .chain(references.iter().map(|r| r.y));
    let (y_lo, y_hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let pad = ((y_hi - y_lo) * 0.08).max(1e-3);
    let frame = Frame {
        left: 70,
        top: 50,
        right: w as i64 - 190,
        bottom: h as i64 - 50,
        y: (y_lo - pad, y_hi + pad),
    };
    frame.draw_axes(&mut c, title, y_label);
    let x_span = if x_hi > x_lo { x_hi - x_lo } else { 1.0 };
    let x_px = |x: f64| {
        frame.left as f64 + 10.0 + (x - x_lo) / x_span * (frame.right - frame.left - 20) as f64
    };
    let x_ticks: Vec<f64> = {
        let mut t: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        t.sort_by(f64::total_cmp);
        t.dedup();
        t
    };
    for &t in &x_ticks {
        let x = x_px(t);
        c.line(
            (x, frame.bottom as f64),
            (x, frame.bottom as f64 + 4.0),
            BLACK,
            1,
            0,
        );
        let label = format!("{t}");
        c.text(
            x as i64 - Canvas::text_width(&label, 1) / 2,
            frame.bottom + 8,
            &label,
            1,
            BLACK,
        );
    }
    c.text(
        (frame.left + frame.right) / 2 - Canvas::text_width(x_label, 1) / 2,
        frame.bottom + 26,
        x_label,
        1,
        BLACK,
    );
    let mut legend_y = frame.top;
    for r in references {
        let y = frame.y_px(r.y);
        c.line(
            (frame.left as f64, y),
            (frame.right as f64, y),
            r.color,
            1,
            6,
        );
        c.line(
            ((frame.right + 12) as f64, (legend_y + 5) as f64),
            ((frame.right + 32) as f64, (legend_y + 5) as f64),
            r.color,
            1,
            3,
        );
        c.text(frame.right + 38, legend_y, &r.label, 1, BLACK);
        legend_y += 16;
    }
    for s in series {
        for pair in s.points.windows(2) {
            c.line(
                (x_px(pair[0].0), frame.y_px(pair[0].1)),
                (x_px(pair[1].0), frame.y_px(pair[1].1)),
                s.color,
                2,
                0,
            );
        }
        for &(x, y, e) in &s.points {
            let px = x_px(x);
            if e > 0.0 {
                c.line(
                    (px, frame.y_px(y - e)),
                    (px, frame.y_px(y + e)),
                    s.color,
                    1,
                    0,
                );
                for v in [y - e, y + e] {
                    c.line(
                        (px - 4.0, frame.y_px(v)),
                        (px + 4.0, frame.y_px(v)),
                        s.color,
                        1,
                        0,
                    );
                }
            }
            let py = frame.y_px(y) as i64;
            c.fill(px as i64 - 3, py - 3, px as i64 + 4, py + 4, s.color);
        }
        c.fill(
            frame.right + 12,
            legend_y + 3,
            frame.right + 32,
            legend_y + 7,
            s.color,
        );
        c.text(frame.right + 38, legend_y, &s.label, 1, BLACK);
        legend_y += 16;
    }
    c
}

/// One colour of a bar chart: a value (± error) per group.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub label: String,
    pub color: Rgb,
    pub values: Vec<(f64, f64)>,
}

/// Grouped bars from zero, error bars, a legend below.
pub fn bar_chart(title: &str, y_label: &str, groups: &[String], bars: &[Bars]) -> Canvas {
    let legend_rows = bars.len().div_ceil(3);
    let (w, h) = (760, 420 + 16 * legend_rows);
    let mut c = Canvas::new(w, h, WHITE);
    let vals = bars
        .iter()
        .flat_map(|b| b.values.iter().flat_map(|&(v, e)| [v - e, v + e]));
    let (lo, hi) = vals.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let frame = Frame {
        left: 70,
        top: 50,
        right: w as i64 - 20,
        bottom: 370,
        y: (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad),
    };
    frame.draw_axes(&mut c, title, y_label);
    let group_w = (frame.right - frame.left) as f64 / groups.len().max(1) as f64;
    let bar_w = group_w * 0.8 / bars.len().max(1) as f64;
    let zero = frame.y_px(0.0);
    for (g, name) in groups.iter().enumerate() {
        let gx = frame.left as f64 + g as f64 * group_w + group_w * 0.1;
        for (k, b) in bars.iter().enumerate() {
            let Some(&(v, e)) = b.values.get(g) else {
                continue;
            };
            if !v.is_finite() {
                continue;
            }
            let x0 = gx + k as f64 * bar_w;
            let y = frame.y_px(v);
            c.fill(
                x0 as i64 + 1,
                y.min(zero) as i64,
                (x0 + bar_w) as i64 - 1,
                y.max(zero) as i64 + 1,
                b.color,
            );
            if e > 0.0 {
                let xm = x0 + bar_w / 2.0;
                c.line(
                    (xm, frame.y_px(v - e)),
                    (xm, frame.y_px(v + e)),
                    BLACK,
                    1,
                    0,
                );
            }
        }
        let label_x = (gx + group_w * 0.4) as i64 - Canvas::text_width(name, 1) / 2;
        c.text(label_x, frame.bottom + 8, name, 1, BLACK);
    }
    c.line(
        (frame.left as f64, zero),
        (frame.right as f64, zero),
        BLACK,
        1,
        0,
    );
    for (k, b) in bars.iter().enumerate() {
        let (col, row) = (k % 3, k / 3);
        let x = frame.left + col as i64 * 230;
        let y = frame.bottom + 30 + row as i64 * 16;
        c.fill(x, y + 2, x + 14, y + 10, b.color);
        c.text(x + 20, y, &b.label, 1, BLACK);
    }
    c
}

/// Rows of images with a caption on the left: `rows` of (caption, images), each image
/// N×C×H×W-style planes (C = 1 or 3, values in 0..=1) shrunk by `shrink` (box filter).
pub fn image_rows(
    title: &str,
    rows: &[(String, Vec<ndarray::Array3<f32>>)],
    shrink: usize,
) -> Canvas {
    let shrink = shrink.max(1);
    let tile = |a: &ndarray::Array3<f32>| (a.shape()[2] / shrink, a.shape()[1] / shrink);
    let (tw, th) = rows
        .iter()
        .flat_map(|(_, imgs)| imgs.iter().map(tile))
        .fold((0, 0), |(a, b), (w, h)| (a.max(w), b.max(h)));
    let cols = rows.iter().map(|(_, i)| i.len()).max().unwrap_or(0);
    let caption_w = 200;
    let gap = 6;
    let (w, h) = (
        caption_w + cols * (tw + gap) + gap,
        44 + rows.len() * (th + gap) + gap,
    );
    let mut c = Canvas::new(w, h, WHITE);
    c.text(gap as i64, 10, title, 2, BLACK);
    for (r, (caption, images)) in rows.iter().enumerate() {
        let y = 44 + r * (th + gap);
        for (line, part) in caption.split('\n').enumerate() {
            c.text(
                gap as i64,
                (y + th / 2) as i64 - 10 + line as i64 * 14,
                part,
                1,
                BLACK,
            );
        }
        for (k, img) in images.iter().enumerate() {
            let (channels, ih, iw) = img.dim();
            let (ow, oh) = (iw / shrink, ih / shrink);
            let mut rgb = vec![0u8; ow * oh * 3];
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..3 {
                        let src = ch.min(channels - 1);
                        let mut sum = 0.0;
                        for dy in 0..shrink {
                            for dx in 0..shrink {
                                sum += img[[src, oy * shrink + dy, ox * shrink + dx]];
                            }
                        }
                        let v = sum / (shrink * shrink) as f32;
                        rgb[(oy * ow + ox) * 3 + ch] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    }
                }
            }
            c.blit((caption_w + k * (tw + gap)) as i64, y as i64, ow, oh, &rgb);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = ticks(0.4612, 0.4811, 6);
        assert!(t.len() >= 3 && t.len() <= 8, "{t:?}");
        assert!(t.iter().all(|v| (0.4612..=0.4811).contains(v)));
        assert_eq!(decimals(&t), 3);
        assert_eq!(ticks(1.0, 1.0, 5), [1.0], "a flat range gives one tick");
    }

    #[test]
    fn charts_draw_their_series() {
        let s = Series {
            label: "zero-shot".into(),
            color: PALETTE[0],
            points: vec![(0.0, 0.40, 0.01), (10.0, 0.45, 0.0), (60.0, 0.47, 0.005)],
        };
        let r = Reference {
            label: "fp32".into(),
            color: PALETTE[1],
            y: 0.48,
        };
        let c = line_chart("mAP vs steps", "steps", "mAP50-95", &[s], &[r]);
        assert_eq!((c.width, c.height), (760, 460));
        let count = |c: &Canvas, colour: Rgb| {
            (0..c.height)
                .flat_map(|y| (0..c.width).map(move |x| (x, y)))
                .filter(|&(x, y)| c.pixel(x, y) == colour)
                .count()
        };
        assert!(count(&c, PALETTE[0]) > 200, "the line is drawn");
        assert!(count(&c, PALETTE[1]) > 100, "the reference is drawn");

        let b = bar_chart(
            "points lost",
            "points",
            &["a".into(), "b".into()],
            &[Bars {
                label: "x".into(),
                color: PALETTE[2],
                values: vec![(1.0, 0.1), (-0.5, 0.0)],
            }],
        );
        assert!(count(&b, PALETTE[2]) > 1000, "bars are drawn");

        let img = ndarray::Array3::from_elem((1, 8, 8), 1.0f32);
        let g = image_rows("t", &[("row".into(), vec![img.clone(), img])], 2);
        assert_eq!(g.pixel(200, 44), WHITE, "tiles are white images");
        assert_eq!(g.width, 200 + 2 * (4 + 6) + 6);

        let dir = std::env::temp_dir().join(format!("tzsq-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.png");
        c.save_png(&path).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        assert_eq!(decoder.read_info().unwrap().info().width, 760);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
