//! Drawing boxes and labels into frames in place, in every supported pixel format.
//!
//! Colour frames get a colour per class; grey frames (thermal) get white boxes with
//! black text, the only ink that stays visible on both hot and cold backgrounds.
//! 16-bit frames are drawn at full scale (65535 / 0).

use super::Detection;
use super::font;
use super::frame::{FrameMut, PixelFormat};

/// How detections are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Line width of boxes in pixels (0: no boxes).
    pub thickness: usize,
    /// Whether to write "label confidence" above each box.
    pub labels: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            thickness: 2,
            labels: true,
        }
    }
}

/// Distinct colours for classes (cycled).
const PALETTE: [[u8; 3]; 10] = [
    [255, 56, 56],
    [50, 205, 50],
    [44, 153, 255],
    [255, 178, 29],
    [207, 210, 49],
    [146, 204, 23],
    [255, 55, 199],
    [0, 194, 255],
    [132, 56, 255],
    [255, 149, 200],
];

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

/// Draws every detection (box in frame pixels) into `frame`.
pub fn draw_detections(frame: &mut FrameMut, detections: &[Detection], style: &Style) {
    let grey = matches!(
        frame.format,
        PixelFormat::Gray8 | PixelFormat::Gray16Le | PixelFormat::Gray16Be
    );
    // Text stays legible: one font pixel per screen pixel up to 480 lines, then 2.
    let scale = if frame.height >= 480 { 2 } else { 1 };
    for d in detections {
        let (ink, text_ink) = if grey {
            (WHITE, BLACK)
        } else {
            let c = PALETTE[d.class_id % PALETTE.len()];
            (c, if luma(c) > 150 { BLACK } else { WHITE })
        };
        let [x0, y0, x1, y1] = d.bbox.map(|v| v.round() as i64);
        let t = style.thickness as i64;
        if t > 0 {
            if grey {
                // A black rim keeps white boxes visible on hot (white) backgrounds.
                outline(frame, [x0 - 1, y0 - 1, x1 + 1, y1 + 1], t + 2, BLACK);
            }
            outline(frame, [x0, y0, x1, y1], t, ink);
        }
        if style.labels {
            let text = format!("{} {:.2}", d.label, d.confidence);
            let (tw, th) = (
                (text.len() * font::WIDTH * scale + 2) as i64,
                (font::HEIGHT * scale) as i64,
            );
            // Above the box when there is room, else inside its top edge.
            let top = if y0 - t - th >= 0 { y0 - t - th } else { y0 };
            let left = x0 - t;
            fill(frame, left, top, left + tw, top + th, ink);
            write_text(frame, left + 1, top, &text, scale as i64, text_ink);
        }
    }
}

/// Draws plain boxes (`[x0, y0, x1, y1]`, frame pixels) in one colour: ground truth
/// beside detections in figures.
pub fn draw_boxes(frame: &mut FrameMut, boxes: &[[f32; 4]], rgb: [u8; 3], thickness: usize) {
    for b in boxes {
        outline(frame, b.map(|v| v.round() as i64), thickness as i64, rgb);
    }
}

/// A `t`-pixel frame drawn just outside the box `[x0, y0, x1, y1]`.
fn outline(frame: &mut FrameMut, [x0, y0, x1, y1]: [i64; 4], t: i64, ink: [u8; 3]) {
    fill(frame, x0 - t, y0 - t, x1 + t, y0, ink);
    fill(frame, x0 - t, y1, x1 + t, y1 + t, ink);
    fill(frame, x0 - t, y0, x0, y1, ink);
    fill(frame, x1, y0, x1 + t, y1, ink);
}

fn luma([r, g, b]: [u8; 3]) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32) / 1000) as u8
}

fn write_text(frame: &mut FrameMut, x: i64, y: i64, text: &str, scale: i64, ink: [u8; 3]) {
    for (i, c) in text.chars().enumerate() {
        let gx = x + (i * font::WIDTH) as i64 * scale;
        for (row, bits) in font::glyph(c).iter().enumerate() {
            for col in 0..font::WIDTH {
                if bits & (1 << (font::WIDTH - 1 - col)) != 0 {
                    let px = gx + col as i64 * scale;
                    let py = y + row as i64 * scale;
                    fill(frame, px, py, px + scale, py + scale, ink);
                }
            }
        }
    }
}

/// BT.601 limited-range Y, U, V of an RGB colour.
fn rgb_to_yuv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (r as f32, g as f32, b as f32);
    let y = 16.0 + 0.256_788 * r + 0.504_129 * g + 0.097_906 * b;
    let u = 128.0 - 0.148_223 * r - 0.290_993 * g + 0.439_216 * b;
    let v = 128.0 + 0.439_216 * r - 0.367_788 * g - 0.071_427 * b;
    [y, u, v].map(|c| c.round().clamp(0.0, 255.0) as u8)
}

/// Paints the rectangle `[x0, x1) × [y0, y1)`, clipped to the frame.
fn fill(frame: &mut FrameMut, x0: i64, y0: i64, x1: i64, y1: i64, rgb: [u8; 3]) {
    let clip = |v: i64, max: usize| v.clamp(0, max as i64) as usize;
    let (x0, x1) = (clip(x0, frame.width), clip(x1, frame.width));
    let (y0, y1) = (clip(y0, frame.height), clip(y1, frame.height));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let format = frame.format;
    let [yy, u, v] = rgb_to_yuv(rgb);
    let grey = luma(rgb);
    // Chroma rows/columns that cover any painted pixel of a 2x-subsampled plane.
    let (cx0, cx1, cy0, cy1) = (x0 / 2, x1.div_ceil(2), y0 / 2, y1.div_ceil(2));
    match format {
        PixelFormat::Gray8 => rows(frame, 0, y0..y1, |r| r[x0..x1].fill(grey)),
        PixelFormat::Gray16Le | PixelFormat::Gray16Be => {
            let v16 = grey as u16 * 257;
            let bytes = if format == PixelFormat::Gray16Le {
                v16.to_le_bytes()
            } else {
                v16.to_be_bytes()
            };
            rows(frame, 0, y0..y1, |r| {
                r[2 * x0..2 * x1]
                    .chunks_exact_mut(2)
                    .for_each(|p| p.copy_from_slice(&bytes))
            })
        }
        PixelFormat::I420 => {
            rows(frame, 0, y0..y1, |r| r[x0..x1].fill(yy));
            rows(frame, 1, cy0..cy1, |r| r[cx0..cx1].fill(u));
            rows(frame, 2, cy0..cy1, |r| r[cx0..cx1].fill(v));
        }
        PixelFormat::Nv12 => {
            rows(frame, 0, y0..y1, |r| r[x0..x1].fill(yy));
            rows(frame, 1, cy0..cy1, |r| {
                r[2 * cx0..2 * cx1]
                    .chunks_exact_mut(2)
                    .for_each(|p| p.copy_from_slice(&[u, v]))
            });
        }
        PixelFormat::Yuy2 => rows(frame, 0, y0..y1, |r| {
            for x in x0..x1 {
                r[2 * x] = yy;
            }
            for pair in cx0..cx1 {
                r[4 * pair + 1] = u;
                r[4 * pair + 3] = v;
            }
        }),
        packed => {
            let (bpp, [ri, gi, bi]) = packed.rgb_layout().expect("packed RGB");
            rows(frame, 0, y0..y1, |r| {
                for px in r[bpp * x0..bpp * x1].chunks_exact_mut(bpp) {
                    px[ri] = rgb[0];
                    px[gi] = rgb[1];
                    px[bi] = rgb[2];
                }
            })
        }
    }
}

fn rows(
    frame: &mut FrameMut,
    plane: usize,
    ys: std::ops::Range<usize>,
    mut f: impl FnMut(&mut [u8]),
) {
    for y in ys {
        f(frame.row_mut(plane, y));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::frame::{Frame, packed_planes};

    fn det(bbox: [f32; 4]) -> Detection {
        Detection {
            class_id: 0,
            label: "person".into(),
            confidence: 0.9,
            bbox,
        }
    }

    /// Draws one box into a zeroed frame of every format; the box edge changes pixels,
    /// the box interior and far corners stay untouched.
    #[test]
    fn boxes_are_drawn_in_every_format() {
        let (w, h) = (64, 48);
        for format in PixelFormat::ALL {
            let mut planes = packed_planes(format, w, h);
            let before = planes.clone();
            let mut frame = Frame::new(
                format,
                w,
                h,
                planes
                    .iter_mut()
                    .map(|(d, s)| (d.as_mut_slice(), *s))
                    .collect(),
            )
            .unwrap();
            draw_detections(
                &mut frame,
                &[det([20.0, 20.0, 40.0, 40.0])],
                &Style {
                    thickness: 2,
                    labels: false,
                },
            );
            let (data, stride) = (&planes[0].0, planes[0].1);
            let bpp = stride / w;
            let luma_at = |x: usize, y: usize| data[y * stride + x * bpp];
            assert_ne!(luma_at(20, 19), 0, "{format}: top edge");
            assert_ne!(luma_at(40, 30), 0, "{format}: right edge");
            assert_eq!(luma_at(30, 30), 0, "{format}: interior");
            assert_eq!(luma_at(2, 2), 0, "{format}: corner");
            assert_ne!(planes, before);
        }
    }

    #[test]
    fn labels_are_drawn_and_clipped_at_the_border() {
        let (w, h) = (32, 24);
        let mut planes = packed_planes(PixelFormat::Gray8, w, h);
        let mut frame = Frame::new(
            PixelFormat::Gray8,
            w,
            h,
            planes
                .iter_mut()
                .map(|(d, s)| (d.as_mut_slice(), *s))
                .collect(),
        )
        .unwrap();
        // box at the top-left corner and beyond the frame: no panic, label inside the box
        draw_detections(
            &mut frame,
            &[det([-5.0, 0.0, 50.0, 30.0])],
            &Style::default(),
        );
        let data = &planes[0].0;
        let painted = data.iter().filter(|&&v| v == 255).count();
        let text = data[..font::HEIGHT * w].iter().filter(|&&v| v == 0).count();
        assert!(
            painted > 50 && text > 10,
            "label background and text: {painted} {text}"
        );
    }

    #[test]
    fn yuv_colours_round_trip_through_the_preprocessor_matrix() {
        assert_eq!(rgb_to_yuv([0, 0, 0]), [16, 128, 128]);
        assert_eq!(rgb_to_yuv([255, 255, 255]), [235, 128, 128]);
    }
}
