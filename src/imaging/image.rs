//! Still images as frames: PNG files (8-bit grey, 16-bit radiometric grey, RGB, RGBA)
//! decoded into an owned frame the detector takes like a camera frame. `zsq eval`,
//! real-image calibration and tests read datasets through this.

use std::path::Path;

use super::ImageError;
use super::frame::{FrameRef, PixelFormat};

/// A decoded image, one packed plane.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedFrame {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl OwnedFrame {
    /// The image as a frame to detect on.
    pub fn as_frame(&self) -> FrameRef<'_> {
        let bpp = self.data.len() / (self.width * self.height);
        FrameRef::new(
            self.format,
            self.width,
            self.height,
            vec![(self.data.as_slice(), bpp * self.width)],
        )
        .expect("decoded images are whole")
    }
}

/// Reads a PNG: 16-bit grey stays 16-bit (radiometric counts, big-endian as PNG stores
/// them), palettes and low bit depths expand to 8 bits, grey+alpha drops the alpha.
pub fn read_png(path: &Path) -> Result<OwnedFrame, ImageError> {
    let open = |source| ImageError::Open {
        path: path.to_path_buf(),
        source,
    };
    let decode = |source| ImageError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let layout = |why: String| ImageError::Layout {
        path: path.to_path_buf(),
        why,
    };
    let file = std::fs::File::open(path).map_err(open)?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(decode)?;
    let mut data = vec![
        0;
        reader
            .output_buffer_size()
            .ok_or_else(|| layout("image too large".into()))?
    ];
    let info = reader.next_frame(&mut data).map_err(decode)?;
    data.truncate(info.buffer_size());
    let (width, height) = (info.width as usize, info.height as usize);
    let format = match (info.color_type, info.bit_depth) {
        (png::ColorType::Grayscale, png::BitDepth::Sixteen) => PixelFormat::Gray16Be,
        (png::ColorType::Grayscale, _) => PixelFormat::Gray8,
        (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight) => {
            data = data.chunks_exact(2).map(|p| p[0]).collect();
            PixelFormat::Gray8
        }
        (png::ColorType::Rgb, png::BitDepth::Eight) => PixelFormat::Rgb,
        (png::ColorType::Rgba, png::BitDepth::Eight) => PixelFormat::Rgba,
        (color, depth) => {
            return Err(layout(format!(
                "unsupported PNG layout {color:?} {depth:?} (use 8-bit grey/RGB/RGBA or 16-bit grey)"
            )));
        }
    };
    Ok(OwnedFrame {
        format,
        width,
        height,
        data,
    })
}

/// Writes a PNG (samples as the PNG format stores them: 16-bit big-endian), compressed
/// for speed rather than size: datasets and figures are written by the thousand.
pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(data)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(
        path: &Path,
        color: png::ColorType,
        depth: png::BitDepth,
        w: u32,
        h: u32,
        data: &[u8],
    ) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(file, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        enc.write_header().unwrap().write_image_data(data).unwrap();
    }

    #[test]
    fn grey16_rgb_and_grey_alpha_pngs_become_frames() {
        let dir = std::env::temp_dir().join(format!("tzsq-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p16 = dir.join("t16.png");
        let counts: Vec<u8> = [29_315u16, 31_000, 28_000, 30_000]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        write(
            &p16,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            2,
            2,
            &counts,
        );
        let f = read_png(&p16).unwrap();
        assert_eq!((f.format, f.width, f.height), (PixelFormat::Gray16Be, 2, 2));
        assert_eq!(f.data, counts);
        assert_eq!(f.as_frame().planes[0].1, 4);

        let prgb = dir.join("rgb.png");
        write(
            &prgb,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            1,
            2,
            &[1, 2, 3, 4, 5, 6],
        );
        assert_eq!(read_png(&prgb).unwrap().format, PixelFormat::Rgb);

        let pga = dir.join("ga.png");
        write(
            &pga,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            2,
            1,
            &[10, 255, 20, 255],
        );
        let f = read_png(&pga).unwrap();
        assert_eq!(
            (f.format, f.data.clone()),
            (PixelFormat::Gray8, vec![10, 20])
        );

        std::fs::write(dir.join("bad.png"), b"\x89PNG garbage").unwrap();
        let e = read_png(&dir.join("bad.png")).unwrap_err().to_string();
        assert!(
            e.contains("cannot read image") && e.contains("bad.png"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
