//! What `thermaltrack` reports per frame: element messages and the JSON line.

use thermalzsq::track::record::FrameRecord;
use thermalzsq::track::{FrameEvents, Track};

use crate::trackmeta::{event_structure, occupancy_structure, pts_field};

/// One frame's tracks and events, ready to leave the element.
pub struct FrameOutput {
    pub frame: u64,
    pub pts: Option<gst::ClockTime>,
    /// The confirmed tracks matched in this frame.
    pub tracks: Vec<Track>,
    pub events: FrameEvents,
}

impl FrameOutput {
    /// `thermaltrack` {frame, pts, tracks}, then one `thermaltrack-event` per event and
    /// one `thermaltrack-occupancy` per changed count, in that order.
    pub fn messages(&self) -> Vec<gst::Structure> {
        let tracks = gst::List::new(self.tracks.iter().map(|t| {
            let [x0, y0, x1, y1] = t.bbox.map(f64::from);
            let latest = t.temperature.as_ref().map(|r| r.latest());
            gst::Structure::builder("track")
                .field("id", t.id)
                .field("label", t.label.as_str())
                .field("class-id", t.class_id as i32)
                .field("confidence", t.confidence as f64)
                .field("x", x0)
                .field("y", y0)
                .field("width", x1 - x0)
                .field("height", y1 - y0)
                .field("age", t.age)
                .field_if_some("temperature-max", latest.map(|r| r.max as f64))
                .field_if_some("temperature-median", latest.map(|r| r.median as f64))
                .field_if_some("temperature-p90", latest.map(|r| r.p90 as f64))
                .field_if_some(
                    "temperature-hottest",
                    t.temperature.as_ref().map(|r| r.hottest() as f64),
                )
                .build()
        }));
        let frame = gst::Structure::builder("thermaltrack")
            .field("frame", self.frame)
            .field("pts", pts_field(self.pts))
            .field("tracks", tracks)
            .build();
        std::iter::once(frame)
            .chain(
                self.events
                    .events
                    .iter()
                    .map(|e| event_structure(e, self.frame, self.pts)),
            )
            .chain(
                self.events
                    .occupancy
                    .iter()
                    .map(|o| occupancy_structure(o, self.frame, self.pts)),
            )
            .collect()
    }

    /// The `json-location` line, without the newline.
    pub fn json_line(&self) -> String {
        FrameRecord::new(
            self.frame,
            self.pts.map(|t| t.nseconds()),
            &self.tracks,
            &self.events.events,
        )
        .to_json_line()
    }
}
