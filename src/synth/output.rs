//! Writing a data set to disk: the PNG views, COCO annotations and the raw recording.
//!
//! Layout (an interface the training tools and pipelines rely on):
//! ```text
//! DIR/thermal16/000000.png  16-bit grey, centikelvin
//! DIR/thermal8/000000.png   8-bit grey, 1-99 % percentile AGC of the 16-bit frame
//! DIR/rgb/000000.png        8-bit RGB twin
//! DIR/annotations.json      COCO (image id = frame index, annotation ids from 1)
//! DIR/recording.gray16le    N raw little-endian 16-bit frames, centikelvin, no header
//!                           (or .gray8, .yuy2, recording/*.png: see RecordingFormat)
//! DIR/recording.json        COCO of the recording (file_name frame_000000, ...)
//! DIR/gt.txt                MOTChallenge ground truth of the recording (identities)
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::SynthError;
use super::labels::{Class, Label};
use super::radiometry::RadiometryModel;
use super::scene::{Recording, Scene, count_by_class};
use crate::eval::{Category, CocoGt, GtAnnotation, GtTemperature, ImageInfo};
use crate::imaging::agc::{Agc, agc_view};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub out: PathBuf,
    pub scenes: u64,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    /// Frames of the recording (0: none).
    pub recording: u32,
    /// How the recording's frames are stored.
    pub recording_format: RecordingFormat,
    /// The laws of the thermal frames (default: the legacy ones the bundled detectors
    /// were trained on).
    pub radiometry: RadiometryModel,
    /// The AGC of the 8-bit views (`thermal8/`, `recording.gray8`, the YUY2 luma); the
    /// default is the 1-99 % percentile stretch ([`super::AGC_LOW_PERCENTILE`]).
    pub agc: Agc,
}

/// The recording as different cameras deliver it, so every camera path of the pipelines
/// can be exercised without the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordingFormat {
    /// `recording.gray16le`: raw radiometric frames, centikelvin (FLIR Boson, Lepton Y16).
    #[default]
    Gray16Le,
    /// `recording.gray8`: the camera's 8-bit AGC view (1–99 % percentile stretch).
    Gray8,
    /// `recording.yuy2`: InfiRay P2 Pro / Topdon TC001 frames, twice the height: the AGC
    /// view as luma on top, the raw counts in 1/64 K (little-endian 16-bit) below.
    Yuy2P2Pro,
    /// `recording/frame_000000.png`…: 16-bit radiometric PNGs (centikelvin), named in
    /// `recording.json` with their extension.
    Png16,
}

impl std::str::FromStr for RecordingFormat {
    type Err = SynthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gray16le" => Ok(Self::Gray16Le),
            "gray8" => Ok(Self::Gray8),
            "yuy2-p2pro" => Ok(Self::Yuy2P2Pro),
            "png16" => Ok(Self::Png16),
            _ => Err(SynthError(format!(
                "unknown recording format `{s}` (expected gray16le, gray8, yuy2-p2pro or png16)"
            ))),
        }
    }
}

impl RecordingFormat {
    /// Where the frames go (a file, or a directory for PNGs).
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Gray16Le => "recording.gray16le",
            Self::Gray8 => "recording.gray8",
            Self::Yuy2P2Pro => "recording.yuy2",
            Self::Png16 => "recording",
        }
    }

    /// One frame's bytes as this format stores them (for raw formats), 8-bit views by
    /// `view`.
    fn encode(self, thermal: &[u16], view: &Agc) -> Vec<u8> {
        let agc = || agc_view(thermal, view);
        match self {
            Self::Gray16Le | Self::Png16 => thermal.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::Gray8 => agc(),
            Self::Yuy2P2Pro => {
                let image = agc().into_iter().flat_map(|y| [y, 128]);
                // centikelvin → 1/64 K
                let counts = thermal.iter().flat_map(|&ck| {
                    (((ck as u32 * 64 + 50) / 100).min(65535) as u16).to_le_bytes()
                });
                image.chain(counts).collect()
            }
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct DatasetSummary {
    pub scenes: u64,
    /// Labelled objects in the scenes, per class in [`Class::ALL`] order.
    pub objects: [usize; 3],
    pub recording_frames: u32,
    pub recording_objects: usize,
    pub elapsed: Duration,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> SynthError {
    SynthError(format!("{}: {e}", path.display()))
}

fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) -> Result<(), SynthError> {
    crate::imaging::image::write_png(path, width, height, color, depth, data)
        .map_err(|e| io_err(path, e))
}

/// 16-bit grey PNG (PNG stores samples big-endian).
pub fn write_gray16_png(
    path: &Path,
    width: u32,
    height: u32,
    counts: &[u16],
) -> Result<(), SynthError> {
    let bytes: Vec<u8> = counts.iter().flat_map(|v| v.to_be_bytes()).collect();
    write_png(
        path,
        width,
        height,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &bytes,
    )
}

pub fn write_gray8_png(
    path: &Path,
    width: u32,
    height: u32,
    pixels: &[u8],
) -> Result<(), SynthError> {
    write_png(
        path,
        width,
        height,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        pixels,
    )
}

pub fn write_rgb8_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<(), SynthError> {
    write_png(
        path,
        width,
        height,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        rgb,
    )
}

/// A temperature to 0.01 °C, the resolution of the centikelvin counts.
fn round_centi(celsius: f32) -> f32 {
    (celsius * 100.0).round() / 100.0
}

/// The COCO dataset of labelled frames `(image id, file name, labels)`.
pub fn coco(width: u32, height: u32, frames: &[(i64, String, Vec<Label>)]) -> CocoGt {
    let mut next_id = 1;
    let mut annotations = Vec::new();
    for (image_id, _, labels) in frames {
        for l in labels {
            let bbox = l.bbox.map(f64::from);
            annotations.push(GtAnnotation {
                id: next_id,
                image_id: *image_id,
                category_id: l.class.category_id(),
                bbox,
                area: Some(bbox[2] * bbox[3]),
                iscrowd: 0,
                temperature_c: Some(GtTemperature {
                    max: round_centi(l.temperature.max),
                    median: round_centi(l.temperature.median),
                }),
            });
            next_id += 1;
        }
    }
    CocoGt {
        images: frames
            .iter()
            .map(|(id, name, _)| ImageInfo {
                id: *id,
                file_name: name.clone(),
                width,
                height,
            })
            .collect(),
        annotations,
        categories: Class::ALL
            .iter()
            .map(|c| Category {
                id: c.category_id(),
                name: c.name().to_string(),
            })
            .collect(),
    }
}

fn write_json(path: &Path, coco: &CocoGt) -> Result<(), SynthError> {
    let file = File::create(path).map_err(|e| io_err(path, e))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer(&mut w, coco).map_err(|e| io_err(path, e))?;
    w.write_all(b"\n")
        .and_then(|_| w.flush())
        .map_err(|e| io_err(path, e))
}

fn workers(jobs: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(jobs.max(1) as usize)
}

/// A scene index with its labels.
type Labelled = (u64, Vec<Label>);

/// Generates and writes scene `index` into the three image folders.
fn write_scene(spec: &DatasetSpec, index: u64) -> Result<Vec<Label>, SynthError> {
    let scene = Scene::generate_with(spec.seed, index, spec.width, spec.height, spec.radiometry)?;
    let name = format!("{index:06}.png");
    let (w, h) = (spec.width, spec.height);
    write_gray16_png(
        &spec.out.join("thermal16").join(&name),
        w,
        h,
        &scene.thermal,
    )?;
    write_gray8_png(
        &spec.out.join("thermal8").join(&name),
        w,
        h,
        &agc_view(&scene.thermal, &spec.agc),
    )?;
    write_rgb8_png(&spec.out.join("rgb").join(&name), w, h, &scene.rgb)?;
    Ok(scene.labels)
}

/// Writes the whole data set, scenes in parallel on all cores. Output is identical
/// whatever the number of cores.
pub fn write_dataset(spec: &DatasetSpec) -> Result<DatasetSummary, SynthError> {
    let start = Instant::now();
    if spec.scenes > 0 {
        for dir in ["thermal16", "thermal8", "rgb"] {
            let p = spec.out.join(dir);
            fs::create_dir_all(&p).map_err(|e| io_err(&p, e))?;
        }
    } else {
        fs::create_dir_all(&spec.out).map_err(|e| io_err(&spec.out, e))?;
    }
    let n = workers(spec.scenes);
    let results: Vec<Result<Vec<Labelled>, SynthError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|k| {
                s.spawn(move || {
                    (k as u64..spec.scenes)
                        .step_by(n)
                        .map(|i| write_scene(spec, i).map(|l| (i, l)))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(SynthError("a generator thread panicked".into())))
            })
            .collect()
    });
    let mut frames: Vec<Labelled> = Vec::new();
    for r in results {
        frames.extend(r?);
    }
    frames.sort_by_key(|(i, _)| *i);
    let objects = count_by_class(frames.iter().flat_map(|(_, l)| l));
    if spec.scenes > 0 {
        let named: Vec<(i64, String, Vec<Label>)> = frames
            .into_iter()
            .map(|(i, l)| (i as i64, format!("{i:06}.png"), l))
            .collect();
        write_json(
            &spec.out.join("annotations.json"),
            &coco(spec.width, spec.height, &named),
        )?;
    }
    let recording_objects = if spec.recording > 0 {
        write_recording(spec)?
    } else {
        0
    };
    Ok(DatasetSummary {
        scenes: spec.scenes,
        objects,
        recording_frames: spec.recording,
        recording_objects,
        elapsed: start.elapsed(),
    })
}

/// Writes the recording's frames (in `spec.recording_format`) and `recording.json`;
/// returns the number of labels.
fn write_recording(spec: &DatasetSpec) -> Result<usize, SynthError> {
    let rec = Recording::with_radiometry(spec.seed, spec.width, spec.height, spec.radiometry)?;
    let format = spec.recording_format;
    let raw_path = spec.out.join(format.file_name());
    let mut raw = if format == RecordingFormat::Png16 {
        fs::create_dir_all(&raw_path).map_err(|e| io_err(&raw_path, e))?;
        None
    } else {
        Some(BufWriter::new(
            File::create(&raw_path).map_err(|e| io_err(&raw_path, e))?,
        ))
    };
    let n = workers(spec.recording as u64) as u32;
    let mut frames: Vec<(i64, String, Vec<Label>)> = Vec::new();
    let mut first = 0;
    while first < spec.recording {
        let last = first.saturating_add(4 * n).min(spec.recording);
        let batch: Vec<(u32, super::scene::RecordingFrame)> = std::thread::scope(|s| {
            let rec = &rec;
            let handles: Vec<_> = (0..n)
                .map(|k| {
                    s.spawn(move || {
                        (first + k..last)
                            .step_by(n as usize)
                            .map(|i| (i, rec.frame(i)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<_> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect();
            all.sort_by_key(|(i, _)| *i);
            all
        });
        if batch.len() != (last - first) as usize {
            return Err(SynthError("a recording thread panicked".into()));
        }
        for (i, f) in batch {
            let name = match raw.as_mut() {
                Some(raw) => {
                    raw.write_all(&format.encode(&f.thermal, &spec.agc))
                        .map_err(|e| io_err(&raw_path, e))?;
                    format!("frame_{i:06}")
                }
                None => {
                    let name = format!("frame_{i:06}.png");
                    write_gray16_png(&raw_path.join(&name), spec.width, spec.height, &f.thermal)?;
                    name
                }
            };
            frames.push((i as i64, name, f.labels));
        }
        first = last;
    }
    if let Some(raw) = raw.as_mut() {
        raw.flush().map_err(|e| io_err(&raw_path, e))?;
    }
    let count = frames.iter().map(|f| f.2.len()).sum();
    write_json(
        &spec.out.join("recording.json"),
        &coco(spec.width, spec.height, &frames),
    )?;
    let gt_path = spec.out.join("gt.txt");
    fs::write(&gt_path, mot_ground_truth(&rec, &frames)).map_err(|e| io_err(&gt_path, e))?;
    Ok(count)
}

/// The recording's labels as MOTChallenge `gt.txt` rows `frame, id, x, y, w, h, 1, class,
/// visibility` (frame and box corner counted from 1, class the COCO category id), for
/// scoring a tracker with `zsq eval --tracks`.
///
/// An id is one physical object: a label identity on one pass along its loop (an
/// object that wraps around has left at one end and a new one enters at the other).
/// Ids count from 1 in order of first appearance. An object hidden or out of frame for
/// a while keeps its id when it comes back, as in MOTChallenge.
fn mot_ground_truth(rec: &Recording, frames: &[(i64, String, Vec<Label>)]) -> String {
    let mut ids: HashMap<(u32, u32), usize> = HashMap::new();
    let mut text = String::new();
    for (index, _, labels) in frames {
        for l in labels {
            let object = (l.track, rec.pass(l.track, *index as u32));
            let next = ids.len() + 1;
            let id = *ids.entry(object).or_insert(next);
            let [x, y, w, h] = l.bbox;
            let _ = writeln!(
                text,
                "{},{id},{},{},{w},{h},1,{},{:.3}",
                index + 1,
                x + 1.0,
                y + 1.0,
                l.class.category_id(),
                l.visible
            );
        }
    }
    text
}
