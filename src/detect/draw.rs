//! Detections drawn into frames in place: a box and a "label confidence" tag each, with
//! the pixel primitives of [`crate::imaging::draw`].
//!
//! Colour frames get a colour per class; grey frames (thermal) get white boxes with
//! black text, the only ink that stays visible on both hot and cold backgrounds.
//! 16-bit frames are drawn at full scale (65535 / 0).

use super::Detection;
use crate::imaging::draw::{fill, luma, outline, write_text};
use crate::imaging::font;
use crate::imaging::frame::{FrameMut, PixelFormat};

/// How detections are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Line width of boxes in pixels (0: no boxes).
    pub thickness: usize,
    /// Whether to write the label above each box.
    pub labels: bool,
    /// Whether the label ends with the confidence ("person 0.91"); trackers label
    /// identities ("person #12") and leave it out.
    pub confidence: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            thickness: 2,
            labels: true,
            confidence: true,
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
            let text = if style.confidence {
                format!("{} {:.2}", d.label, d.confidence)
            } else {
                d.label.clone()
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::frame::{Frame, packed_planes};

    fn det(bbox: [f32; 4]) -> Detection {
        Detection {
            class_id: 0,
            label: "person".into(),
            confidence: 0.9,
            bbox,
            temperature: None,
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
                    confidence: false,
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
}
