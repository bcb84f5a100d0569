//! Object classes and labels: what a box means and how visible extents are measured.

/// The labelled classes, in COCO category order (ids 1, 2, 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Person,
    Car,
    Bicycle,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Person, Class::Car, Class::Bicycle];

    /// COCO category id.
    pub fn category_id(self) -> i64 {
        match self {
            Class::Person => 1,
            Class::Car => 2,
            Class::Bicycle => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Person => "person",
            Class::Car => "car",
            Class::Bicycle => "bicycle",
        }
    }
}

/// One labelled object in a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub class: Class,
    /// Visible extent `[x, y, w, h]` in pixels (after occlusion and the frame border).
    pub bbox: [f32; 4],
    /// Visible pixels over the pixels the object would cover alone, in and out of frame.
    pub visible: f32,
    /// Identity of the object across the frames of a recording (object index · 4 + part).
    pub track: u32,
    /// The object's true temperature over its visible pixels as the camera's lens
    /// resolves it, before the sensor's noise: what a perfect radiometric sensor reads.
    pub temperature: TrueTemperature,
}

/// An object's apparent temperature in °C: its hottest visible pixel and the median of
/// its visible pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrueTemperature {
    pub max: f32,
    pub median: f32,
}

/// Objects less visible than this are left unlabelled (too occluded or cut by the border).
pub const MIN_VISIBLE: f32 = 0.4;
/// Boxes need at least this height or width (the larger side) in pixels ...
pub const MIN_LONG_SIDE: f32 = 8.0;
/// ... and this much on the shorter side.
pub const MIN_SHORT_SIDE: f32 = 3.0;

/// One labelled part drawn in a frame: its class, identity and unoccluded area.
pub struct Slot {
    pub class: Class,
    pub track: u32,
    pub full_area: usize,
}

const ZERO_CELSIUS_IN_KELVIN: f32 = 273.15;

/// Hottest and median (nearest rank, lower) of an object's pixel temperatures, °C.
fn true_temperature(kelvin: &mut [f32]) -> TrueTemperature {
    let mid = (kelvin.len() - 1) / 2;
    let median = *kelvin.select_nth_unstable_by(mid, f32::total_cmp).1;
    let max = kelvin.iter().copied().fold(f32::MIN, f32::max);
    TrueTemperature {
        max: max - ZERO_CELSIUS_IN_KELVIN,
        median: median - ZERO_CELSIUS_IN_KELVIN,
    }
}

/// Owner value of pixels no labelled object owns.
pub const NO_OWNER: u16 = u16::MAX;

/// Labels from the final owner map: the bounding box of each slot's visible pixels,
/// kept when visible enough and large enough, with the temperature of those pixels in
/// `kelvin` (the image the lens forms).
pub fn extract(owner: &[u16], kelvin: &[f32], width: usize, slots: &[Slot]) -> Vec<Label> {
    let mut boxes = vec![(usize::MAX, usize::MAX, 0usize, 0usize, 0usize); slots.len()];
    let mut temperatures: Vec<Vec<f32>> = vec![Vec::new(); slots.len()];
    for (i, &o) in owner.iter().enumerate() {
        if o != NO_OWNER {
            let (x, y) = (i % width, i / width);
            let b = &mut boxes[o as usize];
            *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y), b.4 + 1);
            temperatures[o as usize].push(kelvin[i]);
        }
    }
    slots
        .iter()
        .zip(boxes)
        .zip(temperatures)
        .filter_map(|((slot, (x0, y0, x1, y1, count)), mut kelvin)| {
            if count == 0 || slot.full_area == 0 {
                return None;
            }
            let visible = count as f32 / slot.full_area as f32;
            let (w, h) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
            (visible >= MIN_VISIBLE && w.max(h) >= MIN_LONG_SIDE && w.min(h) >= MIN_SHORT_SIDE)
                .then(|| Label {
                    class: slot.class,
                    bbox: [x0 as f32, y0 as f32, w, h],
                    visible: visible.min(1.0),
                    track: slot.track,
                    temperature: true_temperature(&mut kelvin),
                })
        })
        .collect()
}
