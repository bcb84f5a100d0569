//! Multi-object tracking: identities across frames, zones and lines, events.
//!
//! Why in the engine: the `thermaltrack` element, `zsq eval --tracks` and the benches
//! must run the same tracker, and none of it needs GStreamer. [`Tracker`] turns each
//! frame's detections into tracks with persistent ids; [`Analytics`] turns tracks into
//! the events a security system acts on, against the camera's [`Zones`]; with a
//! radiometric camera a track keeps its [`TrackTemperature`] and hot ones are reported
//! at their label's [`HotThresholds`].

pub mod assign;
mod events;
mod kalman;
pub mod record;
mod temperature;
mod tracker;
mod zones;

pub use events::{Analytics, Event, EventKind, FrameEvents, Occupancy};
pub use temperature::{HISTORY_LEN, HotThresholds, Reading, ThresholdError, TrackTemperature};
pub use tracker::{FrameUpdate, Method, Track, TrackState, Tracker, TrackerConfig, iou};
pub use zones::{Line, Side, Zone, Zones, ZonesError, reference_point};
