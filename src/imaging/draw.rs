//! Drawing into frames in place, in every supported pixel format: filled rectangles,
//! box outlines, crosshairs and bitmap text. Colours are given as RGB and converted to the frame's
//! format (BT.601 limited range for YUV, luma for grey, full scale for 16-bit grey), so
//! an overlay looks the same whatever the camera delivers.

use super::font;
use super::frame::{FrameMut, PixelFormat};

/// Draws plain boxes (`[x0, y0, x1, y1]`, frame pixels) in one colour: ground truth
/// beside detections in figures.
pub fn draw_boxes(frame: &mut FrameMut, boxes: &[[f32; 4]], rgb: [u8; 3], thickness: usize) {
    for b in boxes {
        outline(frame, b.map(|v| v.round() as i64), thickness as i64, rgb);
    }
}

/// A `t`-pixel frame drawn just outside the box `[x0, y0, x1, y1]`.
pub fn outline(frame: &mut FrameMut, [x0, y0, x1, y1]: [i64; 4], t: i64, ink: [u8; 3]) {
    fill(frame, x0 - t, y0 - t, x1 + t, y0, ink);
    fill(frame, x0 - t, y1, x1 + t, y1 + t, ink);
    fill(frame, x0 - t, y0, x0, y1, ink);
    fill(frame, x1, y0, x1 + t, y1, ink);
}

/// A spot meter's crosshair on pixel `(x, y)`: four `t`-pixel bars reaching `arm`
/// pixels from it, leaving `gap` pixels around it free, so the marked pixel itself
/// stays visible.
pub fn crosshair(frame: &mut FrameMut, [x, y]: [i64; 2], arm: i64, gap: i64, t: i64, ink: [u8; 3]) {
    let (a0, a1) = (x - t / 2, x - t / 2 + t);
    let (b0, b1) = (y - t / 2, y - t / 2 + t);
    fill(frame, x - arm, b0, x - gap, b1, ink);
    fill(frame, x + gap + 1, b0, x + arm + 1, b1, ink);
    fill(frame, a0, y - arm, a1, y - gap, ink);
    fill(frame, a0, y + gap + 1, a1, y + arm + 1, ink);
}

/// BT.601 luma of an RGB colour: the grey that stands for it in grey frames.
pub fn luma([r, g, b]: [u8; 3]) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32) / 1000) as u8
}

/// Writes `text` in the bitmap font with its top-left corner at `(x, y)`, each font
/// pixel a `scale`×`scale` square, clipped to the frame.
pub fn write_text(frame: &mut FrameMut, x: i64, y: i64, text: &str, scale: i64, ink: [u8; 3]) {
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
pub fn fill(frame: &mut FrameMut, x0: i64, y0: i64, x1: i64, y1: i64, rgb: [u8; 3]) {
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
    use crate::imaging::frame::{Frame, packed_planes};

    #[test]
    fn plain_boxes_are_outlined_in_every_format() {
        let (w, h) = (64, 48);
        for format in PixelFormat::ALL {
            let mut planes = packed_planes(format, w, h);
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
            draw_boxes(&mut frame, &[[20.0, 20.0, 40.0, 40.0]], [255, 255, 255], 2);
            let (data, stride) = (&planes[0].0, planes[0].1);
            // Bytes per pixel of plane 0 from the format (not stride / width, which
            // padding would break).
            let bpp = match format {
                PixelFormat::Gray16Le | PixelFormat::Gray16Be | PixelFormat::Yuy2 => 2,
                f => f.rgb_layout().map_or(1, |(bpp, _)| bpp),
            };
            let luma_at = |x: usize, y: usize| data[y * stride + x * bpp];
            assert_ne!(luma_at(20, 19), 0, "{format}: top edge");
            assert_ne!(luma_at(40, 30), 0, "{format}: right edge");
            assert_eq!(luma_at(30, 30), 0, "{format}: interior");
            assert_eq!(luma_at(2, 2), 0, "{format}: corner");
        }
    }

    fn gray8(w: usize, h: usize) -> Vec<(Vec<u8>, usize)> {
        packed_planes(PixelFormat::Gray8, w, h)
    }

    fn frame_of(planes: &mut [(Vec<u8>, usize)], w: usize, h: usize) -> FrameMut<'_> {
        Frame::new(
            PixelFormat::Gray8,
            w,
            h,
            planes
                .iter_mut()
                .map(|(d, s)| (d.as_mut_slice(), *s))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_crosshair_marks_around_its_pixel_and_leaves_the_pixel_visible() {
        let (w, h) = (21, 21);
        let mut planes = gray8(w, h);
        crosshair(
            &mut frame_of(&mut planes, w, h),
            [10, 10],
            5,
            1,
            1,
            [255; 3],
        );
        let data = &planes[0].0;
        let at = |x: usize, y: usize| data[y * w + x];
        assert_eq!(at(10, 10), 0, "the marked pixel");
        assert_eq!(
            (at(9, 10), at(11, 10), at(10, 9), at(10, 11)),
            (0, 0, 0, 0),
            "the gap"
        );
        for (x, y) in [(5, 10), (8, 10), (12, 10), (15, 10), (10, 5), (10, 15)] {
            assert_eq!(at(x, y), 255, "arm at ({x}, {y})");
        }
        assert_eq!(
            (at(4, 10), at(16, 10), at(9, 9)),
            (0, 0, 0),
            "outside the arms"
        );
        assert_eq!(data.iter().filter(|&&v| v == 255).count(), 16);

        // At a corner it is clipped, not a panic.
        crosshair(&mut frame_of(&mut planes, w, h), [0, 20], 5, 1, 3, [255; 3]);
    }

    #[test]
    fn the_degree_sign_is_drawn_with_its_own_glyph() {
        let (w, h) = (font::WIDTH, font::HEIGHT);
        let drawn = |text: &str| {
            let mut planes = gray8(w, h);
            write_text(&mut frame_of(&mut planes, w, h), 0, 0, text, 1, [255; 3]);
            planes.remove(0).0
        };
        let degree = drawn("°");
        assert!(degree.contains(&255));
        assert_ne!(degree, drawn("?"), "not the fallback glyph");
        assert_ne!(degree, drawn("o"));
    }

    #[test]
    fn yuv_colours_round_trip_through_the_preprocessor_matrix() {
        assert_eq!(rgb_to_yuv([0, 0, 0]), [16, 128, 128]);
        assert_eq!(rgb_to_yuv([255, 255, 255]), [235, 128, 128]);
    }
}
