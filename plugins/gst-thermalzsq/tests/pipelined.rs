//! `thermaldetect pipelined=true`: the same outputs as without, one frame later; what
//! follows a frame never overtakes it; flushing drops the held frame; the latency query
//! says one frame more. On a generated GRAY16 recording through the bundled thermal
//! detector (real detections, real pre-processing).

mod common;

use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_check::Harness;
use thermalzsq::synth::Recording;

use common::{BUNDLED_MODEL, init, recording_buffer};

const W: u32 = 640;
const H: u32 = 512;
const FRAME_NS: u64 = 33_333_333;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-pipelined-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn recording_frames(n: u32) -> Vec<gst::Buffer> {
    let recording = Recording::new(3, W, H).unwrap();
    (0..n).map(|i| recording_buffer(&recording, i)).collect()
}

fn element(props: &[(&str, &str)]) -> gst::Element {
    init();
    let element = gst::ElementFactory::make("thermaldetect")
        .property("model", BUNDLED_MODEL)
        .property("threads", 1u32)
        .build()
        .unwrap();
    for (name, value) in props {
        element.set_property_from_str(name, value);
    }
    element
}

fn harness(element: &gst::Element) -> Harness {
    let mut h = Harness::with_element(element, Some("sink"), Some("src"));
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray16Le, W, H)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    h
}

/// What a run sent on: each frame's timestamp and bytes, and the JSON lines.
#[derive(Debug, PartialEq)]
struct Outputs {
    frames: Vec<(Option<gst::ClockTime>, Vec<u8>)>,
    json: String,
}

/// Pushes the recording's frames (calling `between(element, i)` before frame i), then
/// EOS, and collects what came out.
fn run(
    name: &str,
    props: &[(&str, &str)],
    pipelined: bool,
    frames: u32,
    between: impl Fn(&gst::Element, u32),
) -> Outputs {
    let json = tmp(&format!("{name}-{pipelined}.jsonl"));
    let mut all = props.to_vec();
    let path = json.to_str().unwrap().to_owned();
    all.push(("json-location", &path));
    all.push(("pipelined", if pipelined { "true" } else { "false" }));
    let element = element(&all);
    let mut h = harness(&element);
    for (i, buf) in recording_frames(frames).into_iter().enumerate() {
        between(&element, i as u32);
        assert_eq!(h.push(buf), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let frames = std::iter::from_fn(|| h.try_pull())
        .map(|b| (b.pts(), b.map_readable().unwrap().to_vec()))
        .collect();
    drop(h);
    Outputs {
        frames,
        json: std::fs::read_to_string(&json).unwrap(),
    }
}

#[test]
fn pipelined_sends_the_same_frames_and_json_lines_as_unpipelined() {
    let cases: [(&str, &[(&str, &str)]); 3] = [
        ("plain", &[]),
        ("interval", &[("interval", "3")]),
        (
            "radiometric",
            &[
                ("radiometry", "centikelvin"),
                ("draw-hotspot", "true"),
                ("output-agc", "true"),
                ("output-agc-mode", "equalize"),
            ],
        ),
    ];
    for (name, props) in cases {
        let plain = run(name, props, false, 8, |_, _| {});
        let pipelined = run(name, props, true, 8, |_, _| {});
        assert_eq!(plain.frames.len(), 8, "{name}");
        assert_eq!(plain.json.lines().count(), 8, "{name}");
        assert!(
            plain.json.contains("\"label\""),
            "{name}: the recording has detections: {}",
            plain.json
        );
        assert!(plain == pipelined, "{name}: pipelined outputs differ");
    }
}

#[test]
fn a_tensor_made_before_a_property_change_is_made_again() {
    // Pipelined, frame 4 is pre-processed while frame 3 runs and finished after the
    // AGC changed: it must be detected with the new AGC, as if unpipelined with the
    // change made before frame 4.
    let change = |at: u32| {
        move |e: &gst::Element, i: u32| {
            if i == at {
                e.set_property_from_str("agc", "minmax");
                e.set_property_from_str("polarity", "black-hot");
            }
        }
    };
    let plain = run("change", &[], false, 7, change(4));
    let pipelined = run("change", &[], true, 7, change(5));
    let unchanged = run("change", &[], false, 7, |_, _| {});
    assert!(plain == pipelined, "pipelined outputs differ");
    assert_ne!(
        plain.json, unchanged.json,
        "the change makes a difference, or this test proves nothing"
    );
}

/// Everything leaving `element`'s src pad, in order.
fn record_src(element: &gst::Element) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    element.static_pad("src").unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let what = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => {
                    format!("frame {}", b.pts().unwrap().nseconds() / FRAME_NS)
                }
                Some(gst::PadProbeData::Event(e)) => match e.structure() {
                    Some(s) if s.name() == "test-marker" => "marker".to_owned(),
                    _ => format!("{:?}", e.type_()),
                },
                _ => "other".to_owned(),
            };
            log.lock().unwrap().push(what);
            gst::PadProbeReturn::Ok
        },
    );
    seen
}

#[test]
fn a_frame_is_held_until_the_next_one_and_nothing_overtakes_it() {
    let element = element(&[("pipelined", "true")]);
    let seen = record_src(&element);
    let mut h = harness(&element);
    let mut frames = recording_frames(4).into_iter();
    h.push(frames.next().unwrap()).unwrap();
    assert_eq!(
        h.buffers_in_queue(),
        0,
        "the first frame waits for the second"
    );
    h.push(frames.next().unwrap()).unwrap();
    h.push(frames.next().unwrap()).unwrap();
    assert_eq!(h.buffers_in_queue(), 2);

    // A serialized event after frame 2 leaves after it; so does EOS after frame 3.
    let marker = gst::event::CustomDownstream::new(gst::Structure::new_empty("test-marker"));
    assert!(h.push_event(marker));
    assert_eq!(
        h.buffers_in_queue(),
        3,
        "the marker pushed frame 2 out first"
    );
    h.push(frames.next().unwrap()).unwrap();
    assert!(h.push_event(gst::event::Eos::new()));
    assert_eq!(h.buffers_in_queue(), 4, "EOS pushed the last frame");
    let seen = seen.lock().unwrap().clone();
    let order: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|s| s.starts_with("frame") || *s == "marker" || *s == "Eos")
        .collect();
    assert_eq!(
        order,
        ["frame 0", "frame 1", "frame 2", "marker", "frame 3", "Eos"],
        "{seen:?}"
    );
}

#[test]
fn flushing_drops_the_held_frame_and_a_drain_query_pushes_it() {
    let element = element(&[("pipelined", "true")]);
    let mut h = harness(&element);
    let mut frames = recording_frames(4).into_iter();
    h.push(frames.next().unwrap()).unwrap();
    h.push(frames.next().unwrap()).unwrap();
    assert_eq!(h.buffers_in_queue(), 1);
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    assert_eq!(h.buffers_in_queue(), 1, "the flushed frame 1 never left");

    h.push(frames.next().unwrap()).unwrap();
    assert_eq!(h.buffers_in_queue(), 1, "frame 2 is held");
    let mut drain = gst::query::Drain::new();
    assert!(element.static_pad("sink").unwrap().query(&mut drain));
    assert_eq!(h.buffers_in_queue(), 2, "the drain query pushed frame 2");
    let pts: Vec<_> = std::iter::from_fn(|| h.try_pull())
        .map(|b| b.pts().unwrap().nseconds() / FRAME_NS)
        .collect();
    assert_eq!(pts, [0, 2]);
}

#[test]
fn the_latency_query_counts_the_held_frame() {
    let latency = |pipelined: &str| {
        let element = element(&[("pipelined", pipelined)]);
        let mut h = harness(&element);
        h.set_upstream_latency(gst::ClockTime::from_mseconds(10));
        h.push(recording_frames(1).remove(0)).unwrap();
        h.query_latency().unwrap()
    };
    let plain = latency("false");
    let pipelined = latency("true");
    assert_eq!(plain, gst::ClockTime::from_mseconds(10));
    // One frame at 30/1, rounded up to the nanosecond.
    assert_eq!(pipelined - plain, gst::ClockTime::from_nseconds(33_333_334));
}

#[test]
fn a_truncated_frame_is_one_stream_error_when_its_turn_comes() {
    let element = element(&[("pipelined", "true")]);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = harness(&element);
    let mut frames = recording_frames(2).into_iter();
    h.push(frames.next().unwrap()).unwrap();
    // Held while the first frame runs: its pre-processing fails on the helper, which
    // posts nothing.
    let short = gst::Buffer::with_size((W * H) as usize).unwrap();
    assert_eq!(h.push(short), Ok(gst::FlowSuccess::Ok));
    assert_eq!(h.buffers_in_queue(), 1);
    assert_eq!(
        h.push(frames.next().unwrap()),
        Err(gst::FlowError::Error),
        "finishing the short frame fails"
    );
    let errors: Vec<String> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("Cannot map the frame"), "{errors:?}");
}

/// Threads of this process whose name starts with `prefix` (Linux: /proc).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.starts_with(prefix))
        .count()
}

#[test]
fn the_pre_processing_thread_starts_with_the_second_frame_and_ends_with_the_element() {
    let element = element(&[("pipelined", "true")]);
    element.set_property("name", "tzsqleak");
    let mut h = harness(&element);
    let mut frames = recording_frames(3).into_iter();
    h.push(frames.next().unwrap()).unwrap();
    assert_eq!(threads_named("tzsqleak-pre"), 0);
    h.push(frames.next().unwrap()).unwrap();
    h.push(frames.next().unwrap()).unwrap();
    assert_eq!(
        threads_named("tzsqleak-pre"),
        1,
        "one thread, however many frames"
    );
    element.set_state(gst::State::Null).unwrap();
    assert_eq!(threads_named("tzsqleak-pre"), 0, "stopping joins it");
    drop(h);
}

#[test]
fn in_a_pipeline_every_frame_reaches_the_sink_before_eos() {
    init();
    let model = BUNDLED_MODEL;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=25 pattern=ball ! video/x-raw,format=GRAY8,width=320,height=256 \
         ! queue ! thermaldetect model={model} threads=1 pipelined=true ! fakesink name=sink"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let count = Arc::new(Mutex::new(0u32));
    let seen = count.clone();
    pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            *seen.lock().unwrap() += 1;
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS within a minute");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
    assert_eq!(*count.lock().unwrap(), 25);
}
