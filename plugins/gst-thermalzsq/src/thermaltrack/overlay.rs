//! What `thermaltrack` draws: tracked boxes labelled "person #12" (with a radiometric
//! camera "person #12 35.8°C", the box maximum of the latest reading), each track's
//! recent path, and the zones and lines of the zones file.
//!
//! Boxes and labels are the engine's detection drawing with the id in the label; paths,
//! zone outlines and lines are chains of small squares drawn with the engine's box
//! drawing, so every pixel format `thermaldetect` draws on works here too.

use std::collections::{HashMap, VecDeque};

use thermalzsq::detect::Detection;
use thermalzsq::detect::draw::{Style, draw_detections};
use thermalzsq::imaging::FrameMut;
use thermalzsq::imaging::draw::draw_boxes;
use thermalzsq::track::{Track, TrackState, Tracker, Zones, reference_point};

/// Points kept per track for `draw-trails`: one second at 30 fps.
const TRAIL_POINTS: usize = 30;

const ZONE_INK: [u8; 3] = [255, 178, 29];
const LINE_INK: [u8; 3] = [0, 194, 255];
const TRAIL_INK: [u8; 3] = [255, 255, 255];

/// The latest reference points of every live confirmed track.
#[derive(Debug, Default)]
pub struct Trails {
    points: HashMap<u64, VecDeque<[f32; 2]>>,
}

impl Trails {
    /// Adds this frame's points; tracks that ended are forgotten, and no trail grows
    /// past [`TRAIL_POINTS`].
    pub fn update(&mut self, tracker: &Tracker) {
        self.points.retain(|&id, _| tracker.track(id).is_some());
        for t in tracker.tracks() {
            if t.state == TrackState::Tracked {
                let trail = self.points.entry(t.id).or_default();
                if trail.len() == TRAIL_POINTS {
                    trail.pop_front();
                }
                trail.push_back(reference_point(t.bbox));
            }
        }
    }

    pub fn clear(&mut self) {
        self.points.clear();
    }
}

/// What to draw on one frame.
pub struct Overlay<'a> {
    /// Tracks to box (the confirmed ones matched in this frame).
    pub tracks: &'a [Track],
    pub trails: Option<&'a Trails>,
    pub zones: Option<&'a Zones>,
    /// Whether labels carry the track's temperature, where known.
    pub temperature: bool,
}

/// "person #12", or "person #12 35.8°C" with `temperature` and a reading.
fn label(t: &Track, temperature: bool) -> String {
    match t.temperature.as_ref().filter(|_| temperature) {
        Some(r) => format!("{} #{} {:.1}°C", t.label, t.id, r.latest().max),
        None => format!("{} #{}", t.label, t.id),
    }
}

impl Overlay<'_> {
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
            && self.trails.is_none_or(|t| t.points.is_empty())
            && self
                .zones
                .is_none_or(|z| z.zones.is_empty() && z.lines.is_empty())
    }

    /// Zones first, so boxes and labels stay readable on top of them.
    pub fn draw(&self, frame: &mut FrameMut) {
        if let Some(zones) = self.zones {
            for z in &zones.zones {
                let mut closed = z.polygon.clone();
                closed.extend(z.polygon.first());
                polyline(frame, &closed, 1, ZONE_INK);
            }
            for l in &zones.lines {
                polyline(frame, &l.points, 1, LINE_INK);
            }
        }
        if let Some(trails) = self.trails {
            for trail in trails.points.values() {
                let points: Vec<[f32; 2]> = trail.iter().copied().collect();
                polyline(frame, &points, 1, TRAIL_INK);
            }
        }
        let labelled: Vec<Detection> = self
            .tracks
            .iter()
            .map(|t| Detection {
                class_id: t.class_id,
                label: label(t, self.temperature),
                confidence: t.confidence,
                bbox: t.bbox,
                temperature: None,
            })
            .collect();
        let style = Style {
            confidence: false,
            ..Style::default()
        };
        draw_detections(frame, &labelled, &style);
    }
}

/// A path through `points`, as squares of `2 * half` pixels one pixel apart.
fn polyline(frame: &mut FrameMut, points: &[[f32; 2]], half: usize, ink: [u8; 3]) {
    let mut dots = Vec::new();
    for pair in points.windows(2) {
        let ([x0, y0], [x1, y1]) = (pair[0], pair[1]);
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let f = i as f32 / steps as f32;
            let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
            dots.push([x, y, x, y]);
        }
    }
    if let [only] = points {
        dots.push([only[0], only[1], only[0], only[1]]);
    }
    draw_boxes(frame, &dots, ink, half);
}
