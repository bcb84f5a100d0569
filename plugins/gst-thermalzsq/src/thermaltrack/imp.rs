//! `thermaltrack`: follows the objects `thermaldetect` found from frame to frame, gives
//! each a persistent id, and turns their movements through the camera's zones and over
//! its lines into events; with a radiometric camera, also their temperatures into `hot`
//! events.
//!
//! The tracker and the analytics live in `thermalzsq::track`; this file maps
//! region-of-interest metas to detections and the results back to GStreamer: `tracking`
//! params on the metas, element messages, JSON lines, a custom meta with the events
//! for elements downstream (`crate::trackmeta`), and drawing.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::track::{
    Analytics, FrameEvents, FrameUpdate, HotThresholds, Track, TrackState, Tracker, TrackerConfig,
    Zones,
};

use super::TrackMethod;
use super::outputs::FrameOutput;
use super::overlay::{Overlay, Trails};
use super::rois;
use crate::jsonlines::JsonLines;
use crate::props::{filter_pad_templates, path_from, path_value};
use crate::sync::lock;
use crate::trackmeta;
use crate::videolayout::plane_layout;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "thermaltrack",
        gst::DebugColorFlags::empty(),
        Some("Thermal object tracking, zones and events"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    tracker: TrackerConfig,
    zones: Option<PathBuf>,
    loiter_seconds: f64,
    /// `hot-threshold` as set; parsed at start.
    hot_threshold: Option<String>,
    json_location: Option<PathBuf>,
    post_messages: bool,
    draw: bool,
    draw_temperature: bool,
    draw_trails: bool,
    draw_zones: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tracker: TrackerConfig::default(),
            zones: None,
            loiter_seconds: 30.0,
            hot_threshold: None,
            json_location: None,
            post_messages: true,
            draw: true,
            draw_temperature: true,
            draw_trails: false,
            draw_zones: false,
        }
    }
}

struct State {
    info: Option<gst_video::VideoInfo>,
    format: Option<PixelFormat>,
    tracker: Tracker,
    analytics: Analytics,
    trails: Trails,
    frames: u64,
    /// The latest frame's time in seconds: the dwell times of tracks a reset ends.
    time: f64,
    /// What a reset between two frames ended; leaves with the next frame.
    pending: FrameEvents,
    json: Option<JsonLines>,
}

impl State {
    /// Forgets every identity (flush, seek, discontinuity): what was tracked may have
    /// moved anywhere. The confirmed tracks end, leaving their zones, so that whoever
    /// counts `new`/`end` and zone occupancy downstream comes back to zero.
    fn reset(&mut self) {
        let ended: Vec<Track> = self
            .tracker
            .tracks()
            .iter()
            .filter(|t| t.is_confirmed())
            .cloned()
            .collect();
        self.tracker.reset();
        let update = FrameUpdate {
            ended,
            ..FrameUpdate::default()
        };
        let flushed = self.analytics.update(&self.tracker, &update, self.time);
        self.analytics.reset();
        self.trails.clear();
        self.pending.events.extend(flushed.events);
        self.pending.occupancy.extend(flushed.occupancy);
    }
}

#[derive(Default)]
pub struct ThermalTrack {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

/// A frame's time in seconds: its pts, else its index at the caps' frame rate (else
/// one frame per second).
fn frame_time(pts: Option<gst::ClockTime>, index: u64, info: &gst_video::VideoInfo) -> f64 {
    match pts {
        Some(t) => t.nseconds() as f64 / 1e9,
        None if info.fps().numer() > 0 => {
            index as f64 * info.fps().denom() as f64 / info.fps().numer() as f64
        }
        None => index as f64,
    }
}

fn gst_format(format: PixelFormat) -> gst_video::VideoFormat {
    gst_video::VideoFormat::from_string(format.name())
}

impl ThermalTrack {
    /// Draws `overlay` into the frame in place.
    fn draw(
        &self,
        buf: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        format: PixelFormat,
        overlay: &Overlay,
    ) -> Result<(), gst::FlowError> {
        let cannot_map = |why: &dyn std::fmt::Display| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("Cannot map the frame for drawing: {}", why)
            );
            gst::FlowError::Error
        };
        let layout = plane_layout(buf, info).map_err(|e| cannot_map(&e))?;
        let mut map = buf
            .map_writable()
            .map_err(|_| cannot_map(&"the buffer cannot be written to"))?;
        let mut frame = Frame::in_buffer_mut(
            format,
            info.width() as usize,
            info.height() as usize,
            &mut map,
            &layout,
        )
        .map_err(|e| cannot_map(&e))?;
        overlay.draw(&mut frame);
        Ok(())
    }

    /// At EOS: every JSON line to disk, so the file is whole when the application
    /// sees EOS.
    fn flush_json(&self) {
        let written = match lock(&self.state).as_mut().and_then(|s| s.json.as_mut()) {
            Some(json) => json.flush(),
            None => Ok(()),
        };
        if let Err(e) = written {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ("Cannot write tracks: {}", e)
            );
        }
    }

    fn post(&self, s: gst::Structure) {
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }
}

#[glib::object_subclass]
impl ObjectSubclass for ThermalTrack {
    const NAME: &'static str = "GstThermalTrack";
    type Type = super::ThermalTrack;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for ThermalTrack {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecEnum::builder_with_default("tracker", TrackMethod::from(d.tracker.method))
                    .nick("Tracker")
                    .blurb("bytetrack: Kalman motion model, confident detections first, then low-confidence ones to keep tracks alive; iou: greedy overlap with the last box (the simple baseline)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("high-threshold")
                    .nick("High threshold")
                    .blurb("Detections at or above this confidence are matched first and may start tracks")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.tracker.high_threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("low-threshold")
                    .nick("Low threshold")
                    .blurb("Detections below this confidence are ignored; between the two thresholds they only keep existing tracks alive (bytetrack)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.tracker.low_threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("match-iou")
                    .nick("Match IoU")
                    .blurb("Least overlap (IoU) between a track's expected box and a detection to match them")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.tracker.match_iou)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("lost-frames")
                    .nick("Lost frames")
                    .blurb("Frames a track is kept without a match (occluded, missed) before it ends; found again within them it keeps its id")
                    .default_value(d.tracker.lost_frames)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("min-hits")
                    .nick("Minimum hits")
                    .blurb("Consecutive frames an object must be detected before it becomes a track with an id (1: at once)")
                    .minimum(1)
                    .default_value(d.tracker.min_hits)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("zones")
                    .nick("Zones")
                    .blurb("JSON file of zones and lines in frame pixels: {\"zones\":[{\"name\":\"gate\",\"polygon\":[[x,y],...],\"labels\":[\"person\"]}],\"lines\":[{\"name\":\"entry\",\"points\":[[x0,y0],[x1,y1]]}]} (labels optional: all); a track's position is its box's bottom centre")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("loiter-seconds")
                    .nick("Loiter seconds")
                    .blurb("A track in a zone this long gets one `loiter` event per visit (0: never)")
                    .minimum(0.0)
                    .default_value(d.loiter_seconds)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("hot-threshold")
                    .nick("Hot threshold")
                    .blurb("Per label, the box maximum in °C at which a track gets one `hot` event (radiometric cameras; thermaldetect radiometry set): \"person:38,car:90,*:60\", `*` for every other label; unset: no hot events")
                    .default_value(d.hot_threshold.as_deref())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("json-location")
                    .nick("JSON location")
                    .blurb("Write one JSON line per frame with its tracks and events to this file (to disk in batches, within about a second; all of it at EOS and at stop)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Post a `thermaltrack` element message with the tracks of every frame, one `thermaltrack-event` per event and one `thermaltrack-occupancy` per zone count change")
                    .default_value(d.post_messages)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("draw")
                    .nick("Draw")
                    .blurb("Draw the boxes of confirmed tracks, labelled with label and id (\"person #12\")")
                    .default_value(d.draw)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("draw-temperature")
                    .nick("Draw temperature")
                    .blurb("With a radiometric camera, add each drawn track's box maximum to its label (\"person #12 35.8°C\")")
                    .default_value(d.draw_temperature)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("draw-trails")
                    .nick("Draw trails")
                    .blurb("Draw each track's path over its last 30 frames (bottom centre of its box)")
                    .default_value(d.draw_trails)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("draw-zones")
                    .nick("Draw zones")
                    .blurb("Draw the outlines of the zones and the lines of the zones file")
                    .default_value(d.draw_zones)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let t = &mut s.tracker;
        match pspec.name() {
            "tracker" => {
                t.method = value
                    .get::<TrackMethod>()
                    .expect("type checked upstream")
                    .into()
            }
            "high-threshold" => t.high_threshold = value.get().expect("type checked upstream"),
            "low-threshold" => t.low_threshold = value.get().expect("type checked upstream"),
            "match-iou" => t.match_iou = value.get().expect("type checked upstream"),
            "lost-frames" => t.lost_frames = value.get().expect("type checked upstream"),
            "min-hits" => t.min_hits = value.get().expect("type checked upstream"),
            "zones" => s.zones = path_from(value),
            "loiter-seconds" => s.loiter_seconds = value.get().expect("type checked upstream"),
            "hot-threshold" => s.hot_threshold = value.get().expect("type checked upstream"),
            "json-location" => s.json_location = path_from(value),
            "post-messages" => s.post_messages = value.get().expect("type checked upstream"),
            "draw" => s.draw = value.get().expect("type checked upstream"),
            "draw-temperature" => s.draw_temperature = value.get().expect("type checked upstream"),
            "draw-trails" => s.draw_trails = value.get().expect("type checked upstream"),
            "draw-zones" => s.draw_zones = value.get().expect("type checked upstream"),
            other => unreachable!("no writable property {other}"),
        }
        gst::debug!(CAT, imp = self, "{} set", pspec.name());
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        let t = &s.tracker;
        match pspec.name() {
            "tracker" => TrackMethod::from(t.method).to_value(),
            "high-threshold" => t.high_threshold.to_value(),
            "low-threshold" => t.low_threshold.to_value(),
            "match-iou" => t.match_iou.to_value(),
            "lost-frames" => t.lost_frames.to_value(),
            "min-hits" => t.min_hits.to_value(),
            "zones" => path_value(&s.zones).to_value(),
            "loiter-seconds" => s.loiter_seconds.to_value(),
            "hot-threshold" => s.hot_threshold.to_value(),
            "json-location" => path_value(&s.json_location).to_value(),
            "post-messages" => s.post_messages.to_value(),
            "draw" => s.draw.to_value(),
            "draw-temperature" => s.draw_temperature.to_value(),
            "draw-trails" => s.draw_trails.to_value(),
            "draw-zones" => s.draw_zones.to_value(),
            other => unreachable!("no property {other}"),
        }
    }
}

impl GstObjectImpl for ThermalTrack {}

impl ElementImpl for ThermalTrack {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Thermal object tracker",
                "Filter/Analyzer/Video",
                "Gives thermaldetect's objects persistent ids (ByteTrack or greedy IoU) and \
                 reports new/end, zone enter/exit/loiter, line-crossing and hot events",
                "thermalzsq developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(PixelFormat::ALL.into_iter().map(gst_format))
                .build();
            filter_pad_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for ThermalTrack {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let zones = match &settings.zones {
            Some(path) => Zones::load(path).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::Settings,
                    ("Cannot use zones {}: {}", path.display(), e)
                )
            })?,
            None => Zones::default(),
        };
        let hot: HotThresholds = settings
            .hot_threshold
            .as_deref()
            .unwrap_or("")
            .parse()
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{}", e)))?;
        let json = match &settings.json_location {
            Some(path) => Some(JsonLines::create(path).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("Cannot write tracks to {}: {}", path.display(), e)
                )
            })?),
            None => None,
        };
        gst::debug!(
            CAT,
            imp = self,
            "{:?}, {} zones, {} lines, {:?}",
            settings.tracker,
            zones.zones.len(),
            zones.lines.len(),
            hot
        );
        *lock(&self.state) = Some(State {
            info: None,
            format: None,
            tracker: Tracker::new(settings.tracker),
            analytics: Analytics::new(zones, settings.loiter_seconds).with_hot_thresholds(hot),
            trails: Trails::default(),
            frames: 0,
            time: 0.0,
            pending: FrameEvents::default(),
            json,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = lock(&self.state).take();
        if let Some(mut json) = state.and_then(|s| s.json) {
            json.flush().map_err(|e| {
                gst::error_msg!(gst::ResourceError::Write, ("Cannot write tracks: {}", e))
            })?;
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::FlushStop(_) | gst::EventView::Segment(_) = event.view()
            && let Some(state) = lock(&self.state).as_mut()
        {
            gst::debug!(CAT, imp = self, "{:?}: tracks reset", event.type_());
            state.reset();
        }
        if let gst::EventView::Eos(_) = event.view() {
            self.flush_json();
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let detections = rois::detections(buf);
        let pts = buf.pts();
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let (Some(info), Some(format)) = (state.info.clone(), state.format) else {
            return Err(gst::FlowError::NotNegotiated);
        };
        if buf.flags().contains(gst::BufferFlags::DISCONT) {
            gst::debug!(CAT, imp = self, "discontinuity: tracks reset");
            state.reset();
        }
        let index = state.frames;
        state.frames += 1;
        state.time = frame_time(pts, index, &info);

        let update = state.tracker.update(&detections);
        let mut events = std::mem::take(&mut state.pending);
        let now = state.analytics.update(&state.tracker, &update, state.time);
        events.events.extend(now.events);
        events.occupancy.extend(now.occupancy);
        state.trails.update(&state.tracker);
        rois::tag(buf, &state.tracker, &update);
        let output = FrameOutput {
            frame: index,
            pts,
            tracks: state
                .tracker
                .tracks()
                .iter()
                .filter(|t| t.state == TrackState::Tracked)
                .cloned()
                .collect(),
            events,
        };
        gst::log!(
            CAT,
            imp = self,
            "frame {index}: {} detections, {} tracks, {} events",
            detections.len(),
            output.tracks.len(),
            output.events.events.len()
        );

        let overlay = Overlay {
            tracks: if settings.draw { &output.tracks } else { &[] },
            trails: settings.draw_trails.then_some(&state.trails),
            zones: settings.draw_zones.then(|| state.analytics.zones()),
            temperature: settings.draw_temperature,
        };
        if !overlay.is_empty() {
            self.draw(buf, &info, format, &overlay)?;
        }
        if let Some(json) = state.json.as_mut()
            && let Err(e) = json.write_line(&output.json_line())
        {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ("Cannot write tracks: {}", e)
            );
            return Err(gst::FlowError::Error);
        }
        drop(guard);

        let FrameEvents { events, occupancy } = &output.events;
        if (!events.is_empty() || !occupancy.is_empty())
            && let Err(e) = trackmeta::attach(buf, index, pts, events, occupancy)
        {
            gst::warning!(CAT, imp = self, "events not attached to frame {index}: {e}");
        }
        if settings.post_messages {
            for s in output.messages() {
                self.post(s);
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl VideoFilterImpl for ThermalTrack {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let format = PixelFormat::from_str(in_info.format().to_str())
            .map_err(|_| gst::loggable_error!(CAT, "Unsupported caps {}", incaps))?;
        let mut guard = lock(&self.state);
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "Caps set before start"))?;
        gst::debug!(CAT, imp = self, "caps {incaps}");
        state.info = Some(in_info.clone());
        state.format = Some(format);
        Ok(())
    }
}
