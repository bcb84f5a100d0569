//! Topics and JSON payloads: what a consumer of the broker sees.
//!
//! Every payload is one JSON object stamped with the wall-clock `time` (RFC 3339,
//! UTC) it was published at, and the stream's `pts` (nanoseconds, `null` when the
//! frame had none) and `frame` index, so that consumers can both order messages and
//! find the frame in a recording. Temperatures (°C) appear only where the camera is
//! radiometric; without them the payloads are as they always were.

use gst::glib;
use gst_video::VideoRegionOfInterestMeta;
use serde::Serialize;
use thermalzsq::track::record::TemperatureRecord;
use thermalzsq::track::{Event, Occupancy};

use super::client::Message;
use crate::trackmeta::TrackEvents;

/// The topics of one camera: `{prefix}/{camera}/...`.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

impl Topics {
    /// Checks the prefix and camera name: MQTT wildcards cannot be published to, and
    /// a `/` in the camera name would shift every topic level after it.
    pub fn new(prefix: &str, camera: &str) -> Result<Topics, String> {
        if prefix.is_empty() || prefix.contains(['+', '#']) {
            return Err(format!(
                "topic-prefix '{prefix}' must be non-empty, without '+' or '#'"
            ));
        }
        if camera.is_empty() || camera.contains(['/', '+', '#']) {
            return Err(format!(
                "camera '{camera}' must be non-empty, without '/', '+' or '#'"
            ));
        }
        Ok(Topics {
            base: format!("{}/{camera}", prefix.trim_end_matches('/')),
        })
    }

    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    pub fn events(&self) -> String {
        format!("{}/events", self.base)
    }

    pub fn tracks(&self) -> String {
        format!("{}/tracks", self.base)
    }

    pub fn zone(&self, zone: &str, label: &str) -> String {
        format!("{}/zones/{}/{}", self.base, level(zone), level(label))
    }
}

/// A zone or label as one topic level: the characters MQTT gives a meaning become `_`.
fn level(name: &str) -> String {
    if name.is_empty() {
        return "_".into();
    }
    name.replace(['/', '+', '#'], "_")
}

/// The time, pts and frame every payload starts with.
#[derive(Debug, Clone, Serialize)]
pub struct Stamp {
    pub time: String,
    pub pts: Option<u64>,
    pub frame: u64,
}

impl Stamp {
    pub fn now(pts: Option<gst::ClockTime>, frame: u64) -> Stamp {
        Stamp {
            time: now_rfc3339(),
            pts: pts.map(gst::ClockTime::nseconds),
            frame,
        }
    }
}

/// Now as RFC 3339 in UTC with microseconds, e.g. `2025-06-01T12:00:03.250000Z`.
fn now_rfc3339() -> String {
    glib::DateTime::now_utc()
        .and_then(|t| t.format("%Y-%m-%dT%H:%M:%S.%fZ"))
        .map(String::from)
        .unwrap_or_default()
}

/// `{prefix}/{camera}/events`: one per event.
#[derive(Serialize)]
struct EventPayload<'a> {
    #[serde(flatten)]
    stamp: &'a Stamp,
    #[serde(rename = "type")]
    kind: &'a str,
    track_id: u64,
    label: &'a str,
    class_id: usize,
    confidence: f32,
    /// `[x0, y0, x1, y1]` in frame pixels.
    #[serde(rename = "box")]
    bbox: [f32; 4],
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'a str>,
    /// Seconds in the zone (`exit`, `loiter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    dwell: Option<f64>,
    /// The track's box maximum, °C (for `hot`, the one that reached the threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature_c: Option<f32>,
}

impl<'a> EventPayload<'a> {
    fn new(stamp: &'a Stamp, e: &'a Event) -> Self {
        EventPayload {
            stamp,
            kind: e.kind.name(),
            track_id: e.track_id,
            label: &e.label,
            class_id: e.class_id,
            confidence: e.confidence,
            bbox: e.bbox,
            zone: e.zone.as_deref(),
            line: e.line.as_deref(),
            direction: e.direction.map(|d| d.name()),
            dwell: e.dwell,
            temperature_c: e.temperature,
        }
    }
}

/// `{prefix}/{camera}/zones/{zone}/{label}` (retained): the count after a change.
#[derive(Serialize)]
struct OccupancyPayload<'a> {
    #[serde(flatten)]
    stamp: &'a Stamp,
    count: u32,
}

/// `{prefix}/{camera}/tracks`: the frame's confirmed tracks.
#[derive(Serialize)]
struct TracksPayload<'a> {
    #[serde(flatten)]
    stamp: &'a Stamp,
    tracks: Vec<TrackPayload>,
}

#[derive(Serialize)]
struct TrackPayload {
    id: u64,
    label: String,
    class_id: i32,
    confidence: f32,
    #[serde(rename = "box")]
    bbox: [u32; 4],
    age: u32,
    /// This frame's reading of the box.
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature_c: Option<TemperatureRecord>,
    /// The hottest box maximum of the track's life, °C.
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature_max_c: Option<f32>,
}

/// °C from a structure's double field, as the f32 it was measured in (so that JSON
/// prints 35.8, not 35.79999923706055).
fn celsius(s: &gst::StructureRef, field: &str) -> Option<f32> {
    s.get::<f64>(field).ok().map(|c| c as f32)
}

/// A `detection` structure's temperature: all three fields, or none.
fn reading(detection: &gst::StructureRef) -> Option<TemperatureRecord> {
    Some(TemperatureRecord {
        max: celsius(detection, "temperature-max")?,
        median: celsius(detection, "temperature-median")?,
        p90: celsius(detection, "temperature-p90")?,
    })
}

fn json(topic: String, retain: bool, payload: &impl Serialize) -> Message {
    Message {
        topic,
        // Plain structs of strings and numbers always serialise.
        payload: serde_json::to_vec(payload).unwrap_or_default(),
        retain,
    }
}

/// The event and occupancy messages of one frame, events first, in their order.
pub fn frame_messages(topics: &Topics, stamp: &Stamp, frame: &TrackEvents) -> Vec<Message> {
    let events = frame
        .events
        .iter()
        .map(|e| json(topics.events(), false, &EventPayload::new(stamp, e)));
    let counts = frame.occupancy.iter().map(|o: &Occupancy| {
        json(
            topics.zone(&o.zone, &o.label),
            true,
            &OccupancyPayload {
                stamp,
                count: o.count,
            },
        )
    });
    events.chain(counts).collect()
}

/// The tracks message of a frame: the region-of-interest metas `thermaltrack` gave a
/// `tracking` param (its confirmed tracks), with `thermaldetect`'s `detection` fields
/// (the reading of the frame) and the track's life maximum from `tracking`.
pub fn tracks_message(topics: &Topics, stamp: &Stamp, buf: &gst::BufferRef) -> Message {
    let tracks = buf
        .iter_meta::<VideoRegionOfInterestMeta>()
        .filter_map(|m| {
            let tracking = m.param("tracking")?;
            let detection = m.param("detection");
            let (x, y, w, h) = m.rect();
            Some(TrackPayload {
                id: tracking.get("id").ok()?,
                label: detection
                    .and_then(|d| d.get::<String>("label").ok())
                    .unwrap_or_else(|| m.roi_type().to_string()),
                class_id: detection.and_then(|d| d.get("class-id").ok()).unwrap_or(-1),
                confidence: detection
                    .and_then(|d| d.get::<f64>("confidence").ok())
                    .unwrap_or(0.0) as f32,
                bbox: [x, y, x + w, y + h],
                age: tracking.get("age").unwrap_or(0),
                temperature_c: detection.and_then(reading),
                temperature_max_c: celsius(tracking, "temperature-hottest"),
            })
        })
        .collect();
    json(topics.tracks(), false, &TracksPayload { stamp, tracks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_prefix_and_camera_and_escape_wildcards() {
        let t = Topics::new("site/a/", "gate-cam").unwrap();
        assert_eq!(t.status(), "site/a/gate-cam/status");
        assert_eq!(
            t.zone("car park", "a/b+#"),
            "site/a/gate-cam/zones/car park/a_b__"
        );
        assert!(Topics::new("thermalzsq", "cam/1").is_err());
        assert!(Topics::new("thermal#", "cam").is_err());
    }

    #[test]
    fn time_is_rfc3339_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2025-06-01T12:00:03.250000Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}
