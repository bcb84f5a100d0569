//! Synthetic radiometric thermal street scenes with COCO labels.
//!
//! Why: the project must be built, tested and judged without a real thermal data set.
//! [`Scene::generate`] renders a street seen by an LWIR camera (FLIR Boson-like, 640x512
//! by default) from a seed and an index: sky, ground with perspective, road, sidewalks,
//! buildings, trees, street furniture and people, cars and bicycles with plausible
//! apparent temperatures (skin ~305-309 K, clothing a few K above the air, hot engines,
//! tyres and exhausts on running cars, windows reflecting the cold sky), day or night,
//! then the camera's optics blur, vignetting, column fixed-pattern noise and temporal
//! noise. The same geometry is rendered in visible light for an RGB-trained twin.
//!
//! Two radiometries ([`RadiometryModel`]): `Legacy` (the default, what the bundled
//! detectors were trained on, hand-set apparent temperatures) and `Lwir` (surface
//! temperatures seen through 8-14 µm band radiance: emissivity and reflected sky mixed in
//! radiance, night sky cooling, clothing from ISO 7730's heat balance, the air's
//! absorption with distance, optics blurring radiance). Both draw the same random
//! numbers, so a seed gives the same scenes and boxes in both.
//!
//! Labels are the *visible* extent of each object after occlusion and the frame border;
//! objects less than 40 % visible or a few pixels small are left unlabelled.
//! [`Recording`] animates one scene (walking, cycling, driving) for replay pipelines.
//!
//! Everything is deterministic: the random streams are a fixed integer recurrence
//! ([`rng::Rng`]) and each scene has its own. Floating-point maths is IEEE and the
//! same binary gives the same bytes; across platforms, `sin`/`exp` of the system maths
//! library may differ in the last bit, which can very rarely move one centikelvin.

mod background;
mod bicycle;
mod camera;
mod canvas;
mod car;
mod climate;
mod clutter;
mod labels;
mod layout;
mod material;
mod model3d;
mod noise;
mod output;
mod person;
mod placement;
mod radiometry;
mod raster;
mod render;
pub mod rng;
mod scene;
mod world;

pub use labels::{Class, Label, MIN_VISIBLE, TrueTemperature};
pub use output::{
    DatasetSpec, DatasetSummary, RecordingFormat, coco, write_dataset, write_gray8_png,
    write_gray16_png, write_rgb8_png,
};
pub use radiometry::RadiometryModel;
pub use scene::{FRAME_RATE, Recording, RecordingFrame, Scene, count_by_class};

/// The AGC of `thermal8/`: per frame, a linear stretch between these percentiles of the
/// 16-bit frame, computed by [`crate::imaging::agc::percentile_stretch`] (nearest-rank
/// percentiles `sorted[floor(p/100·(n−1))]` from a histogram, round half up, flat frame
/// → 0). The element calls the same function, so it sees what training saw.
pub const AGC_LOW_PERCENTILE: f64 = 1.0;
pub const AGC_HIGH_PERCENTILE: f64 = 99.0;

/// Errors of the generator (bad size, unwritable output), as text a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthError(pub String);

impl std::fmt::Display for SynthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SynthError {}
