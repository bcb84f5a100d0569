//! Events from tracks: what a security system acts on ("person 12 entered zone gate").
//!
//! [`Analytics`] follows every confirmed track's reference point (bottom centre of its
//! box) through the camera's [`Zones`]: `new` when a track is confirmed, `enter`/`exit`
//! when the point moves into or out of a zone, `loiter` once per visit when it has been
//! in a zone for `loiter_seconds`, `cross` when it moves over a line (with the side it
//! moved to), `end` when the track ends (after the exits of the zones it was in, so zone
//! counts always return to zero). A lost track (occluded, predicted only) keeps its
//! place: an object hidden for a moment has not left. Zone occupancy is counted per
//! label and reported when it changes. With a radiometric camera, `hot` once per track
//! when its hottest box maximum reaches its label's [`HotThresholds`] (fire watch,
//! overheating machinery), and every event carries the track's temperature.

use std::collections::{BTreeMap, HashMap};

use super::temperature::HotThresholds;
use super::tracker::{FrameUpdate, Track, TrackState, Tracker};
use super::zones::{Side, Zones, reference_point};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    New,
    End,
    Enter,
    Exit,
    Cross,
    Loiter,
    Hot,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 7] = [
        EventKind::New,
        EventKind::End,
        EventKind::Enter,
        EventKind::Exit,
        EventKind::Cross,
        EventKind::Loiter,
        EventKind::Hot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::End => "end",
            EventKind::Enter => "enter",
            EventKind::Exit => "exit",
            EventKind::Cross => "cross",
            EventKind::Loiter => "loiter",
            EventKind::Hot => "hot",
        }
    }
}

/// One event of one track.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub track_id: u64,
    pub label: String,
    pub class_id: usize,
    pub confidence: f32,
    /// The track's box when it happened, `[x0, y0, x1, y1]`.
    pub bbox: [f32; 4],
    /// The zone of `enter`, `exit` and `loiter`.
    pub zone: Option<String>,
    /// The line of `cross`.
    pub line: Option<String>,
    /// The side of the line a `cross` went to.
    pub direction: Option<Side>,
    /// Seconds in the zone, for `exit` and `loiter`.
    pub dwell: Option<f64>,
    /// With a radiometric camera, °C: the box maximum of the track's latest reading;
    /// for `hot`, the hottest box maximum, the one that reached the threshold.
    pub temperature: Option<f32>,
}

impl Event {
    fn of(kind: EventKind, t: &Track) -> Event {
        Event {
            kind,
            track_id: t.id,
            label: t.label.clone(),
            class_id: t.class_id,
            confidence: t.confidence,
            bbox: t.bbox,
            zone: None,
            line: None,
            direction: None,
            dwell: None,
            temperature: t.temperature.as_ref().map(|r| r.latest().max),
        }
    }
}

/// How many tracks of one label are in one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    pub zone: String,
    pub label: String,
    pub count: u32,
}

/// What one frame produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameEvents {
    pub events: Vec<Event>,
    /// Zone counts that changed in this frame (new values).
    pub occupancy: Vec<Occupancy>,
}

/// One visit of a zone.
#[derive(Debug, Clone, Copy)]
struct Visit {
    since: f64,
    loitered: bool,
}

/// What is known of one confirmed track's place.
#[derive(Debug, Clone)]
struct Place {
    /// Per zone (same order as the zones file): the current visit.
    visits: Vec<Option<Visit>>,
    /// Per line: the track's last point that was off the line, so that a step onto the
    /// line and one off it count as one crossing.
    off_line: Vec<Option<[f32; 2]>>,
    /// Whether its `hot` event was sent.
    hot: bool,
}

/// Zones, lines and events over one stream.
#[derive(Debug, Clone)]
pub struct Analytics {
    zones: Zones,
    loiter_seconds: f64,
    hot: HotThresholds,
    places: HashMap<u64, Place>,
    /// (zone index, label) -> tracks inside.
    counts: BTreeMap<(usize, String), u32>,
}

impl Analytics {
    /// `loiter_seconds` <= 0 disables loitering events.
    pub fn new(zones: Zones, loiter_seconds: f64) -> Self {
        Analytics {
            zones,
            loiter_seconds,
            hot: HotThresholds::default(),
            places: HashMap::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Reports `hot` tracks at these thresholds (default: none).
    pub fn with_hot_thresholds(self, hot: HotThresholds) -> Self {
        Analytics { hot, ..self }
    }

    pub fn zones(&self) -> &Zones {
        &self.zones
    }

    /// Forgets every track's place and all counts (with [`Tracker::reset`]).
    pub fn reset(&mut self) {
        self.places.clear();
        self.counts.clear();
    }

    /// Every zone's count per label that is not zero, in zone then label order.
    pub fn occupancy(&self) -> Vec<Occupancy> {
        self.counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((z, label), &count)| Occupancy {
                zone: self.zones.zones[*z].name.clone(),
                label: label.clone(),
                count,
            })
            .collect()
    }

    /// The events of the frame the tracker has just taken (`update` is what
    /// [`Tracker::update`] returned); `time` is the frame's time in seconds.
    pub fn update(&mut self, tracker: &Tracker, update: &FrameUpdate, time: f64) -> FrameEvents {
        let before = self.counts.clone();
        let mut events = Vec::new();
        for &id in &update.started {
            if let Some(t) = tracker.track(id) {
                events.push(Event::of(EventKind::New, t));
            }
        }
        for t in tracker.tracks() {
            if t.state == TrackState::Tracked {
                self.follow(t, time, &mut events);
            }
        }
        for t in &update.ended {
            self.leave_all(t, time, &mut events);
            events.push(Event::of(EventKind::End, t));
        }
        let occupancy = self.changed_counts(&before);
        FrameEvents { events, occupancy }
    }

    /// Moves a matched track's point: its temperature, zone visits, loitering, line
    /// crossings.
    fn follow(&mut self, t: &Track, time: f64, events: &mut Vec<Event>) {
        let point = reference_point(t.bbox);
        let (n_zones, n_lines) = (self.zones.zones.len(), self.zones.lines.len());
        let place = self.places.entry(t.id).or_insert_with(|| Place {
            visits: vec![None; n_zones],
            off_line: vec![None; n_lines],
            hot: false,
        });
        if !place.hot
            && let (Some(limit), Some(temperature)) = (self.hot.of(&t.label), &t.temperature)
            && temperature.hottest() >= limit
        {
            place.hot = true;
            events.push(Event {
                temperature: Some(temperature.hottest()),
                ..Event::of(EventKind::Hot, t)
            });
        }
        for (z, zone) in self.zones.zones.iter().enumerate() {
            if !zone.applies_to(&t.label) {
                continue;
            }
            let key = (z, t.label.clone());
            let zone_event = |kind, dwell| Event {
                zone: Some(zone.name.clone()),
                dwell,
                ..Event::of(kind, t)
            };
            match (place.visits[z].as_mut(), zone.contains(point)) {
                (None, true) => {
                    place.visits[z] = Some(Visit {
                        since: time,
                        loitered: false,
                    });
                    *self.counts.entry(key).or_default() += 1;
                    events.push(zone_event(EventKind::Enter, None));
                }
                (Some(visit), false) => {
                    let dwell = time - visit.since;
                    place.visits[z] = None;
                    decrement(&mut self.counts, key);
                    events.push(zone_event(EventKind::Exit, Some(dwell)));
                }
                (Some(visit), true) => {
                    let dwell = time - visit.since;
                    if self.loiter_seconds > 0.0 && !visit.loitered && dwell >= self.loiter_seconds
                    {
                        visit.loitered = true;
                        events.push(zone_event(EventKind::Loiter, Some(dwell)));
                    }
                }
                (None, false) => {}
            }
        }
        for (line, last) in self.zones.lines.iter().zip(&mut place.off_line) {
            if !line.applies_to(&t.label) || line.side(point).is_none() {
                continue;
            }
            if let Some(side) = last.and_then(|from| line.crossing(from, point)) {
                events.push(Event {
                    line: Some(line.name.clone()),
                    direction: Some(side),
                    ..Event::of(EventKind::Cross, t)
                });
            }
            *last = Some(point);
        }
    }

    /// An ended track leaves every zone it was in.
    fn leave_all(&mut self, t: &Track, time: f64, events: &mut Vec<Event>) {
        let Some(place) = self.places.remove(&t.id) else {
            return;
        };
        for (z, visit) in place.visits.iter().enumerate() {
            if let Some(visit) = visit {
                decrement(&mut self.counts, (z, t.label.clone()));
                events.push(Event {
                    zone: Some(self.zones.zones[z].name.clone()),
                    dwell: Some(time - visit.since),
                    ..Event::of(EventKind::Exit, t)
                });
            }
        }
    }

    fn changed_counts(&mut self, before: &BTreeMap<(usize, String), u32>) -> Vec<Occupancy> {
        let mut keys: Vec<&(usize, String)> = before.keys().chain(self.counts.keys()).collect();
        keys.sort();
        keys.dedup();
        let changed = keys
            .into_iter()
            .filter_map(|k| {
                let (was, now) = (
                    before.get(k).copied().unwrap_or(0),
                    self.counts.get(k).copied().unwrap_or(0),
                );
                (was != now).then(|| Occupancy {
                    zone: self.zones.zones[k.0].name.clone(),
                    label: k.1.clone(),
                    count: now,
                })
            })
            .collect();
        // Zero counts carry no information once reported: the map stays bounded.
        self.counts.retain(|_, n| *n > 0);
        changed
    }
}

fn decrement(counts: &mut BTreeMap<(usize, String), u32>, key: (usize, String)) {
    if let Some(n) = counts.get_mut(&key) {
        *n = n.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detection;
    use crate::imaging::radiometry::BoxTemperature;
    use crate::track::tracker::TrackerConfig;
    use crate::track::zones::{Line, Zone};

    fn person(x: f32, y: f32) -> Detection {
        Detection {
            class_id: 0,
            label: "person".into(),
            confidence: 0.9,
            bbox: [x - 10.0, y - 40.0, x + 10.0, y],
            temperature: None,
        }
    }

    fn zones() -> Zones {
        Zones {
            zones: vec![Zone {
                name: "gate".into(),
                polygon: vec![[100.0, 0.0], [200.0, 0.0], [200.0, 300.0], [100.0, 300.0]],
                labels: None,
            }],
            lines: vec![Line {
                name: "entry".into(),
                points: [[250.0, 0.0], [250.0, 300.0]],
                labels: Some(vec!["person".into()]),
            }],
        }
    }

    /// A person walking right along y = 150, one step per frame at 10 fps; then gone.
    fn walk(steps: &[f32], loiter_seconds: f64) -> Vec<(u32, String)> {
        let mut tracker = Tracker::new(TrackerConfig {
            lost_frames: 2,
            ..TrackerConfig::default()
        });
        let mut analytics = Analytics::new(zones(), loiter_seconds);
        let mut seen = Vec::new();
        let frames = steps.iter().map(|&x| vec![person(x, 150.0)]);
        for (f, dets) in frames.chain(std::iter::repeat_n(Vec::new(), 4)).enumerate() {
            let u = tracker.update(&dets);
            let fe = analytics.update(&tracker, &u, f as f64 / 10.0);
            for e in fe.events {
                let what = match (&e.zone, &e.line, e.direction) {
                    (Some(z), _, _) => format!("{} {z}", e.kind.name()),
                    (_, Some(l), Some(d)) => format!("{} {l} {}", e.kind.name(), d.name()),
                    _ => e.kind.name().to_string(),
                };
                seen.push((f as u32, what));
            }
            for o in fe.occupancy {
                seen.push((
                    f as u32,
                    format!("count {} {} {}", o.zone, o.label, o.count),
                ));
            }
        }
        assert!(analytics.occupancy().is_empty(), "counts back to zero");
        seen
    }

    #[test]
    fn a_walk_through_a_zone_and_over_a_line_gives_each_event_once() {
        let steps: Vec<f32> = (0..30).map(|i| 40.0 + 10.0 * i as f32).collect();
        let seen = walk(&steps, 0.0);
        let expected: Vec<(u32, String)> = vec![
            (2, "new".into()),
            (6, "enter gate".into()),
            (6, "count gate person 1".into()),
            (16, "exit gate".into()),
            (16, "count gate person 0".into()),
            // x goes 240 -> 250 (on the line) -> 260: one crossing, at frame 22, to the
            // line's left (the line points down the image; +x is on its left).
            (22, "cross entry left".into()),
            (32, "end".into()),
        ];
        assert_eq!(seen, expected);
    }

    #[test]
    fn loitering_is_reported_once_per_visit_and_an_ending_track_exits() {
        // Walks slowly into the gate and stands there for 3 s at 10 fps, then vanishes.
        let mut steps: Vec<f32> = (0..14).map(|i| 80.0 + 5.0 * i as f32).collect();
        steps.extend(std::iter::repeat_n(150.0, 30));
        let seen = walk(&steps, 2.0);
        let kinds: Vec<&str> = seen.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(
            kinds,
            vec![
                "new",
                "enter gate",
                "count gate person 1",
                "loiter gate",
                "exit gate",
                "end",
                "count gate person 0"
            ]
        );
        let enter = seen.iter().find(|(_, w)| w == "enter gate").unwrap().0;
        let loiter = seen.iter().find(|(_, w)| w == "loiter gate").unwrap().0;
        assert_eq!(loiter - enter, 20, "2 s at 10 fps");
    }

    /// A detection of `label` at x with a box maximum of `max` °C.
    fn reading(label: &str, class_id: usize, x: f32, max: f32) -> Detection {
        Detection {
            class_id,
            label: label.into(),
            temperature: Some(BoxTemperature {
                max,
                median: max - 8.0,
                p90: max - 2.0,
            }),
            ..person(x, 150.0)
        }
    }

    /// The `hot` events (frame, track, °C) of `frames` of detections.
    fn hot_events(hot: &str, frames: &[Vec<Detection>]) -> Vec<(usize, u64, Option<f32>)> {
        let mut tracker = Tracker::new(TrackerConfig {
            min_hits: 1,
            ..TrackerConfig::default()
        });
        let mut analytics =
            Analytics::new(Zones::default(), 0.0).with_hot_thresholds(hot.parse().unwrap());
        let mut seen = Vec::new();
        for (f, dets) in frames.iter().enumerate() {
            let u = tracker.update(dets);
            for e in analytics.update(&tracker, &u, f as f64).events {
                if e.kind == EventKind::Hot {
                    seen.push((f, e.track_id, e.temperature));
                }
            }
        }
        seen
    }

    #[test]
    fn hot_is_reported_once_per_track_when_its_maximum_reaches_the_threshold() {
        // Heats up past 90, cools down, heats up again: one event, at the first frame
        // at or above the threshold, with that reading.
        let maxima = [70.0, 85.0, 90.0, 95.0, 60.0, 99.0, 98.0];
        let frames: Vec<Vec<Detection>> = maxima
            .iter()
            .map(|&m| vec![reading("car", 1, 100.0, m)])
            .collect();
        assert_eq!(hot_events("car:90", &frames), vec![(2, 1, Some(90.0))]);
        assert!(
            hot_events("", &frames).is_empty(),
            "no thresholds, no events"
        );
        assert!(hot_events("car:100", &frames).is_empty(), "never reached");
    }

    #[test]
    fn each_label_has_its_threshold_and_star_covers_the_rest() {
        let frames = vec![vec![
            reading("person", 0, 50.0, 37.0),
            reading("car", 1, 150.0, 80.0),
            reading("bicycle", 2, 250.0, 65.0),
        ]];
        // Tracks 1, 2, 3 in detection order.
        assert_eq!(
            hot_events("person:36,car:90,*:60", &frames),
            vec![(0, 1, Some(37.0)), (0, 3, Some(65.0))]
        );
        assert_eq!(
            hot_events("car:70", &frames),
            vec![(0, 2, Some(80.0))],
            "without `*`, unlisted labels are never hot"
        );
    }

    #[test]
    fn events_carry_the_latest_reading_and_none_without_radiometry() {
        let mut tracker = Tracker::new(TrackerConfig {
            min_hits: 1,
            lost_frames: 1,
            ..TrackerConfig::default()
        });
        let mut analytics =
            Analytics::new(zones(), 0.0).with_hot_thresholds("person:38".parse().unwrap());
        let mut kinds = Vec::new();
        for (f, dets) in [vec![reading("person", 0, 120.0, 36.5)], vec![], vec![]]
            .iter()
            .enumerate()
        {
            let u = tracker.update(dets);
            for e in analytics.update(&tracker, &u, f as f64).events {
                kinds.push((e.kind.name(), e.temperature));
            }
        }
        assert_eq!(
            kinds,
            vec![
                ("new", Some(36.5)),
                ("enter", Some(36.5)),
                ("exit", Some(36.5)),
                ("end", Some(36.5))
            ]
        );
        let u = tracker.update(&[person(120.0, 150.0)]);
        let events = analytics.update(&tracker, &u, 3.0).events;
        assert_eq!(events[0].kind, EventKind::New);
        assert_eq!(events[0].temperature, None, "no radiometry");
    }
}
