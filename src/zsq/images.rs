//! Real calibration images (`--calib-images DIR`): PNG files turned into the detector's
//! input exactly as the detector does it at run time (`imaging::preprocess::Preprocess`:
//! 16-bit radiometric frames through the percentile AGC, grey replicated, letterboxed),
//! so that post-training quantization on real data and zero-shot quantization are
//! compared on equal terms.
//!
//! Accepted (`imaging::image::read_png`): 8-bit grey, grey+alpha, RGB, RGBA and palette
//! PNGs, and 16-bit grey PNGs (radiometric counts, e.g. centikelvin as `zsq synth`
//! writes them). Files are taken
//! sorted by name. A data set root written by `zsq synth` (with `thermal16/`,
//! `thermal8/`, `rgb/`) is accepted too: thermal models read `thermal16/` (the raw
//! counts, through the same AGC as a live camera), colour models `rgb/`.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use sha2::{Digest, Sha256};

use super::cache::hex;

use super::ZsqError;
use crate::imaging::image::read_png;
use crate::imaging::preprocess::Preprocess;

/// What the model's input wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInput {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// The model was trained on colour images (metadata `modality=rgb`).
    pub colour: bool,
}

/// Calibration images ready for the model.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// N × C × H × W, pre-processed.
    pub images: Array4<f32>,
    /// The directory the files came from (a `zsq synth` subdirectory if chosen).
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// sha256 over the files' names and contents (part of the cache key).
    pub sha256: String,
}

fn is_png(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// The PNG files of `dir`, sorted by name; for a `zsq synth` data set root, those of the
/// subdirectory matching the model (`thermal16/` then `thermal8/` for thermal models,
/// `rgb/` for colour ones). Returns the directory used and its files.
pub fn list_images(dir: &Path, colour: bool) -> Result<(PathBuf, Vec<PathBuf>), ZsqError> {
    let list = |d: &Path| -> Result<Vec<PathBuf>, ZsqError> {
        let entries = std::fs::read_dir(d).map_err(|e| {
            ZsqError::Images(format!("calibration image directory {}: {e}", d.display()))
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_png(p))
            .collect();
        files.sort();
        Ok(files)
    };
    let files = list(dir)?;
    if !files.is_empty() {
        return Ok((dir.to_path_buf(), files));
    }
    let subdirs: &[&str] = if colour {
        &["rgb"]
    } else {
        &["thermal16", "thermal8"]
    };
    for sub in subdirs {
        let d = dir.join(sub);
        if d.is_dir() {
            let files = list(&d)?;
            if !files.is_empty() {
                return Ok((d, files));
            }
        }
    }
    Err(ZsqError::Images(format!(
        "no PNG images in {} (nor in its {} subdirectories)",
        dir.display(),
        subdirs.join("/")
    )))
}

/// Loads the first `count` images (sorted by name; fewer if the directory has fewer)
/// of `dir` and pre-processes them for `input` with the detector's default AGC
/// (1–99 % percentile stretch for 16-bit frames) and letterbox.
pub fn load_calibration_images(
    dir: &Path,
    count: usize,
    input: ImageInput,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImageSet, ZsqError> {
    if count == 0 {
        return Err(ZsqError::Options(
            "the number of calibration images must be at least 1".into(),
        ));
    }
    let (dir, mut files) = list_images(dir, input.colour)?;
    files.truncate(count);
    let mut pre = Preprocess::new(input.width, input.height, input.channels, input.colour);
    let len = pre.tensor_len();
    let mut data = vec![0.0f32; files.len() * len];
    let mut digest = FilesDigest::default();
    for (i, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path)
            .map_err(|e| ZsqError::Images(format!("{}: cannot read: {e}", path.display())))?;
        digest.add(path, &bytes);
        let image = read_png(path).map_err(|e| ZsqError::Images(e.to_string()))?;
        let frame = image.as_frame();
        pre.run(&frame, &mut data[i * len..(i + 1) * len]);
        progress(i + 1, files.len());
    }
    let images = Array4::from_shape_vec(
        (files.len(), input.channels, input.height, input.width),
        data,
    )
    .expect("one tensor per file");
    Ok(ImageSet {
        images,
        dir,
        files,
        sha256: digest.finish(),
    })
}

/// sha256 over the names and contents of the first `count` images `dir` would give,
/// without decoding them (the cache key of a `--calib-images` run).
pub fn images_digest(dir: &Path, count: usize, colour: bool) -> Result<String, ZsqError> {
    let (_, mut files) = list_images(dir, colour)?;
    files.truncate(count);
    let mut digest = FilesDigest::default();
    for path in &files {
        let bytes = std::fs::read(path)
            .map_err(|e| ZsqError::Images(format!("{}: cannot read: {e}", path.display())))?;
        digest.add(path, &bytes);
    }
    Ok(digest.finish())
}

/// sha256 over (file name, NUL, sha256 of the contents) of each file in order.
#[derive(Default)]
struct FilesDigest(Sha256);

impl FilesDigest {
    fn add(&mut self, path: &Path, bytes: &[u8]) {
        self.0.update(
            path.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        self.0.update([0]);
        self.0.update(Sha256::digest(bytes));
    }

    fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

/// Deterministic structured images for tests and benchmarks: a grey background with a
/// gradient, smooth warm and cold blobs and a little noise, the same value in every
/// channel (what a thermal detector sees), in 0..=1. Not a calibration source for real
/// use: it stands in for images where none are at hand.
pub fn test_pattern(
    n: usize,
    channels: usize,
    height: usize,
    width: usize,
    seed: u64,
) -> Array4<f32> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (w, h) = (width as f64, height as f64);
    let mut out = Array4::zeros((n, channels, height, width));
    for mut image in out.outer_iter_mut() {
        let background = 0.2 + 0.4 * rnd();
        let gradient = 0.3 * rnd();
        let blobs: Vec<[f64; 4]> = (0..4)
            .map(|_| [rnd() * w, rnd() * h, 2.0 + rnd() * w / 6.0, rnd() - 0.3])
            .collect();
        for y in 0..height {
            for x in 0..width {
                let mut v = background + gradient * x as f64 / w;
                for [bx, by, r, a] in &blobs {
                    let d2 = ((x as f64 - bx).powi(2) + (y as f64 - by).powi(2)) / (r * r);
                    v += a * (-d2).exp();
                }
                v += 0.02 * (rnd() - 0.5);
                let v = v.clamp(0.0, 1.0) as f32;
                for c in 0..channels {
                    image[[c, y, x]] = v;
                }
            }
        }
    }
    out
}
