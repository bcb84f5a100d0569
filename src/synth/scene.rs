//! The public face of the generator: one scene from `(seed, index)`, or a recording.
//! Both start by sampling a world (layout, then placement) from their own random stream.

use super::climate::Climate;
use super::labels::{Class, Label};
use super::noise::ValueNoise;
use super::radiometry::RadiometryModel;
use super::rng::Rng;
use super::world::{Body, Kind, World};
use super::{AGC_HIGH_PERCENTILE, AGC_LOW_PERCENTILE, SynthError};
use super::{layout, placement, render};
use crate::imaging::agc::percentile_stretch;

/// Smallest and largest frame side accepted.
const MIN_SIDE: u32 = 32;
const MAX_SIDE: u32 = 8192;

fn check_size(width: u32, height: u32) -> Result<(), SynthError> {
    if (MIN_SIDE..=MAX_SIDE).contains(&width) && (MIN_SIDE..=MAX_SIDE).contains(&height) {
        Ok(())
    } else {
        Err(SynthError(format!(
            "frame size {width}x{height} is out of range: each side must be {MIN_SIDE}..={MAX_SIDE}"
        )))
    }
}

/// One generated frame: radiometric thermal image, the RGB twin, and labels.
#[derive(Debug, Clone)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    /// Row-major centikelvin (K · 100), as a FLIR camera's TLinear output.
    pub thermal: Vec<u16>,
    /// Row-major RGB, 3 bytes per pixel, of the same geometry in visible light.
    pub rgb: Vec<u8>,
    pub labels: Vec<Label>,
    /// Whether the scene is at night (no sun; people stand out most).
    pub night: bool,
}

impl Scene {
    /// Scene `index` of the data set with `seed`. Same arguments, same scene, bit for bit;
    /// scenes are independent of each other (generate them in any order or in parallel).
    pub fn generate(seed: u64, index: u64, width: u32, height: u32) -> Result<Scene, SynthError> {
        Self::generate_with(seed, index, width, height, RadiometryModel::default())
    }

    /// [`Scene::generate`] in the given radiometry. The layout, objects and labels are
    /// the same in every radiometry; the temperatures differ.
    pub fn generate_with(
        seed: u64,
        index: u64,
        width: u32,
        height: u32,
        radiometry: RadiometryModel,
    ) -> Result<Scene, SynthError> {
        check_size(width, height)?;
        let mut rng = Rng::stream(seed, index);
        let world = sample_world(&mut rng, width, height, radiometry);
        let background = render::background(&world);
        let rendered = render::render(&world, &background, 0.0);
        let mut noise = Rng::new(rng.next_u64());
        Ok(Scene {
            width,
            height,
            thermal: render::thermal_counts(&world, &rendered, &mut noise),
            rgb: render::rgb_bytes(&world, &rendered.canvas, &mut noise),
            labels: rendered.labels,
            night: world.climate.night,
        })
    }

    /// The 8-bit view a camera's AGC gives (1st-99th percentile stretch, white-hot), as
    /// written to `thermal8/`.
    pub fn thermal8(&self) -> Vec<u8> {
        percentile_stretch(&self.thermal, AGC_LOW_PERCENTILE, AGC_HIGH_PERCENTILE)
    }
}

/// Samples the world of one scene from `rng`, the scene's own stream. The order of the
/// draws is part of the output: the same seed must give the same bytes.
fn sample_world(rng: &mut Rng, width: u32, height: u32, radiometry: RadiometryModel) -> World {
    let kind = layout::pick_kind(rng);
    let camera = layout::sample_camera(rng, kind, width, height);
    let climate = Climate::sample(rng, radiometry);
    let road = layout::sample_road(rng, kind);
    let ground = layout::sample_ground(rng, &climate, kind);
    let buildings = layout::sample_buildings(rng, &climate, kind, &road);
    let skyline = layout::sample_skyline(rng, &climate, kind);
    let texture = ValueNoise::new(rng);
    let clouds = ValueNoise::new(rng);
    let sensor = layout::sample_sensor(rng, width, height);
    let mut world = World {
        kind,
        camera,
        climate,
        road,
        ground,
        buildings,
        skyline,
        texture,
        clouds,
        actors: Vec::new(),
        sensor,
    };
    placement::populate(rng, &mut world);
    world
}

/// Frames per second of a recording (object motion per frame follows from it).
pub const FRAME_RATE: f32 = 30.0;

/// A fixed camera watching one scene in which people walk, cyclists ride and cars drive.
pub struct Recording {
    world: World,
    background: super::canvas::Canvas,
    noise_seed: u64,
}

/// One frame of a recording.
#[derive(Debug, Clone)]
pub struct RecordingFrame {
    /// Row-major centikelvin.
    pub thermal: Vec<u16>,
    pub labels: Vec<Label>,
}

/// The random stream of recordings (scene indices never reach it).
const RECORDING_STREAM: u64 = u64::MAX;

impl Recording {
    /// The recording of `seed`: the first sampled street scene (not a plaza, whose
    /// objects are far away) with at least three moving labelled objects, one a car.
    pub fn new(seed: u64, width: u32, height: u32) -> Result<Recording, SynthError> {
        Self::with_radiometry(seed, width, height, RadiometryModel::default())
    }

    /// [`Recording::new`] in the given radiometry (same scene and motion).
    pub fn with_radiometry(
        seed: u64,
        width: u32,
        height: u32,
        radiometry: RadiometryModel,
    ) -> Result<Recording, SynthError> {
        check_size(width, height)?;
        let mut picker = Rng::stream(seed, RECORDING_STREAM);
        let mut best: Option<(World, usize, u64)> = None;
        for _ in 0..200 {
            let mut rng = Rng::new(picker.next_u64());
            let world = sample_world(&mut rng, width, height, radiometry);
            let noise_seed = rng.next_u64();
            let moving = |car: bool| {
                world
                    .actors
                    .iter()
                    .filter(|a| a.speed > 0.0 && !matches!(a.body, Body::Clutter(_)))
                    .filter(|a| !car || matches!(a.body, Body::Car(_)))
                    .count()
            };
            let score = if world.kind == Kind::Plaza || moving(true) == 0 {
                0
            } else {
                moving(false)
            };
            let done = score >= 3;
            if best.as_ref().is_none_or(|b| score > b.1) {
                best = Some((world, score, noise_seed));
            }
            if done {
                break;
            }
        }
        let (world, _, noise_seed) =
            best.ok_or_else(|| SynthError("no recording scene could be sampled".into()))?;
        let background = render::background(&world);
        Ok(Recording {
            world,
            background,
            noise_seed,
        })
    }

    pub fn width(&self) -> u32 {
        self.world.camera.width
    }

    pub fn height(&self) -> u32 {
        self.world.camera.height
    }

    /// The pass of the object a label of frame `index` belongs to along its loop (see
    /// [`super::world::Actor::pass`]); `(label.track, pass)` is one physical object.
    pub fn pass(&self, track: u32, index: u32) -> u32 {
        self.world
            .actors
            .get((track / 4) as usize)
            .map_or(0, |a| a.pass(index as f32 / FRAME_RATE))
    }

    /// Frame `index` (time `index / FRAME_RATE` seconds), independent of other frames.
    pub fn frame(&self, index: u32) -> RecordingFrame {
        let rendered = render::render(&self.world, &self.background, index as f32 / FRAME_RATE);
        let mut noise = Rng::stream(self.noise_seed, index as u64);
        RecordingFrame {
            thermal: render::thermal_counts(&self.world, &rendered, &mut noise),
            labels: rendered.labels,
        }
    }
}

/// Count of labels per class, in [`Class::ALL`] order.
pub fn count_by_class<'a>(labels: impl IntoIterator<Item = &'a Label>) -> [usize; 3] {
    let mut n = [0; 3];
    for l in labels {
        n[Class::ALL.iter().position(|c| *c == l.class).unwrap_or(0)] += 1;
    }
    n
}
