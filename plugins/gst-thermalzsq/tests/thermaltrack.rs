//! `thermaltrack` in a Harness on synthetic boxes: GRAY8 frames carrying the
//! region-of-interest metas `thermaldetect` would attach (no model), so every frame's
//! input is known exactly. One test chains the real `thermaldetect` in front.

mod common;

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::OnceLock;

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use gstthermalzsq::trackmeta;
use thermalzsq::track::EventKind;

use common::{fixture, init};

const W: u32 = 320;
const H: u32 = 240;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-tt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A detection as `thermaldetect` hands it on: label, class id, confidence, box
/// `[x, y, width, height]`.
#[derive(Clone, Copy)]
struct Det(&'static str, i32, f64, [u32; 4]);

/// A person whose feet (the box's bottom centre) stand at (x, y).
fn person_at(x: u32, y: u32) -> Det {
    Det("person", 0, 0.91, [x - 10, y - 40, 20, 40])
}

fn caps() -> gst::Caps {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, W, H)
        .fps(gst::Fraction::new(10, 1))
        .build()
        .unwrap()
        .to_caps()
        .unwrap()
}

/// A mid-grey frame at `index` / 10 s carrying `dets` as ROI metas.
fn frame(index: u64, dets: &[Det]) -> gst::Buffer {
    let unread: Vec<(Det, Option<f64>)> = dets.iter().map(|&d| (d, None)).collect();
    read_frame(index, &unread)
}

/// [`frame`] from a radiometric camera: each detection with a box maximum in °C has
/// the temperature fields `thermaldetect` adds (median 8 and p90 2 degrees below).
fn read_frame(index: u64, dets: &[(Det, Option<f64>)]) -> gst::Buffer {
    let mut buf = gst::Buffer::from_slice(vec![128u8; (W * H) as usize]);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(index * 100));
        for (Det(label, class_id, confidence, rect), max) in dets {
            let mut meta = gst_video::VideoRegionOfInterestMeta::add(
                b,
                label,
                (rect[0], rect[1], rect[2], rect[3]),
            );
            meta.add_param(
                gst::Structure::builder("detection")
                    .field("label", *label)
                    .field("class-id", *class_id)
                    .field("confidence", *confidence)
                    .field_if_some("temperature-max", *max)
                    .field_if_some("temperature-median", max.map(|m| m - 8.0))
                    .field_if_some("temperature-p90", max.map(|m| m - 2.0))
                    .build(),
            );
        }
    }
    buf
}

struct Run {
    h: Harness,
    bus: gst::Bus,
    frames: u64,
    /// Every element message posted so far.
    posted: RefCell<Vec<gst::Structure>>,
}

impl Run {
    /// Pushes the next frame with `dets` and returns it as it came out.
    fn push(&mut self, dets: &[Det]) -> gst::Buffer {
        let buf = frame(self.frames, dets);
        self.frames += 1;
        self.h.push_and_pull(buf).unwrap()
    }

    /// Pushes the next frame of a radiometric camera (see [`read_frame`]).
    fn push_read(&mut self, dets: &[(Det, Option<f64>)]) -> gst::Buffer {
        let buf = read_frame(self.frames, dets);
        self.frames += 1;
        self.h.push_and_pull(buf).unwrap()
    }

    /// Element messages posted so far with this structure name.
    fn messages(&self, name: &str) -> Vec<gst::Structure> {
        let mut posted = self.posted.borrow_mut();
        while let Some(m) = self.bus.pop() {
            if let gst::MessageView::Element(e) = m.view()
                && let Some(s) = e.structure()
            {
                posted.push(s.to_owned());
            }
        }
        posted
            .iter()
            .filter(|s| s.name() == name)
            .cloned()
            .collect()
    }
}

/// A harness around `thermaltrack` configured as gst-launch would spell it.
fn harness(props: &[(&str, &str)]) -> Run {
    init();
    let element = gst::ElementFactory::make("thermaltrack").build().unwrap();
    for (name, value) in props {
        element.set_property_from_str(name, value);
    }
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(caps());
    Run {
        h,
        bus,
        frames: 0,
        posted: RefCell::default(),
    }
}

/// Per ROI meta: its label and the id of its `tracking` param, if it has one.
fn ids(buf: &gst::BufferRef) -> Vec<(String, Option<u64>)> {
    buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| {
            let id = m.param("tracking").map(|t| t.get::<u64>("id").unwrap());
            (m.roi_type().to_string(), id)
        })
        .collect()
}

/// What `thermaltrack-event` messages said, as "type track-id place [direction]".
fn event_lines(run: &Run) -> Vec<String> {
    run.messages("thermaltrack-event")
        .iter()
        .map(|s| {
            let mut line = format!(
                "{} {}",
                s.get::<String>("type").unwrap(),
                s.get::<u64>("track-id").unwrap()
            );
            for field in ["zone", "line", "direction"] {
                if let Ok(v) = s.get::<String>(field) {
                    line += &format!(" {v}");
                }
            }
            line
        })
        .collect()
}

const ZONES: &str = r#"{"zones":[{"name":"gate","polygon":[[100,0],[200,0],[200,240],[100,240]],"labels":["person"]}],
                       "lines":[{"name":"entry","points":[[250,0],[250,240]]}]}"#;

/// The zones file, written once (tests run in parallel and read it at start).
fn zones_file() -> String {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = tmp("zones.json");
        std::fs::write(&path, ZONES).unwrap();
        path.to_str().unwrap().to_string()
    })
    .clone()
}

#[test]
fn identities_are_kept_through_a_crossing() {
    // Two people walk towards each other on one line and pass; boxes overlap for a
    // few frames.
    let mut run = harness(&[]);
    let mut walking_right = Vec::new();
    let mut walking_left = Vec::new();
    for f in 0..40u32 {
        let x = 10 + f * 5;
        let out = run.push(&[person_at(x, 150), person_at(305 - f * 5, 150)]);
        let ids = ids(&out);
        walking_right.extend(ids[0].1);
        walking_left.extend(ids[1].1);
    }
    assert_eq!(walking_right.len(), 38, "confirmed from the third frame on");
    assert!(
        walking_right.iter().all(|&id| id == walking_right[0]),
        "{walking_right:?}"
    );
    assert!(
        walking_left.iter().all(|&id| id == walking_left[0]),
        "{walking_left:?}"
    );
    assert_ne!(walking_right[0], walking_left[0]);
}

#[test]
fn a_lost_track_is_found_again_within_lost_frames_and_gets_a_new_id_after() {
    let mut run = harness(&[("lost-frames", "5")]);
    // One person walking right, 2 pixels a frame, seen or hidden.
    let walk = |run: &mut Run| {
        let x = 40 + 2 * run.frames as u32;
        ids(&run.push(&[person_at(x, 150)]))[0].1
    };
    for _ in 0..5 {
        walk(&mut run);
    }
    assert_eq!(walk(&mut run), Some(1));
    // Hidden for 5 frames (while walking on): still the same person.
    for _ in 0..5 {
        run.push(&[]);
    }
    assert_eq!(walk(&mut run), Some(1), "re-found within lost-frames");
    // Hidden for 6: the track ends; whoever appears is someone new.
    for _ in 0..6 {
        run.push(&[]);
    }
    let seen: Vec<Option<u64>> = (0..3).map(|_| walk(&mut run)).collect();
    assert_eq!(seen, vec![None, None, Some(2)]);
    assert_eq!(event_lines(&run), vec!["new 1", "end 1", "new 2"]);
}

#[test]
fn zones_and_lines_give_enter_exit_and_cross_with_direction() {
    let mut run = harness(&[("zones", &zones_file())]);
    // Right from x = 40 to 300 and back, 4 pixels a frame.
    let right = (0..=65).map(|i| 40 + 4 * i);
    let left = (1..=65).map(|i| 300 - 4 * i);
    for x in right.chain(left) {
        run.push(&[person_at(x, 150)]);
    }
    assert_eq!(
        event_lines(&run),
        vec![
            "new 1",
            "enter 1 gate",
            "exit 1 gate",
            // The line runs down the frame: walking right ends on its left.
            "cross 1 entry left",
            "cross 1 entry right",
            "enter 1 gate",
            "exit 1 gate",
        ]
    );
    let counts: Vec<(String, String, u32)> = run
        .messages("thermaltrack-occupancy")
        .iter()
        .map(|s| {
            (
                s.get("zone").unwrap(),
                s.get("label").unwrap(),
                s.get("count").unwrap(),
            )
        })
        .collect();
    let gate = |n| ("gate".to_string(), "person".to_string(), n);
    assert_eq!(counts, vec![gate(1), gate(0), gate(1), gate(0)]);
}

#[test]
fn zone_labels_filter_which_tracks_count() {
    let mut run = harness(&[("zones", &zones_file()), ("min-hits", "1")]);
    for x in [150, 155, 160] {
        run.push(&[Det("car", 1, 0.9, [x - 20, 110, 40, 40])]);
    }
    assert_eq!(
        event_lines(&run),
        vec!["new 1"],
        "the gate counts persons only"
    );
}

#[test]
fn confirmed_tracks_get_a_tracking_param_and_each_frame_a_message() {
    let mut run = harness(&[]);
    let foreign = |b: &mut gst::BufferRef| {
        gst_video::VideoRegionOfInterestMeta::add(b, "face", (0, 0, 10, 10));
    };
    for f in 0..3u32 {
        let mut input = frame(f as u64, &[person_at(100 + f, 150)]);
        foreign(input.get_mut().unwrap());
        let out = run.h.push_and_pull(input).unwrap();
        let rois: Vec<_> = out
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .collect();
        assert_eq!(rois.len(), 2);
        assert!(rois[1].param("tracking").is_none(), "other metas untouched");
        let tracking = rois[0].param("tracking");
        if f < 2 {
            assert!(tracking.is_none(), "tentative tracks have no id");
            continue;
        }
        let t = tracking.expect("confirmed at the third frame");
        assert_eq!(t.get::<u64>("id").unwrap(), 1);
        assert_eq!(t.get::<u32>("age").unwrap(), 3);
        assert_eq!(t.get::<u32>("hits").unwrap(), 3);
        assert_eq!(t.get::<String>("state").unwrap(), "tracked");
    }
    let msgs = run.messages("thermaltrack");
    assert_eq!(msgs.len(), 3, "one per frame");
    assert!(
        msgs[0].get::<gst::List>("tracks").unwrap().is_empty(),
        "no confirmed track in the first frame"
    );
    let last = &msgs[2];
    assert_eq!(last.get::<u64>("frame").unwrap(), 2);
    assert_eq!(last.get::<u64>("pts").unwrap(), 200_000_000);
    let tracks = last.get::<gst::List>("tracks").unwrap();
    assert_eq!(tracks.len(), 1);
    let t = tracks
        .iter()
        .next()
        .unwrap()
        .get::<gst::Structure>()
        .unwrap();
    assert_eq!(t.get::<u64>("id").unwrap(), 1);
    assert_eq!(t.get::<String>("label").unwrap(), "person");
    assert_eq!(t.get::<i32>("class-id").unwrap(), 0);
    assert!((t.get::<f64>("confidence").unwrap() - 0.91).abs() < 1e-6);
    assert_eq!(
        ["x", "y", "width", "height"].map(|f| t.get::<f64>(f).unwrap()),
        [92.0, 110.0, 20.0, 40.0]
    );
    assert_eq!(t.get::<u32>("age").unwrap(), 3);
}

#[test]
fn event_messages_carry_the_track_box_and_time() {
    let mut run = harness(&[("min-hits", "1")]);
    run.push(&[person_at(100, 150)]);
    let events = run.messages("thermaltrack-event");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.get::<String>("type").unwrap(), "new");
    assert_eq!(e.get::<u64>("track-id").unwrap(), 1);
    assert_eq!(e.get::<String>("label").unwrap(), "person");
    assert_eq!(e.get::<u64>("frame").unwrap(), 0);
    assert_eq!(e.get::<u64>("pts").unwrap(), 0);
    assert_eq!(
        ["x", "y", "width", "height"].map(|f| e.get::<f64>(f).unwrap()),
        [90.0, 110.0, 20.0, 40.0]
    );
    assert!(!e.has_field("zone") && !e.has_field("line"));
}

#[test]
fn post_messages_false_posts_nothing() {
    let mut run = harness(&[("post-messages", "false"), ("min-hits", "1")]);
    run.push(&[person_at(100, 150)]);
    assert!(run.messages("thermaltrack").is_empty());
    assert!(run.messages("thermaltrack-event").is_empty());
}

#[test]
fn json_lines_have_the_documented_shape() {
    let json = tmp("tracks.jsonl");
    let mut run = harness(&[
        ("zones", &zones_file()),
        ("min-hits", "1"),
        ("json-location", json.to_str().unwrap()),
    ]);
    run.push(&[person_at(120, 150)]);
    run.push(&[]);
    drop(run); // stop: flush the file
    let text = std::fs::read_to_string(&json).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        vec![
            r#"{"frame":0,"pts":0,"tracks":[{"id":1,"label":"person","class_id":0,"confidence":0.91,"box":[110.0,110.0,130.0,150.0],"age":1}],"events":[{"type":"new","track_id":1,"label":"person"},{"type":"enter","track_id":1,"label":"person","zone":"gate"}]}"#,
            r#"{"frame":1,"pts":100000000,"tracks":[],"events":[]}"#,
        ]
    );
}

#[test]
fn events_travel_downstream_as_a_custom_meta() {
    let mut run = harness(&[("zones", &zones_file()), ("min-hits", "1")]);
    let out = run.push(&[person_at(120, 150)]);
    let attached = trackmeta::read(&out).expect("the frame's events");
    assert_eq!(attached.frame, 0);
    assert_eq!(attached.pts, Some(gst::ClockTime::ZERO));
    let kinds: Vec<EventKind> = attached.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::New, EventKind::Enter]);
    let enter = &attached.events[1];
    assert_eq!(
        (enter.track_id, enter.label.as_str(), enter.zone.as_deref()),
        (1, "person", Some("gate"))
    );
    assert_eq!(enter.bbox, [110.0, 110.0, 130.0, 150.0]);
    assert!((enter.confidence - 0.91).abs() < 1e-6);
    assert_eq!(attached.occupancy.len(), 1);
    assert_eq!(
        (
            attached.occupancy[0].zone.as_str(),
            attached.occupancy[0].count
        ),
        ("gate", 1)
    );

    let quiet = run.push(&[person_at(121, 150)]);
    assert!(
        trackmeta::read(&quiet).is_none(),
        "frames without events carry no meta"
    );

    // A copy made downstream keeps the meta.
    let copy = out.copy();
    assert_eq!(trackmeta::read(&copy).unwrap().events.len(), 2);
}

#[test]
fn flush_and_discontinuity_forget_identities_and_end_the_tracks() {
    let mut run = harness(&[("zones", &zones_file()), ("min-hits", "1")]);
    assert_eq!(ids(&run.push(&[person_at(120, 150)]))[0].1, Some(1));
    assert!(run.h.push_event(gst::event::FlushStart::new()));
    assert!(run.h.push_event(gst::event::FlushStop::new(true)));
    assert!(
        run.h
            .push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()))
    );
    // Same place, same object, but after a flush identities do not carry over.
    let out = run.push(&[person_at(120, 150)]);
    assert_eq!(ids(&out)[0].1, Some(2));
    let kinds: Vec<&str> = trackmeta::read(&out)
        .unwrap()
        .events
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(kinds, vec!["exit", "end", "new", "enter"]);

    let mut input = frame(run.frames, &[person_at(120, 150)]);
    input
        .get_mut()
        .unwrap()
        .set_flags(gst::BufferFlags::DISCONT);
    let out = run.h.push_and_pull(input).unwrap();
    assert_eq!(ids(&out)[0].1, Some(3), "a discontinuity resets too");
    let counts: Vec<u32> = run
        .messages("thermaltrack-occupancy")
        .iter()
        .map(|s| s.get("count").unwrap())
        .collect();
    assert_eq!(counts, vec![1, 0, 1, 0, 1], "zone counts go through zero");
}

#[test]
fn the_iou_tracker_works_and_drops_low_confidence_matches() {
    for (tracker, expected) in [("iou", None), ("bytetrack", Some(1))] {
        let mut run = harness(&[("tracker", tracker)]);
        let mut seen = Vec::new();
        for f in 0..6 {
            seen.push(ids(&run.push(&[person_at(100 + 2 * f, 150)]))[0].1);
        }
        assert_eq!(
            seen,
            vec![None, None, Some(1), Some(1), Some(1), Some(1)],
            "{tracker}"
        );
        let weak = Det("person", 0, 0.3, [102, 110, 20, 40]);
        assert_eq!(ids(&run.push(&[weak]))[0].1, expected, "{tracker}");
    }
}

/// Lines of a JSON-lines file as they are on disk now.
fn lines_on_disk(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn json_lines_are_written_in_batches_and_reach_the_disk_at_eos_stop_and_drop() {
    // A disk write per frame wears an SD card out: one frame's line mid-stream stays
    // in memory; EOS, stopping and dropping the element each put every line on disk.
    let json = tmp("batched-eos.jsonl");
    let mut run = harness(&[("json-location", json.to_str().unwrap())]);
    run.push(&[person_at(100, 150)]);
    assert_eq!(lines_on_disk(&json), 0, "one frame is not a disk write");
    assert!(run.h.push_event(gst::event::Eos::new()));
    assert_eq!(lines_on_disk(&json), 1, "EOS writes every line");

    let json = tmp("batched-stop.jsonl");
    let mut run = harness(&[("json-location", json.to_str().unwrap())]);
    for _ in 0..3 {
        run.push(&[person_at(100, 150)]);
    }
    run.h
        .element()
        .unwrap()
        .set_state(gst::State::Null)
        .unwrap();
    assert_eq!(
        lines_on_disk(&json),
        3,
        "stopping without EOS writes every line"
    );

    let json = tmp("batched-drop.jsonl");
    let mut run = harness(&[("json-location", json.to_str().unwrap())]);
    for _ in 0..3 {
        run.push(&[person_at(100, 150)]);
    }
    drop(run);
    assert_eq!(
        lines_on_disk(&json),
        3,
        "dropping the element writes every line"
    );
}

#[test]
fn negative_and_huge_strides_in_a_video_meta_are_stream_errors_not_panics() {
    // draw-zones: every frame is drawn on, through the layout its VideoMeta claims.
    for (offset, stride, says) in [
        ((W * (H - 1)) as usize, -(W as i32), "negative stride"),
        (0, i32::MAX, "need"),
    ] {
        let mut run = harness(&[("zones", &zones_file()), ("draw-zones", "true")]);
        let mut buf = frame(0, &[]);
        gst_video::VideoMeta::add_full(
            buf.get_mut().unwrap(),
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::Gray8,
            W,
            H,
            &[offset],
            &[stride],
        )
        .unwrap();
        assert_eq!(
            run.h.push(buf),
            Err(gst::FlowError::Error),
            "stride {stride}"
        );
        let errors: Vec<glib::Error> = std::iter::from_fn(|| run.bus.pop())
            .filter_map(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.error()),
                _ => None,
            })
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].matches(gst::StreamError::Failed), "{errors:?}");
        assert!(errors[0].to_string().contains(says), "{}", errors[0]);
        // No panic: the next frame is drawn on as usual.
        run.frames = 1;
        let out = run.push(&[]);
        assert_ne!(out.map_readable().unwrap()[150], 128, "the gate's top edge");
    }
}

#[test]
fn draw_boxes_the_tracks_and_optionally_zones_and_trails() {
    let pixel = |buf: &gst::Buffer, x: u32, y: u32| {
        buf.map_readable().unwrap().as_slice()[(y * W + x) as usize]
    };
    // Box [90, 110, 110, 150]: the outline is drawn just outside it.
    let mut run = harness(&[("min-hits", "1")]);
    let out = run.push(&[person_at(100, 150)]);
    assert_ne!(pixel(&out, 100, 109), 128, "top edge of the box drawn");
    assert_eq!(pixel(&out, 100, 130), 128, "inside of the box untouched");

    let mut run = harness(&[("min-hits", "1"), ("draw", "false")]);
    let out = run.push(&[person_at(100, 150)]);
    let data = out.map_readable().unwrap();
    assert!(
        data.as_slice().iter().all(|&p| p == 128),
        "draw=false leaves pixels alone"
    );

    let mut run = harness(&[
        ("zones", &zones_file()),
        ("draw", "false"),
        ("draw-zones", "true"),
    ]);
    let out = run.push(&[]);
    assert_ne!(pixel(&out, 150, 0), 128, "the gate's top edge");
    assert_ne!(pixel(&out, 250, 120), 128, "the entry line");
    assert_eq!(pixel(&out, 150, 120), 128, "inside the gate");

    let mut run = harness(&[
        ("min-hits", "1"),
        ("draw", "false"),
        ("draw-trails", "true"),
    ]);
    for x in [60, 66] {
        run.push(&[person_at(x, 150)]);
    }
    let out = run.push(&[person_at(72, 150)]);
    assert_ne!(
        pixel(&out, 63, 150),
        128,
        "the path between two feet points"
    );
    assert_eq!(pixel(&out, 63, 100), 128, "nowhere else");
}

#[test]
fn properties_have_the_documented_defaults() {
    init();
    let e = gst::ElementFactory::make("thermaltrack").build().unwrap();
    let nick = |p: &str| {
        let v = e.property_value(p);
        glib::EnumValue::from_value(&v)
            .unwrap()
            .1
            .nick()
            .to_string()
    };
    assert_eq!(nick("tracker"), "bytetrack");
    assert_eq!(e.property::<f32>("high-threshold"), 0.5);
    assert_eq!(e.property::<f32>("low-threshold"), 0.1);
    assert_eq!(e.property::<f32>("match-iou"), 0.3);
    assert_eq!(e.property::<u32>("lost-frames"), 30);
    assert_eq!(e.property::<u32>("min-hits"), 3);
    assert_eq!(e.property::<f64>("loiter-seconds"), 30.0);
    assert_eq!(e.property::<Option<String>>("zones"), None);
    assert_eq!(e.property::<Option<String>>("json-location"), None);
    assert!(e.property::<bool>("post-messages") && e.property::<bool>("draw"));
    assert!(e.property::<bool>("draw-temperature"));
    assert_eq!(e.property::<Option<String>>("hot-threshold"), None);
    assert!(!e.property::<bool>("draw-trails") && !e.property::<bool>("draw-zones"));
    e.set_property_from_str("tracker", "iou");
    assert_eq!(nick("tracker"), "iou");
}

#[test]
fn loitering_is_reported_after_loiter_seconds() {
    let mut run = harness(&[
        ("zones", &zones_file()),
        ("min-hits", "1"),
        ("loiter-seconds", "1.5"),
    ]);
    for _ in 0..20 {
        run.push(&[person_at(150, 150)]);
    }
    let loiter: Vec<u64> = run
        .messages("thermaltrack-event")
        .iter()
        .filter(|s| s.get::<String>("type").unwrap() == "loiter")
        .map(|s| s.get::<u64>("frame").unwrap())
        .collect();
    assert_eq!(
        loiter,
        vec![15],
        "once, 1.5 s (15 frames at 10 fps) after entering"
    );
}

/// Starting fails with an error on the bus; returns its text.
fn start_error(props: &[(&str, &str)]) -> String {
    match common::start_error("thermaltrack", props).view() {
        gst::MessageView::Error(e) => e.error().to_string(),
        _ => unreachable!("start_error returns an error message"),
    }
}

#[test]
fn a_bad_zones_file_is_an_error_at_start_that_says_why() {
    let bad = tmp("bad-zones.json");
    std::fs::write(&bad, r#"{"zones":[{"name":"a","polygon":[[0,0],[1,1]]}]}"#).unwrap();
    let e = start_error(&[("zones", bad.to_str().unwrap())]);
    assert!(e.contains("zone 'a' has 2 corners (at least 3)"), "{e}");

    let e = start_error(&[("zones", "/nonexistent/zones.json")]);
    assert!(e.contains("cannot read the zones file"), "{e}");

    let e = start_error(&[("json-location", "/nonexistent/dir/tracks.jsonl")]);
    assert!(e.contains("Cannot write tracks to /nonexistent/dir"), "{e}");
}

#[test]
fn a_bad_hot_threshold_is_an_error_at_start_that_says_what_is_expected() {
    let e = start_error(&[("hot-threshold", "person:warm")]);
    assert!(
        e.contains("hot-threshold: `warm` in `person:warm` is not a temperature"),
        "{e}"
    );
    assert!(e.contains("e.g. \"person:38,car:90,*:60\""), "{e}");
}

const CAR: Det = Det("car", 1, 0.88, [200, 60, 60, 30]);

#[test]
fn a_hot_track_is_reported_once_with_its_temperature_everywhere_events_go() {
    let json = tmp("hot.jsonl");
    let mut run = harness(&[
        ("min-hits", "1"),
        ("hot-threshold", "person:38,*:90"),
        ("json-location", json.to_str().unwrap()),
    ]);
    // The person's box maximum crosses 38 °C in frame 1 and again in frame 4; the car
    // (threshold `*`, 90) stays below.
    let mut metas = Vec::new();
    for (f, max) in [36.0, 38.5, 39.0, 37.0, 40.0].into_iter().enumerate() {
        let out = run.push_read(&[
            (person_at(100 + f as u32, 150), Some(max)),
            (CAR, Some(85.0)),
        ]);
        metas.push(trackmeta::read(&out));
    }
    let hot: Vec<gst::Structure> = run
        .messages("thermaltrack-event")
        .into_iter()
        .filter(|s| s.get::<String>("type").unwrap() == "hot")
        .collect();
    assert_eq!(hot.len(), 1, "once per track: {hot:?}");
    assert_eq!(hot[0].get::<u64>("track-id").unwrap(), 1);
    assert_eq!(hot[0].get::<u64>("frame").unwrap(), 1);
    assert_eq!(hot[0].get::<f64>("temperature").unwrap(), 38.5);

    // Other events carry the latest reading; the frame message the tracks' readings.
    let new: Vec<(u64, f64)> = run
        .messages("thermaltrack-event")
        .iter()
        .filter(|s| s.get::<String>("type").unwrap() == "new")
        .map(|s| (s.get("track-id").unwrap(), s.get("temperature").unwrap()))
        .collect();
    assert_eq!(new, vec![(1, 36.0), (2, 85.0)]);
    let frames = run.messages("thermaltrack");
    let person = frames[3]
        .get::<gst::List>("tracks")
        .unwrap()
        .iter()
        .next()
        .unwrap()
        .get::<gst::Structure>()
        .unwrap();
    assert_eq!(
        [
            "temperature-max",
            "temperature-median",
            "temperature-p90",
            "temperature-hottest"
        ]
        .map(|f| person.get::<f64>(f).unwrap()),
        [37.0, 29.0, 35.0, 39.0]
    );

    // The custom meta of frame 1 holds the same event for publishers downstream.
    let attached = metas[1].as_ref().expect("frame 1 has an event");
    assert_eq!(attached.events.len(), 1);
    assert_eq!(attached.events[0].kind, EventKind::Hot);
    assert_eq!(attached.events[0].temperature, Some(38.5));
    assert!(metas[2..].iter().all(Option::is_none), "no more events");

    drop(run);
    let text = std::fs::read_to_string(&json).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(text.matches(r#""type":"hot""#).count(), 1);
    assert_eq!(
        lines[1],
        r#"{"frame":1,"pts":100000000,"tracks":[{"id":1,"label":"person","class_id":0,"confidence":0.91,"box":[91.0,110.0,111.0,150.0],"age":2,"temperature_c":{"max":38.5,"median":30.5,"p90":36.5},"temperature_max_c":38.5},{"id":2,"label":"car","class_id":1,"confidence":0.88,"box":[200.0,60.0,260.0,90.0],"age":2,"temperature_c":{"max":85.0,"median":77.0,"p90":83.0},"temperature_max_c":85.0}],"events":[{"type":"hot","track_id":1,"label":"person","temperature_c":38.5}]}"#
    );
}

#[test]
fn the_tracking_param_carries_the_hottest_reading_of_the_track() {
    let mut run = harness(&[("min-hits", "1")]);
    let mut hottest = Vec::new();
    for max in [36.0, 37.5, 36.5] {
        let out = run.push_read(&[(person_at(100, 150), Some(max))]);
        let roi = out
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .next()
            .unwrap();
        hottest.push(
            roi.param("tracking")
                .unwrap()
                .get::<f64>("temperature-hottest")
                .unwrap(),
        );
    }
    assert_eq!(hottest, vec![36.0, 37.5, 37.5]);
    // A detection with a partial reading (no median) counts as none.
    let mut buf = frame(3, &[]);
    let mut meta = gst_video::VideoRegionOfInterestMeta::add(
        buf.get_mut().unwrap(),
        "person",
        (200, 110, 20, 40),
    );
    meta.add_param(
        gst::Structure::builder("detection")
            .field("label", "person")
            .field("class-id", 0i32)
            .field("confidence", 0.9f64)
            .field("temperature-max", 90.0f64)
            .field("temperature-p90", 80.0f64)
            .build(),
    );
    let out = run.h.push_and_pull(buf).unwrap();
    let tracking = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .find_map(|m| m.param("tracking").map(|t| t.to_owned()))
        .unwrap();
    assert_eq!(tracking.get::<u64>("id").unwrap(), 2);
    assert!(!tracking.has_field("temperature-hottest"));
}

#[test]
fn draw_temperature_writes_the_reading_after_the_label() {
    let drawn = |draw_temperature: &str, max: Option<f64>| {
        let mut run = harness(&[("min-hits", "1"), ("draw-temperature", draw_temperature)]);
        let out = run.push_read(&[(person_at(100, 150), max)]);
        out.map_readable().unwrap().to_vec()
    };
    assert_ne!(
        drawn("true", Some(35.8)),
        drawn("false", Some(35.8)),
        "\"person #1 35.8°C\" is longer than \"person #1\""
    );
    assert_eq!(
        drawn("true", None),
        drawn("false", None),
        "no reading, nothing to add"
    );
}

#[test]
fn thermaldetect_and_thermaltrack_compose() {
    // The hot/cold test detector (see tests/thermaldetect.rs): a bright and a dark
    // 64-pixel square on its grid are a `hot` and a `cold` object.
    init();
    let (width, height) = (640usize, 512usize);
    let mut grey = vec![128u8; width * height];
    for y in 64..128 {
        grey[y * width + 192..y * width + 256].fill(250);
    }
    for y in 320..384 {
        grey[y * width + 448..y * width + 512].fill(5);
    }
    let model = fixture("hotspot_v8.onnx");
    let mut h = Harness::new_parse(&format!(
        "thermaldetect model=\"{}\" draw=false ! thermaltrack",
        model.display()
    ));
    h.set_src_caps(
        gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, width as u32, height as u32)
            .fps(gst::Fraction::new(30, 1))
            .build()
            .unwrap()
            .to_caps()
            .unwrap(),
    );
    let mut last = Vec::new();
    for f in 0..4u64 {
        let mut buf = gst::Buffer::from_slice(grey.clone());
        buf.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(f * 33));
        let out = h.push_and_pull(buf).unwrap();
        last = ids(&out);
    }
    last.sort();
    let labels: Vec<&str> = last.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, vec!["cold", "hot"]);
    let mut track_ids: Vec<u64> = last.iter().filter_map(|(_, id)| *id).collect();
    track_ids.sort();
    assert_eq!(
        track_ids,
        vec![1, 2],
        "both objects tracked from the third frame"
    );
}
