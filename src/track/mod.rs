//! Multi-object tracking: identities across frames, zones and lines, events.
//!
//! Why in the engine: the `thermaltrack` element, `zsq eval --tracks` and the benches
//! must run the same tracker, and none of it needs GStreamer. [`Tracker`] turns each
//! frame's detections into tracks with persistent ids; [`Analytics`] turns tracks into
//! the events a security system acts on, against the camera's [`Zones`].

pub mod assign;
mod events;
mod kalman;
pub mod record;
mod tracker;
mod zones;

pub use events::{Analytics, Event, EventKind, FrameEvents, Occupancy};
pub use tracker::{FrameUpdate, Method, Track, TrackState, Tracker, TrackerConfig, iou};
pub use zones::{Line, Side, Zone, Zones, ZonesError, reference_point};
