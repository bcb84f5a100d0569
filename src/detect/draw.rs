//! Detections drawn into frames in place: a box and a "label confidence temperature"
//! tag each, and a radiometric camera's spot meter (the frame's hottest pixel and its
//! temperature), with the pixel primitives of [`crate::imaging::draw`].
//!
//! Colour frames get a colour per class; grey frames (thermal) get white boxes with
//! black text, the only ink that stays visible on both hot and cold backgrounds.
//! 16-bit frames are drawn at full scale (65535 / 0).

use std::fmt::Write;

use super::Detection;
use crate::imaging::draw::{crosshair, fill, luma, outline, write_text};
use crate::imaging::font;
use crate::imaging::frame::{FrameMut, PixelFormat};
use crate::imaging::radiometry::SceneTemperature;

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
    /// Whether the label ends with the box's hottest temperature ("person 0.91
    /// 35.8°C") when the detection has one.
    pub temperature: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            thickness: 2,
            labels: true,
            confidence: true,
            temperature: true,
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

fn is_grey(frame: &FrameMut) -> bool {
    matches!(
        frame.format,
        PixelFormat::Gray8 | PixelFormat::Gray16Le | PixelFormat::Gray16Be
    )
}

/// Text stays legible: one font pixel per screen pixel up to 480 lines, then 2.
fn text_scale(frame: &FrameMut) -> usize {
    if frame.height >= 480 { 2 } else { 1 }
}

/// A temperature as drawn: "35.8°C".
fn celsius(t: f32) -> String {
    format!("{t:.1}°C")
}

/// The tag of a detection: "person", "person 0.91", "person 0.91 35.8°C".
fn label_text(d: &Detection, style: &Style) -> String {
    let mut text = d.label.clone();
    if style.confidence {
        let _ = write!(text, " {:.2}", d.confidence);
    }
    if style.temperature
        && let Some(t) = d.temperature
    {
        let _ = write!(text, " {}", celsius(t.max));
    }
    text
}

/// The size of `text` in frame pixels at `scale`, with a pixel of margin each side.
fn text_size(text: &str, scale: usize) -> (i64, i64) {
    (
        (text.chars().count() * font::WIDTH * scale + 2) as i64,
        (font::HEIGHT * scale) as i64,
    )
}

/// Draws every detection (box in frame pixels) into `frame`.
pub fn draw_detections(frame: &mut FrameMut, detections: &[Detection], style: &Style) {
    let grey = is_grey(frame);
    let scale = text_scale(frame);
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
            let text = label_text(d, style);
            let (tw, th) = text_size(&text, scale);
            // Above the box when there is room, else inside its top edge.
            let top = if y0 - t - th >= 0 { y0 - t - th } else { y0 };
            let left = x0 - t;
            fill(frame, left, top, left + tw, top + th, ink);
            write_text(frame, left + 1, top, &text, scale as i64, text_ink);
        }
    }
}

/// A spot meter, as thermal cameras show one: a crosshair on the frame's hottest pixel
/// (`scene.hottest`, frame pixels) and its temperature beside it, white with a black
/// rim in every format (it marks heat, not a class).
pub fn draw_hotspot(frame: &mut FrameMut, scene: &SceneTemperature) {
    let scale = text_scale(frame) as i64;
    let [x, y] = scene.hottest.map(|v| v as i64);
    let (arm, gap) = (6 * scale, scale);
    // The rim first: one pixel of black around each white bar.
    crosshair(frame, [x, y], arm + 1, gap - 1, scale + 2, BLACK);
    crosshair(frame, [x, y], arm, gap, scale, WHITE);
    let text = celsius(scene.max);
    let (tw, th) = text_size(&text, scale as usize);
    // Right of the crosshair when it fits, else left; vertically centred on the pixel,
    // inside the frame.
    let right = x + arm + 2 * scale;
    let left = if right + tw <= frame.width as i64 {
        right
    } else {
        x - arm - 2 * scale - tw
    };
    let top = (y - th / 2).clamp(0, (frame.height as i64 - th).max(0));
    fill(frame, left - 1, top - 1, left + tw + 1, top + th + 1, BLACK);
    fill(frame, left, top, left + tw, top + th, WHITE);
    write_text(frame, left + 1, top, &text, scale, BLACK);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::frame::{Frame, packed_planes};
    use crate::imaging::radiometry::BoxTemperature;

    fn grey_frame(planes: &mut [(Vec<u8>, usize)], w: usize, h: usize) -> FrameMut<'_> {
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

    fn warm(bbox: [f32; 4]) -> Detection {
        Detection {
            temperature: Some(BoxTemperature {
                max: 35.84,
                median: 30.0,
                p90: 34.0,
            }),
            ..det(bbox)
        }
    }

    #[test]
    fn labels_end_with_the_box_temperature_when_it_has_one_and_the_style_asks() {
        let style = Style::default();
        assert_eq!(label_text(&warm([0.0; 4]), &style), "person 0.90 35.8°C");
        assert_eq!(label_text(&det([0.0; 4]), &style), "person 0.90");
        let no_temperature = Style {
            temperature: false,
            ..style
        };
        assert_eq!(label_text(&warm([0.0; 4]), &no_temperature), "person 0.90");
        let track = Style {
            confidence: false,
            ..style
        };
        assert_eq!(label_text(&warm([0.0; 4]), &track), "person 35.8°C");
    }

    #[test]
    fn a_temperature_widens_the_drawn_label_by_its_characters() {
        let (w, h) = (160, 48);
        let drawn = |style: &Style| {
            let mut planes = packed_planes(PixelFormat::Gray8, w, h);
            draw_detections(
                &mut grey_frame(&mut planes, w, h),
                &[warm([10.0, 20.0, 40.0, 40.0])],
                style,
            );
            planes.remove(0).0
        };
        let (with, without) = (
            drawn(&Style::default()),
            drawn(&Style {
                temperature: false,
                ..Style::default()
            }),
        );
        // The tag's top row (above the glyphs' ink, 11 rows above the box's line) is
        // its white background: " 35.8°C" adds 7 glyphs, the two-byte `°` one.
        let tag_width = |data: &[u8]| data[7 * w..8 * w].iter().filter(|&&v| v == 255).count();
        assert_eq!(
            tag_width(&with) - tag_width(&without),
            7 * font::WIDTH,
            "the label row"
        );
    }

    #[test]
    fn the_hotspot_gets_a_crosshair_and_its_temperature_beside_it() {
        let (w, h) = (64, 48);
        let scene = |x, y| SceneTemperature {
            min: 10.0,
            max: 36.2,
            mean: 20.0,
            hottest: [x, y],
        };
        let mut planes = packed_planes(PixelFormat::Gray8, w, h);
        planes[0].0.fill(128);
        draw_hotspot(&mut grey_frame(&mut planes, w, h), &scene(10, 20));
        let data = &planes[0].0;
        let at = |x: usize, y: usize| data[y * w + x];
        assert_eq!(at(10, 20), 128, "the hottest pixel stays visible");
        assert_eq!((at(13, 20), at(10, 17), at(7, 20)), (255, 255, 255), "arms");
        assert_eq!(at(13, 21), 0, "the black rim");
        // "36.2°C" to the right: white background with black text, 6 glyphs wide.
        let label: Vec<u8> = (18..18 + 6 * font::WIDTH).map(|x| at(x, 20)).collect();
        assert!(label.contains(&255) && label.contains(&0), "{label:?}");
        assert_eq!(at(2, 2), 128, "far from it untouched");

        // At the right edge the reading goes to the left, inside the frame.
        let mut planes = packed_planes(PixelFormat::Gray8, w, h);
        planes[0].0.fill(128);
        draw_hotspot(&mut grey_frame(&mut planes, w, h), &scene(63, 47));
        let data = &planes[0].0;
        assert!(
            data[40 * w + 20..40 * w + 50].contains(&255),
            "reading left of the crosshair"
        );
    }

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
                    temperature: false,
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
