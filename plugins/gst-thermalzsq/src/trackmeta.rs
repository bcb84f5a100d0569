//! `thermaltrack`'s events on the buffers themselves, for elements downstream.
//!
//! Element messages go to the application; a publisher element further down the
//! pipeline (MQTT, a VMS bridge) sees only buffers. So each frame that has events or
//! zone-count changes carries a GStreamer custom meta (1.20) named [`META_NAME`] whose
//! structure holds them, in the same structures the element posts as messages
//! (`thermaltrack-event`, `thermaltrack-occupancy`). [`read`] turns it back into the
//! engine's types. The meta has no tags, so transforms that copy metas keep it.

use std::sync::LazyLock;

use gst::meta::CustomMeta;
use thermalzsq::track::{Event, EventKind, Occupancy, Side};

/// The custom meta's registered name (and its structure's name).
pub const META_NAME: &str = "ThermalTrackEventsMeta";

static REGISTERED: LazyLock<()> = LazyLock::new(|| CustomMeta::register(META_NAME, &[]));

/// Registers the meta (once per process; GStreamer must be initialised).
pub fn register() {
    LazyLock::force(&REGISTERED);
}

/// One frame's events and zone-count changes, as `thermaltrack` attached them.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackEvents {
    /// The frame's index in the stream (as in the `thermaltrack` message).
    pub frame: u64,
    pub pts: Option<gst::ClockTime>,
    pub events: Vec<Event>,
    /// Counts that changed in this frame (new values).
    pub occupancy: Vec<Occupancy>,
}

/// The events `thermaltrack` attached to `buf`, if any.
pub fn read(buf: &gst::BufferRef) -> Option<TrackEvents> {
    let meta = CustomMeta::from_buffer(buf, META_NAME).ok()?;
    let s = meta.structure();
    let list = |field| {
        s.get::<gst::List>(field)
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.get::<gst::Structure>().ok())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    Some(TrackEvents {
        frame: s.get("frame").ok()?,
        pts: pts_from(s.get("pts").ok()?),
        events: list("events")
            .iter()
            .filter_map(|e| event_from(e))
            .collect(),
        occupancy: list("occupancy")
            .iter()
            .filter_map(|o| occupancy_from(o))
            .collect(),
    })
}

/// Attaches one frame's events and count changes to `buf`.
pub(crate) fn attach(
    buf: &mut gst::BufferRef,
    frame: u64,
    pts: Option<gst::ClockTime>,
    events: &[Event],
    occupancy: &[Occupancy],
) -> Result<(), gst::glib::BoolError> {
    register();
    let mut meta = CustomMeta::add(buf, META_NAME)?;
    let s = meta.mut_structure();
    s.set("frame", frame);
    s.set("pts", pts_field(pts));
    s.set(
        "events",
        gst::List::new(events.iter().map(|e| event_structure(e, frame, pts))),
    );
    s.set(
        "occupancy",
        gst::List::new(occupancy.iter().map(|o| occupancy_structure(o, frame, pts))),
    );
    Ok(())
}

/// `pts` as the messages carry it: nanoseconds, `G_MAXUINT64` for none (as
/// `thermaldetect` does).
pub(crate) fn pts_field(pts: Option<gst::ClockTime>) -> u64 {
    pts.map_or(u64::MAX, |t| t.nseconds())
}

fn pts_from(ns: u64) -> Option<gst::ClockTime> {
    (ns != u64::MAX).then(|| gst::ClockTime::from_nseconds(ns))
}

/// `thermaltrack-event` {type, track-id, label, class-id, confidence, x, y, width,
/// height, zone | line, direction, dwell, temperature (°C), frame, pts}.
pub(crate) fn event_structure(
    e: &Event,
    frame: u64,
    pts: Option<gst::ClockTime>,
) -> gst::Structure {
    let [x0, y0, x1, y1] = e.bbox.map(f64::from);
    gst::Structure::builder("thermaltrack-event")
        .field("type", e.kind.name())
        .field("track-id", e.track_id)
        .field("label", e.label.as_str())
        .field("class-id", e.class_id as i32)
        .field("confidence", e.confidence as f64)
        .field("x", x0)
        .field("y", y0)
        .field("width", x1 - x0)
        .field("height", y1 - y0)
        .field_if_some("zone", e.zone.as_deref())
        .field_if_some("line", e.line.as_deref())
        .field_if_some("direction", e.direction.map(Side::name))
        .field_if_some("dwell", e.dwell)
        .field_if_some("temperature", e.temperature.map(f64::from))
        .field("frame", frame)
        .field("pts", pts_field(pts))
        .build()
}

/// `thermaltrack-occupancy` {zone, label, count, frame, pts}.
pub(crate) fn occupancy_structure(
    o: &Occupancy,
    frame: u64,
    pts: Option<gst::ClockTime>,
) -> gst::Structure {
    gst::Structure::builder("thermaltrack-occupancy")
        .field("zone", o.zone.as_str())
        .field("label", o.label.as_str())
        .field("count", o.count)
        .field("frame", frame)
        .field("pts", pts_field(pts))
        .build()
}

fn event_from(s: &gst::StructureRef) -> Option<Event> {
    let kind: String = s.get("type").ok()?;
    let [x, y, w, h] = ["x", "y", "width", "height"].map(|f| s.get::<f64>(f).unwrap_or(0.0));
    Some(Event {
        kind: EventKind::ALL.into_iter().find(|k| k.name() == kind)?,
        track_id: s.get("track-id").ok()?,
        label: s.get("label").ok()?,
        class_id: s.get::<i32>("class-id").ok()?.max(0) as usize,
        confidence: s.get::<f64>("confidence").ok()? as f32,
        bbox: [x, y, x + w, y + h].map(|v| v as f32),
        zone: s.get("zone").ok(),
        line: s.get("line").ok(),
        direction: s.get::<String>("direction").ok().and_then(|d| {
            [Side::Left, Side::Right]
                .into_iter()
                .find(|s| s.name() == d)
        }),
        dwell: s.get("dwell").ok(),
        temperature: s.get::<f64>("temperature").ok().map(|c| c as f32),
    })
}

fn occupancy_from(s: &gst::StructureRef) -> Option<Occupancy> {
    Some(Occupancy {
        zone: s.get("zone").ok()?,
        label: s.get("label").ok()?,
        count: s.get("count").ok()?,
    })
}
