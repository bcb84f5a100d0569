//! Generated calibration scenes (`--calibration synth`): data-free calibration for
//! models whose BatchNormalization statistics were folded away by the exporter, so
//! there is nothing to distill from.
//!
//! The scenes are [`crate::synth::Scene`]s made in process (no files): thermal models
//! get the 16-bit radiometric frame through the detector's own pre-processing
//! ([`Preprocess`]: the default 1–99 % percentile AGC, grey replicated, letterboxed), as
//! a camera frame would arrive at run time; colour models (metadata `modality=rgb`) get
//! the scene's RGB twin. Calibration only needs activation ranges of the kind the model
//! will see, and a rendered street is much closer to that than distilled or random
//! images; measured in docs/quantize.md.
//!
//! Scenes are generated at a camera's frame size, 640×512 by default (a Boson-class
//! LWIR sensor, and what the bundled detectors are run on), and letterboxed into the
//! input like live frames, border included; [`SceneSize::Input`] renders at the input
//! size instead (no border). Scenes are independent: they are rendered on every core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::Array4;

use super::ZsqError;
use super::images::ImageInput;
use crate::imaging::frame::{FrameRef, PixelFormat};
use crate::imaging::preprocess::Preprocess;
use crate::synth::Scene;

/// The frame size scenes are rendered at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneSize {
    /// The model's input size (the scene fills the input, no letterbox border).
    Input,
    /// A camera frame of this width and height, letterboxed into the input.
    Frame { width: u32, height: u32 },
}

impl SceneSize {
    /// A 640×512 LWIR camera (FLIR Boson-class): what `zsq synth` renders by default.
    pub const CAMERA: SceneSize = SceneSize::Frame {
        width: 640,
        height: 512,
    };

    /// Width and height of the rendered frames for `input`.
    pub fn frame(self, input: ImageInput) -> (u32, u32) {
        match self {
            SceneSize::Input => (input.width as u32, input.height as u32),
            SceneSize::Frame { width, height } => (width, height),
        }
    }
}

impl std::fmt::Display for SceneSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SceneSize::Input => f.write_str("input"),
            SceneSize::Frame { width, height } => write!(f, "{width}x{height}"),
        }
    }
}

impl std::str::FromStr for SceneSize {
    type Err = ZsqError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "input" {
            return Ok(SceneSize::Input);
        }
        let parsed = s
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
        match parsed {
            Some((width, height)) => Ok(SceneSize::Frame { width, height }),
            None => Err(ZsqError::Options(format!(
                "unknown scene size `{s}` (expected WxH, e.g. 640x512, or input)"
            ))),
        }
    }
}

/// Which generated scenes calibrate a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthScenes {
    pub count: usize,
    /// Scene `i` is `Scene::generate(seed, i, …)`. The bundled detectors were trained
    /// on seed 1 and are scored on seed 2; the default, 0, is neither.
    pub seed: u64,
    pub size: SceneSize,
}

impl SynthScenes {
    /// Scenes per calibration by default (measured in docs/quantize.md).
    pub const DEFAULT_COUNT: usize = 100;
}

impl Default for SynthScenes {
    fn default() -> Self {
        SynthScenes {
            count: Self::DEFAULT_COUNT,
            seed: 0,
            size: SceneSize::CAMERA,
        }
    }
}

/// The modality generated scenes are rendered in for a model: its metadata `modality`
/// (`thermal` or `rgb`); a model without one is taken for thermal (this is a thermal
/// project, and grey inputs replicate to any channel count the check accepts). An
/// unknown modality is an error: there is no scene to render for it.
pub fn scene_colour(modality: Option<&str>) -> Result<bool, ZsqError> {
    match modality {
        None => Ok(false),
        Some(m) if m.eq_ignore_ascii_case("thermal") => Ok(false),
        Some(m) if m.eq_ignore_ascii_case("rgb") => Ok(true),
        Some(m) => Err(ZsqError::Model(format!(
            "the model's metadata names modality `{m}`, neither thermal nor rgb: generated \
             scenes (the data-free source for models without BatchNormalization) cannot \
             calibrate it; set the metadata `modality` to thermal or rgb, or calibrate on real \
             images (zsq quantize --calib-images DIR)"
        ))),
    }
}

/// `scenes.count` generated scenes pre-processed for `input` (N, C, H, W), rendered
/// on every core; `progress(done, total)` after each scene, from the calling thread's
/// point of view in order of completion. `cancel` stops between scenes.
pub fn generate_scenes(
    scenes: &SynthScenes,
    input: ImageInput,
    cancel: Option<&Arc<AtomicBool>>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Array4<f32>, ZsqError> {
    let SynthScenes { count, seed, size } = *scenes;
    if count == 0 {
        return Err(ZsqError::Options(
            "the number of generated scenes must be at least 1".into(),
        ));
    }
    let (width, height) = size.frame(input);
    let len = input.channels * input.height * input.width;
    let mut data = vec![0.0f32; count * len];
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count);
    let per = count.div_ceil(threads);
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), ZsqError>>();
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    std::thread::scope(|scope| {
        for (t, chunk) in data.chunks_mut(per * len).enumerate() {
            let tx = tx.clone();
            scope.spawn(move || {
                let mut pre =
                    Preprocess::new(input.width, input.height, input.channels, input.colour);
                for (j, out) in chunk.chunks_mut(len).enumerate() {
                    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                        return;
                    }
                    let index = (t * per + j) as u64;
                    let done = render_into(&mut pre, seed, index, width, height, out);
                    let failed = done.is_err();
                    if tx.send(done).is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for result in rx {
            result?;
            done += 1;
            progress(done, count);
        }
        Ok::<(), ZsqError>(())
    })?;
    if cancelled() {
        return Err(ZsqError::Cancelled);
    }
    Ok(
        Array4::from_shape_vec((count, input.channels, input.height, input.width), data)
            .expect("one tensor per scene"),
    )
}

/// Renders scene `index` of `seed` and pre-processes it into `out`.
fn render_into(
    pre: &mut Preprocess,
    seed: u64,
    index: u64,
    width: u32,
    height: u32,
    out: &mut [f32],
) -> Result<(), ZsqError> {
    let scene = Scene::generate(seed, index, width, height)
        .map_err(|e| ZsqError::Options(format!("generated scenes: {e}")))?;
    let (w, h) = (width as usize, height as usize);
    let (format, bytes): (PixelFormat, Vec<u8>) = if pre.colour {
        (PixelFormat::Rgb, scene.rgb)
    } else {
        (
            PixelFormat::Gray16Le,
            scene.thermal.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    };
    let bpp = bytes.len() / (w * h);
    let frame = FrameRef::new(format, w, h, vec![(bytes.as_slice(), bpp * w)])
        .map_err(|e| ZsqError::Images(format!("generated scene {index}: {e}")))?;
    pre.run(&frame, out);
    Ok(())
}
