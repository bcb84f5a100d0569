//! `thermaldetect` temperatures in a Harness: each radiometry law in every output (ROI
//! meta, element message, JSON line), the scene statistics, the gate, drawing, streams
//! without counts and bad property values. The detector is the hot/cold grid-cell test
//! model (tests/fixtures/models/hotspot_v8.onnx): the hot square's box lies exactly on
//! it, so its inner pixels all have the hot square's count and its temperature is known.

mod common;

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;

use common::{DetectRun, detect_harness, fixture, init};

const W: usize = 640;
const H: usize = 512;
const HOT: [usize; 4] = [192, 64, 64, 64];
const COLD: [usize; 4] = [448, 320, 64, 64];

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-temp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A scene's counts: a hot square at HOT, a cold one at COLD, the background halfway
/// between (the detector's AGC view is then the test model's mid-grey scene, and the
/// scene's mean is the background's temperature).
#[derive(Clone, Copy)]
struct Counts {
    hot: u16,
    cold: u16,
}

impl Counts {
    fn background(self) -> u16 {
        ((self.hot as u32 + self.cold as u32) / 2) as u16
    }

    fn at(self, x: usize, y: usize) -> u16 {
        let inside =
            |r: [usize; 4]| (r[0]..r[0] + r[2]).contains(&x) && (r[1]..r[1] + r[3]).contains(&y);
        if inside(HOT) {
            self.hot
        } else if inside(COLD) {
            self.cold
        } else {
            self.background()
        }
    }

    /// The counts as 16-bit samples of `h` rows.
    fn bytes(self, h: usize, big_endian: bool) -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..W).map(move |x| self.at(x, y)))
            .flat_map(|v| {
                if big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect()
    }
}

/// How a test frame is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    Gray16Le,
    Gray16Be,
    /// YUY2 of twice the height: a flat grey image on top, the counts (little-endian)
    /// below, as an InfiRay P2 Pro sends them.
    P2Pro,
}

impl Layout {
    fn caps(self) -> gst::Caps {
        let (format, h) = match self {
            Layout::Gray16Le => (gst_video::VideoFormat::Gray16Le, H),
            Layout::Gray16Be => (gst_video::VideoFormat::Gray16Be, H),
            Layout::P2Pro => (gst_video::VideoFormat::Yuy2, 2 * H),
        };
        gst_video::VideoInfo::builder(format, W as u32, h as u32)
            .fps(gst::Fraction::new(30, 1))
            .build()
            .unwrap()
            .to_caps()
            .unwrap()
    }

    fn buffer(self, counts: Counts, pts_ms: u64) -> gst::Buffer {
        let data = match self {
            Layout::Gray16Le => counts.bytes(H, false),
            Layout::Gray16Be => counts.bytes(H, true),
            Layout::P2Pro => {
                let mut data = vec![128u8; 2 * W * H];
                data.extend(counts.bytes(H, false));
                data
            }
        };
        let mut buf = gst::Buffer::from_slice(data);
        buf.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(pts_ms));
        buf
    }
}

/// [`detect_harness`] on the CPU provider (`auto` would warn which provider runs).
fn harness(props: &[(&str, &str)]) -> DetectRun {
    let mut all = vec![("execution-provider", "cpu")];
    all.extend_from_slice(props);
    detect_harness(&all)
}

fn messages(bus: &gst::Bus) -> Vec<gst::Message> {
    std::iter::from_fn(|| bus.pop()).collect()
}

/// The `thermaldetect` element messages among `messages`.
fn frame_messages(messages: &[gst::Message]) -> Vec<gst::Structure> {
    messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "thermaldetect")
                .map(|s| s.to_owned()),
            _ => None,
        })
        .collect()
}

fn errors_and_warnings(messages: &[gst::Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect()
}

/// The message's `detection` structure of `label`.
fn detection(message: &gst::Structure, label: &str) -> Option<gst::Structure> {
    message
        .get::<gst::List>("detections")
        .unwrap()
        .iter()
        .map(|v| v.get::<gst::Structure>().unwrap())
        .find(|s| s.get::<String>("label").unwrap() == label)
}

/// The ROI metas' `detection` structures, by label.
fn roi_params(buf: &gst::BufferRef, label: &str) -> Option<gst::Structure> {
    buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| m.param("detection").unwrap().to_owned())
        .find(|p| p.get::<String>("label").unwrap() == label)
}

fn json_lines(path: &PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json_detection<'a>(line: &'a serde_json::Value, label: &str) -> &'a serde_json::Value {
    line["detections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["label"] == label)
        .unwrap()
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 0.006,
        "{what}: {got} °C, want {want} °C"
    );
}

const TEMPERATURE_FIELDS: [&str; 3] = ["temperature-max", "temperature-median", "temperature-p90"];
const SCENE_FIELDS: [&str; 5] = [
    "scene-temperature-min",
    "scene-temperature-max",
    "scene-temperature-mean",
    "hotspot-x",
    "hotspot-y",
];

/// A radiometry mode as the element is set up for it, a frame's counts, and the law
/// the test knows (count -> °C).
struct Law {
    name: &'static str,
    layout: Layout,
    props: &'static [(&'static str, &'static str)],
    counts: Counts,
    celsius: fn(u16) -> f64,
}

#[test]
fn each_radiometry_law_gives_degrees_celsius_in_the_meta_the_message_and_json() {
    let centikelvin = Counts {
        hot: 30_915,  // 309.15 K = 36.00 °C
        cold: 27_315, // 273.15 K = 0.00 °C
    };
    let laws = [
        Law {
            name: "centikelvin GRAY16_LE",
            layout: Layout::Gray16Le,
            props: &[("radiometry", "centikelvin")],
            counts: centikelvin,
            celsius: |c| c as f64 / 100.0 - 273.15,
        },
        Law {
            name: "centikelvin GRAY16_BE",
            layout: Layout::Gray16Be,
            props: &[("radiometry", "centikelvin")],
            counts: centikelvin,
            celsius: |c| c as f64 / 100.0 - 273.15,
        },
        Law {
            name: "p2pro, two-half YUY2",
            layout: Layout::P2Pro,
            props: &[
                ("radiometry", "p2pro"),
                ("input-layout", "thermal-bottom-half"),
            ],
            counts: Counts {
                hot: 19_785,  // 1/64 K: 35.99 °C
                cold: 17_482, // 0.01 °C
            },
            celsius: |c| c as f64 / 64.0 - 273.15,
        },
        Law {
            name: "linear",
            layout: Layout::Gray16Le,
            props: &[
                ("radiometry", "linear"),
                ("radiometric-gain", "0.02"),
                ("radiometric-offset", "100"),
            ],
            counts: Counts {
                hot: 10_458, // 309.16 K: 36.01 °C
                cold: 8_658, // 0.01 °C
            },
            celsius: |c| 0.02 * c as f64 + 100.0 - 273.15,
        },
    ];
    for Law {
        name,
        layout,
        props,
        counts,
        celsius,
    } in laws
    {
        let json = tmp(&format!("{}.jsonl", name.replace([' ', ','], "-")));
        let mut props = props.to_vec();
        let location = json.to_str().unwrap();
        props.push(("json-location", location));
        let mut run = harness(&props);
        run.h.set_src_caps(layout.caps());
        let out = run.h.push_and_pull(layout.buffer(counts, 0)).unwrap();
        let (hot, cold, background) = (
            celsius(counts.hot),
            celsius(counts.cold),
            celsius(counts.background()),
        );

        // The box lies on the square: max, median and p90 are all its temperature.
        let meta = roi_params(&out, "hot").unwrap_or_else(|| panic!("{name}: no hot ROI"));
        let msgs = messages(&run.bus);
        assert!(errors_and_warnings(&msgs).is_empty(), "{name}");
        let message = &frame_messages(&msgs)[0];
        let posted = detection(message, "hot").unwrap();
        for field in TEMPERATURE_FIELDS {
            assert_close(
                meta.get::<f64>(field).unwrap(),
                hot,
                &format!("{name}: meta {field}"),
            );
            assert_close(
                posted.get::<f64>(field).unwrap(),
                hot,
                &format!("{name}: message {field}"),
            );
        }
        let cold_posted = detection(message, "cold").unwrap();
        assert_close(
            cold_posted.get::<f64>("temperature-max").unwrap(),
            cold,
            name,
        );

        // The scene: coldest and hottest square, the background's mean, the hot
        // square's first pixel.
        assert_close(
            message.get::<f64>("scene-temperature-min").unwrap(),
            cold,
            name,
        );
        assert_close(
            message.get::<f64>("scene-temperature-max").unwrap(),
            hot,
            name,
        );
        assert_close(
            message.get::<f64>("scene-temperature-mean").unwrap(),
            background,
            name,
        );
        assert_eq!(
            [
                message.get::<u32>("hotspot-x").unwrap(),
                message.get::<u32>("hotspot-y").unwrap()
            ],
            [HOT[0] as u32, HOT[1] as u32],
            "{name}"
        );

        drop(run); // stop: the JSON file on disk
        let line = &json_lines(&json)[0];
        let t = &json_detection(line, "hot")["temperature_c"];
        for key in ["max", "median", "p90"] {
            assert_close(
                t[key].as_f64().unwrap(),
                hot,
                &format!("{name}: json {key}"),
            );
        }
        let scene = &line["scene_c"];
        assert_close(scene["min"].as_f64().unwrap(), cold, name);
        assert_close(scene["max"].as_f64().unwrap(), hot, name);
        assert_close(scene["mean"].as_f64().unwrap(), background, name);
        assert_eq!(
            scene["hotspot"],
            serde_json::json!([HOT[0], HOT[1]]),
            "{name}"
        );
    }
}

#[test]
fn an_eight_bit_stream_with_radiometry_has_no_temperatures_and_no_error() {
    init();
    let json = tmp("gray8.jsonl");
    let mut run = harness(&[
        ("radiometry", "centikelvin"),
        ("draw-hotspot", "true"),
        ("json-location", json.to_str().unwrap()),
    ]);
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, W as u32, H as u32)
        .build()
        .unwrap();
    run.h.set_src_caps(info.to_caps().unwrap());
    // The test model's mid-grey scene in 8 bits.
    let scene = Counts { hot: 250, cold: 6 };
    let grey: Vec<u8> = (0..W * H).map(|i| scene.at(i % W, i / W) as u8).collect();
    for i in 0..2 {
        let out = run
            .h
            .push_and_pull(gst::Buffer::from_slice(grey.clone()))
            .unwrap();
        let meta = roi_params(&out, "hot").expect("detected as usual");
        for field in TEMPERATURE_FIELDS {
            assert!(!meta.has_field(field), "frame {i}: {meta}");
        }
    }
    let msgs = messages(&run.bus);
    assert!(errors_and_warnings(&msgs).is_empty(), "{msgs:?}");
    for message in frame_messages(&msgs) {
        for field in SCENE_FIELDS {
            assert!(!message.has_field(field), "{message}");
        }
        let hot = detection(&message, "hot").unwrap();
        assert!(!hot.has_field("temperature-max"), "{hot}");
    }
    drop(run);
    let text = std::fs::read_to_string(&json).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(
        !text.contains("temperature_c") && !text.contains("scene_c"),
        "{text}"
    );
}

#[test]
fn the_gate_drops_a_detection_outside_its_range_and_keeps_one_inside() {
    let counts = Counts {
        hot: 30_915,  // 36 °C
        cold: 27_315, // 0 °C
    };
    let labels = |gate: &str| {
        let mut run = harness(&[("radiometry", "centikelvin"), ("temperature-gate", gate)]);
        run.h.set_src_caps(Layout::Gray16Le.caps());
        let out = run
            .h
            .push_and_pull(Layout::Gray16Le.buffer(counts, 0))
            .unwrap();
        let mut labels: Vec<String> = out
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| m.roi_type().to_string())
            .collect();
        labels.sort();
        labels
    };
    assert_eq!(labels("hot:30-40"), ["cold", "hot"], "36 °C is inside");
    assert_eq!(
        labels("hot:40-60, cold:-5-5"),
        ["cold"],
        "36 °C is outside; 0 °C inside"
    );
    assert_eq!(labels("cold:-40--10"), ["hot"], "unlisted classes pass");
}

#[test]
fn radiometry_can_be_switched_on_while_playing_and_the_scene_is_read_on_every_frame() {
    let counts = Counts {
        hot: 30_915,
        cold: 27_315,
    };
    // interval=2: frame 1 reuses frame 0's detections; output-agc replaces the
    // counts after the scene was read.
    let mut run = harness(&[("interval", "2"), ("output-agc", "true")]);
    run.h.set_src_caps(Layout::Gray16Le.caps());
    let out = run
        .h
        .push_and_pull(Layout::Gray16Le.buffer(counts, 0))
        .unwrap();
    assert!(
        !roi_params(&out, "hot")
            .unwrap()
            .has_field("temperature-max")
    );
    run.h
        .element()
        .unwrap()
        .set_property_from_str("radiometry", "centikelvin");
    for i in 1..4u64 {
        let out = run
            .h
            .push_and_pull(Layout::Gray16Le.buffer(counts, 33 * i))
            .unwrap();
        // Frame 1 keeps frame 0's detections, measured before radiometry was set.
        assert_eq!(
            roi_params(&out, "hot")
                .unwrap()
                .has_field("temperature-max"),
            i >= 2,
            "frame {i}"
        );
    }
    let frames = frame_messages(&messages(&run.bus));
    assert_eq!(frames.len(), 4);
    assert!(!frames[0].has_field("scene-temperature-max"));
    for (i, f) in frames.iter().enumerate().skip(1) {
        assert_close(
            f.get::<f64>("scene-temperature-max").unwrap(),
            36.0,
            &format!("frame {i}"),
        );
    }
}

#[test]
fn bad_temperature_properties_are_clear_errors() {
    let model = fixture("hotspot_v8.onnx");
    for (gate, says) in [
        (
            "person:42-25",
            "temperature-gate: `person:42-25`: the low end 42 is above the high end 25",
        ),
        ("person", "temperature-gate: `person` has no LABEL:"),
    ] {
        let msg = common::start_error(
            "thermaldetect",
            &[
                ("model", model.to_str().unwrap()),
                ("temperature-gate", gate),
            ],
        );
        let gst::MessageView::Error(e) = msg.view() else {
            unreachable!()
        };
        let text = e.error().to_string();
        assert!(text.contains(says), "{gate}: {text}");
        assert!(text.contains("expected LABEL:LOW-HIGH in °C"), "{text}");
    }

    // A gain of 0 (or below) is outside the ParamSpec: GLib warns "value "0.000000" of
    // type 'gdouble' is invalid or out of range for property 'radiometric-gain'" and
    // the property keeps its value.
    init();
    let e = gst::parse::launch("thermaldetect radiometric-gain=0").unwrap();
    assert_eq!(e.property::<f64>("radiometric-gain"), 0.01);
    let pspec = e.find_property("radiometric-gain").unwrap();
    let minimum = pspec.downcast::<glib::ParamSpecDouble>().unwrap().minimum();
    assert!(minimum > 0.0 && minimum < 1e-300, "{minimum}");
}

#[test]
fn temperature_properties_have_the_documented_defaults() {
    init();
    let e = gst::ElementFactory::make("thermaldetect").build().unwrap();
    let v = e.property_value("radiometry");
    assert_eq!(glib::EnumValue::from_value(&v).unwrap().1.nick(), "none");
    assert_eq!(e.property::<f64>("radiometric-gain"), 0.01);
    assert_eq!(e.property::<f64>("radiometric-offset"), 0.0);
    assert_eq!(e.property::<Option<String>>("temperature-gate"), None);
    assert!(e.property::<bool>("draw-temperature"));
    assert!(!e.property::<bool>("draw-hotspot"));
}

/// One frame (36 °C hot square, in 1/64 K) through the element with `props`; the
/// output bytes.
fn drawn(layout: Layout, props: &[(&str, &str)]) -> Vec<u8> {
    let mut all = vec![("radiometry", "p2pro")];
    if layout == Layout::P2Pro {
        all.push(("input-layout", "thermal-bottom-half"));
    }
    all.extend_from_slice(props);
    let mut run = harness(&all);
    run.h.set_src_caps(layout.caps());
    let counts = Counts {
        hot: 19_785,
        cold: 17_482,
    };
    let out = run.h.push_and_pull(layout.buffer(counts, 0)).unwrap();
    out.map_readable().unwrap().to_vec()
}

#[test]
fn draw_temperature_writes_the_box_maximum_into_the_label() {
    let (with, without) = (
        drawn(Layout::Gray16Le, &[]),
        drawn(Layout::Gray16Le, &[("draw-temperature", "false")]),
    );
    // The hot box's label fills rows 40..62 above it (font scale 2), its bottom edge
    // with the black rim rows 128..133.
    let row = |data: &[u8], y: usize| data[2 * y * W..2 * (y + 1) * W].to_vec();
    assert_ne!(
        row(&with, 45),
        row(&without, 45),
        "the label above the hot box"
    );
    assert_eq!(
        row(&with, 131),
        row(&without, 131),
        "the boxes are the same"
    );
}

#[test]
fn draw_hotspot_marks_the_hottest_pixel_also_without_boxes() {
    let white = 0xffffu16.to_le_bytes();
    let px = |data: &[u8], x: usize, y: usize| [data[2 * (y * W + x)], data[2 * (y * W + x) + 1]];
    // An arm of the crosshair right of the hot square's first pixel (192, 64), inside
    // the box where nothing else is drawn.
    let (with, without) = (
        drawn(
            Layout::Gray16Le,
            &[("draw-hotspot", "true"), ("draw", "false")],
        ),
        drawn(Layout::Gray16Le, &[("draw", "false")]),
    );
    assert_eq!(px(&with, 200, 64), white);
    assert_ne!(px(&without, 200, 64), white);
    assert_eq!(
        px(&with, 192, 64),
        px(&without, 192, 64),
        "the pixel itself"
    );
    assert_eq!(px(&with, 10, 10), px(&without, 10, 10), "far from it");

    // P2 Pro: on the image half at the counts' coordinates; the counts untouched.
    let with = drawn(Layout::P2Pro, &[("draw-hotspot", "true")]);
    let without = drawn(Layout::P2Pro, &[]);
    assert_eq!(
        with[2 * (64 * W + 200)],
        235,
        "white luma on the image half"
    );
    assert_eq!(without[2 * (64 * W + 200)], 128);
    assert_eq!(
        with[2 * W * H..],
        without[2 * W * H..],
        "the radiometric half"
    );
}
