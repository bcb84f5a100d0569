//! A PNG contact sheet of calibration images: what the model "remembers" of its data,
//! for people to look at (`zsq quantize --preview`).

use std::path::Path;

use ndarray::ArrayView4;

use super::ZsqError;

/// Writes `images` (N, C, H, W with C = 1 or 3, values in 0..=1) as one RGB PNG, the
/// images in a near-square grid with 4-pixel gaps.
pub fn write_grid(images: ArrayView4<f32>, path: &Path) -> Result<(), ZsqError> {
    let (n, c, h, w) = images.dim();
    if n == 0 || !(c == 1 || c == 3) {
        return Err(ZsqError::Images(format!(
            "cannot preview {n} images of {c} channels"
        )));
    }
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    const GAP: usize = 4;
    let (gw, gh) = (cols * (w + GAP) - GAP, rows * (h + GAP) - GAP);
    let mut rgb = vec![0u8; gw * gh * 3];
    for i in 0..n {
        let (ox, oy) = ((i % cols) * (w + GAP), (i / cols) * (h + GAP));
        for y in 0..h {
            for x in 0..w {
                for k in 0..3 {
                    let v = images[[i, k.min(c - 1), y, x]];
                    rgb[((oy + y) * gw + ox + x) * 3 + k] =
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    crate::imaging::image::write_png(
        path,
        gw as u32,
        gh as u32,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &rgb,
    )
    .map_err(|e| ZsqError::Io {
        path: path.to_path_buf(),
        action: "write",
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_images_tile_into_an_rgb_grid() {
        let dir = std::env::temp_dir().join(format!("tzsq-preview-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grid.png");
        let images = ndarray::Array4::from_shape_fn((5, 1, 8, 10), |(i, _, _, _)| i as f32 / 4.0);
        write_grid(images.view(), &path).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let info = decoder.read_info().unwrap().info().clone();
        // 5 images: 3 columns, 2 rows
        assert_eq!((info.width, info.height), (3 * 14 - 4, 2 * 12 - 4));
        assert!(write_grid(ndarray::Array4::zeros((1, 2, 4, 4)).view(), &path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
