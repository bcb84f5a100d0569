//! Tracks and events as JSON lines: one object per frame, the `thermaltrack` element's
//! `json-location` output and what `zsq eval --tracks` reads back.
//!
//! ```json
//! {"frame":12,"pts":400000000,"tracks":[{"id":7,"label":"person","class_id":0,
//!  "confidence":0.91,"box":[x0,y0,x1,y1],"age":12}],
//!  "events":[{"type":"enter","track_id":7,"label":"person","zone":"gate"}]}
//! ```
//!
//! With a radiometric camera tracks add `"temperature_c":{"max":35.9,"median":24.1,
//! "p90":31.0}` (the latest reading) and `"temperature_max_c"` (the hottest box maximum
//! of the track's life), events `"temperature_c"`; without one the keys are left out,
//! so lines stay as they were.

use serde::{Deserialize, Serialize};

use super::events::Event;
use super::tracker::Track;
use crate::imaging::radiometry::BoxTemperature;

/// One frame's tracks and events, as written on one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    pub frame: u64,
    /// Presentation timestamp in nanoseconds, when the frame had one.
    pub pts: Option<u64>,
    pub tracks: Vec<TrackRecord>,
    pub events: Vec<EventRecord>,
}

/// A confirmed track seen in the frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    pub id: u64,
    pub label: String,
    pub class_id: usize,
    pub confidence: f32,
    /// `[x0, y0, x1, y1]` in frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Frames since the track started.
    pub age: u32,
    /// The latest reading, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<TemperatureRecord>,
    /// The hottest box maximum of the track's life, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_max_c: Option<f32>,
}

/// A box's temperature, °C: hottest inner pixel, median, 90th percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TemperatureRecord {
    pub max: f32,
    pub median: f32,
    pub p90: f32,
}

impl From<BoxTemperature> for TemperatureRecord {
    fn from(t: BoxTemperature) -> Self {
        TemperatureRecord {
            max: t.max,
            median: t.median,
            p90: t.p90,
        }
    }
}

/// One event; `zone`, `line` and `direction` only where the kind has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    #[serde(rename = "type")]
    pub kind: String,
    pub track_id: u64,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// `left` or `right` of the line's orientation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The event's temperature, °C (see [`Event::temperature`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f32>,
}

impl From<&Track> for TrackRecord {
    fn from(t: &Track) -> Self {
        TrackRecord {
            id: t.id,
            label: t.label.clone(),
            class_id: t.class_id,
            confidence: t.confidence,
            bbox: t.bbox,
            age: t.age,
            temperature_c: t.temperature.as_ref().map(|r| r.latest().into()),
            temperature_max_c: t.temperature.as_ref().map(|r| r.hottest()),
        }
    }
}

impl From<&Event> for EventRecord {
    fn from(e: &Event) -> Self {
        EventRecord {
            kind: e.kind.name().to_string(),
            track_id: e.track_id,
            label: e.label.clone(),
            zone: e.zone.clone(),
            line: e.line.clone(),
            direction: e.direction.map(|d| d.name().to_string()),
            temperature_c: e.temperature,
        }
    }
}

impl FrameRecord {
    /// `tracks` are the ones to report (the element gives the confirmed tracks matched
    /// in this frame).
    pub fn new<'a>(
        frame: u64,
        pts: Option<u64>,
        tracks: impl IntoIterator<Item = &'a Track>,
        events: &[Event],
    ) -> Self {
        FrameRecord {
            frame,
            pts,
            tracks: tracks.into_iter().map(TrackRecord::from).collect(),
            events: events.iter().map(EventRecord::from).collect(),
        }
    }

    /// The JSON line, without the newline.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detection;
    use crate::track::{EventKind, Side, Tracker, TrackerConfig};

    #[test]
    fn json_line_has_the_documented_shape() {
        let mut tracker = Tracker::new(TrackerConfig {
            min_hits: 1,
            ..TrackerConfig::default()
        });
        let person = Detection {
            class_id: 0,
            label: "person".into(),
            confidence: 0.91,
            bbox: [1.0, 2.0, 30.5, 40.0],
            temperature: None,
        };
        tracker.update(std::slice::from_ref(&person));
        let track = &tracker.tracks()[0];
        let enter = Event {
            kind: EventKind::Enter,
            track_id: track.id,
            label: "person".into(),
            class_id: 0,
            confidence: 0.91,
            bbox: person.bbox,
            zone: Some("gate".into()),
            line: None,
            direction: None,
            dwell: None,
            temperature: None,
        };
        let cross = Event {
            kind: EventKind::Cross,
            zone: None,
            line: Some("entry".into()),
            direction: Some(Side::Left),
            ..enter.clone()
        };
        let line = FrameRecord::new(7, Some(233_333_333), [track], &[enter, cross]).to_json_line();
        assert_eq!(
            line,
            r#"{"frame":7,"pts":233333333,"tracks":[{"id":1,"label":"person","class_id":0,"confidence":0.91,"box":[1.0,2.0,30.5,40.0],"age":1}],"events":[{"type":"enter","track_id":1,"label":"person","zone":"gate"},{"type":"cross","track_id":1,"label":"person","line":"entry","direction":"left"}]}"#
        );
        let back: FrameRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back.events[1].direction.as_deref(), Some("left"));
        assert_eq!(back.tracks[0].bbox, [1.0, 2.0, 30.5, 40.0]);
    }

    #[test]
    fn temperatures_appear_in_the_json_line_only_where_known() {
        let mut tracker = Tracker::new(TrackerConfig {
            min_hits: 1,
            ..TrackerConfig::default()
        });
        let reading = |max| BoxTemperature {
            max,
            median: 24.1,
            p90: 31.0,
        };
        let mut machine = Detection {
            class_id: 2,
            label: "pump".into(),
            confidence: 0.8,
            bbox: [10.0, 20.0, 50.0, 60.0],
            temperature: Some(reading(95.5)),
        };
        tracker.update(std::slice::from_ref(&machine));
        machine.temperature = Some(reading(35.9));
        tracker.update(std::slice::from_ref(&machine));
        let track = &tracker.tracks()[0];
        let hot = Event {
            kind: EventKind::Hot,
            track_id: 1,
            label: "pump".into(),
            class_id: 2,
            confidence: 0.8,
            bbox: machine.bbox,
            zone: None,
            line: None,
            direction: None,
            dwell: None,
            temperature: Some(95.5),
        };
        let line = FrameRecord::new(1, None, [track], &[hot]).to_json_line();
        assert_eq!(
            line,
            r#"{"frame":1,"pts":null,"tracks":[{"id":1,"label":"pump","class_id":2,"confidence":0.8,"box":[10.0,20.0,50.0,60.0],"age":2,"temperature_c":{"max":35.9,"median":24.1,"p90":31.0},"temperature_max_c":95.5}],"events":[{"type":"hot","track_id":1,"label":"pump","temperature_c":95.5}]}"#
        );
        let back: FrameRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back.tracks[0].temperature_max_c, Some(95.5));
        assert_eq!(back.events[0].temperature_c, Some(95.5));
    }
}
