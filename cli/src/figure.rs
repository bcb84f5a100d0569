//! Pictures of an evaluation: an image with its ground truth (magenta) and the detector's
//! boxes (a colour per class, labelled) — to see what a score means (`zsq eval --draw`).

use thermalzsq::detect::draw::{Style, draw_detections};
use thermalzsq::eval::{CocoGt, Detection};
use thermalzsq::imaging::agc::percentile_stretch;
use thermalzsq::imaging::draw::draw_boxes;
use thermalzsq::imaging::frame::{Frame, PixelFormat};
use thermalzsq::imaging::image::OwnedFrame;

/// Ground-truth colour (no class colour of `detect::draw` is near it).
const GT: [u8; 3] = [255, 0, 255];

/// The image as 8-bit RGB (16-bit counts through the 1–99 % percentile AGC, grey
/// replicated) with `gt`'s boxes for it and the detections at or above `conf`.
/// Returns width, height and the RGB bytes.
pub fn render(
    image: &OwnedFrame,
    image_id: i64,
    gt: &CocoGt,
    detections: &[Detection],
    conf: f64,
) -> (usize, usize, Vec<u8>) {
    let (w, h) = (image.width, image.height);
    let grey: Option<Vec<u8>> = match image.format {
        PixelFormat::Gray16Be | PixelFormat::Gray16Le => {
            let big = image.format == PixelFormat::Gray16Be;
            let counts: Vec<u16> = image
                .data
                .chunks_exact(2)
                .map(|b| {
                    if big {
                        u16::from_be_bytes([b[0], b[1]])
                    } else {
                        u16::from_le_bytes([b[0], b[1]])
                    }
                })
                .collect();
            Some(percentile_stretch(&counts, 1.0, 99.0))
        }
        PixelFormat::Gray8 => Some(image.data.clone()),
        _ => None,
    };
    let mut rgb: Vec<u8> = match grey {
        Some(g) => g.iter().flat_map(|&v| [v, v, v]).collect(),
        None => {
            let bpp = image.data.len() / (w * h);
            image
                .data
                .chunks_exact(bpp)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect()
        }
    };
    let mut frame = Frame::new(PixelFormat::Rgb, w, h, vec![(rgb.as_mut_slice(), 3 * w)])
        .expect("a whole RGB frame");
    let boxes: Vec<[f32; 4]> = gt
        .annotations
        .iter()
        .filter(|a| a.image_id == image_id)
        .map(|a| {
            let [x, y, bw, bh] = a.bbox.map(|v| v as f32);
            [x, y, x + bw, y + bh]
        })
        .collect();
    let names = gt.sorted_categories();
    let dets: Vec<thermalzsq::detect::Detection> = detections
        .iter()
        .filter(|d| d.image_id == image_id && d.score >= conf)
        .map(|d| {
            let class_id = names
                .iter()
                .position(|c| c.id == d.category_id)
                .unwrap_or(0);
            let [x, y, bw, bh] = d.bbox.map(|v| v as f32);
            thermalzsq::detect::Detection {
                class_id,
                label: names
                    .get(class_id)
                    .map_or_else(|| format!("class {}", d.category_id), |c| c.name.clone()),
                confidence: d.score as f32,
                bbox: [x, y, x + bw, y + bh],
                temperature: None,
            }
        })
        .collect();
    draw_detections(
        &mut frame,
        &dets,
        &Style {
            thickness: 2,
            labels: true,
            confidence: true,
            temperature: false,
        },
    );
    // Last, so a detection on the spot does not hide it.
    draw_boxes(&mut frame, &boxes, GT, 1);
    (w, h, rgb)
}
