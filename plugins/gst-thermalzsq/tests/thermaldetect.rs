//! `thermaldetect` in a Harness: every format, every output channel, properties and
//! failures. The detector is the hot/cold grid-cell test model
//! (tests/fixtures/models/hotspot_v8.onnx): a bright square on a grid cell is a `hot`
//! object, a dark one `cold`, each boxed exactly on its cell.

mod common;

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use thermalzsq::imaging::PixelFormat;
use thermalzsq::imaging::frame::encode_grey;

use common::{DetectRun, detect_harness as harness, fixture, init, recording_buffer};

const W: usize = 640;
const H: usize = 512;
const HOT: [u32; 4] = [192, 64, 64, 64];
const COLD: [u32; 4] = [448, 320, 64, 64];

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-td-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Mid-grey with a hot square at HOT and a cold one at COLD (frame pixels), scaled to
/// `w`×`h`.
fn scene(w: usize, h: usize) -> Vec<u8> {
    let inside = |r: [u32; 4], x: usize, y: usize| {
        let (x, y) = ((x * W / w) as u32, (y * H / h) as u32);
        (r[0]..r[0] + r[2]).contains(&x) && (r[1]..r[1] + r[3]).contains(&y)
    };
    let mut grey = vec![128u8; w * h];
    for y in 0..h {
        for x in 0..w {
            if inside(HOT, x, y) {
                grey[y * w + x] = 250;
            } else if inside(COLD, x, y) {
                grey[y * w + x] = 5;
            }
        }
    }
    grey
}

fn caps(format: PixelFormat, w: usize, h: usize) -> gst::Caps {
    gst_video::VideoInfo::builder(format.name().parse().unwrap(), w as u32, h as u32)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .unwrap()
        .to_caps()
        .unwrap()
}

/// A GStreamer buffer holding the scene in `format`, laid out as GStreamer lays it out.
fn buffer(format: PixelFormat, w: usize, h: usize, pts_ms: u64) -> gst::Buffer {
    let info = gst_video::VideoInfo::builder(format.name().parse().unwrap(), w as u32, h as u32)
        .build()
        .unwrap();
    let planes = encode_grey(format, w, h, &scene(w, h));
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(b, &info).unwrap();
        for (p, (data, packed_stride)) in planes.iter().enumerate() {
            let stride = frame.plane_stride()[p] as usize;
            let dst = frame.plane_data_mut(p as u32).unwrap();
            for (row, src) in data.chunks_exact(*packed_stride).enumerate() {
                dst[row * stride..row * stride + packed_stride].copy_from_slice(src);
            }
        }
    }
    buf
}

fn rois(buf: &gst::BufferRef) -> Vec<(String, [u32; 4], String, i32, f64)> {
    buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| {
            let p = m.param("detection").expect("detection params");
            let (x, y, w, h) = m.rect();
            (
                m.roi_type().to_string(),
                [x, y, w, h],
                p.get::<String>("label").unwrap(),
                p.get::<i32>("class-id").unwrap(),
                p.get::<f64>("confidence").unwrap(),
            )
        })
        .collect()
}

fn detection_messages(bus: &gst::Bus) -> Vec<gst::Structure> {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "thermaldetect")
                .map(|s| s.to_owned()),
            _ => None,
        })
        .collect()
}

fn assert_hot_and_cold_rois(buf: &gst::BufferRef, what: &str) {
    let mut rois = rois(buf);
    rois.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rois.len(), 2, "{what}: {rois:?}");
    let (cold, hot) = (&rois[0], &rois[1]);
    assert_eq!(
        (hot.0.as_str(), hot.1, hot.2.as_str(), hot.3),
        ("hot", HOT, "hot", 0),
        "{what}"
    );
    assert_eq!(
        (cold.0.as_str(), cold.1, cold.3),
        ("cold", COLD, 1),
        "{what}"
    );
    assert!(hot.4 > 0.9 && cold.4 > 0.9, "{what}: confidences");
}

#[test]
fn every_format_gets_boxes_metas_messages_and_json() {
    for format in PixelFormat::ALL {
        let json = tmp(&format!("{}.json", format.name()));
        let mut run = harness(&[("json-location", json.to_str().unwrap())]);
        run.h.set_src_caps(caps(format, W, H));
        let input = buffer(format, W, H, 0);
        let out = run.h.push_and_pull(input.clone()).unwrap();

        assert_hot_and_cold_rois(&out, format.name());

        // Drawn in place: the box outline changed the frame, the inside of the box did not.
        let info = gst_video::VideoInfo::from_caps(&caps(format, W, H)).unwrap();
        let before =
            gst_video::VideoFrameRef::from_buffer_ref_readable(input.as_ref(), &info).unwrap();
        let after =
            gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &info).unwrap();
        let (a, b) = (before.plane_data(0).unwrap(), after.plane_data(0).unwrap());
        let stride = before.plane_stride()[0] as usize;
        let bpp = before.comp_pstride(0) as usize;
        let at = |data: &[u8], x: usize, y: usize| data[y * stride + x * bpp];
        assert_ne!(
            at(a, 220, 63),
            at(b, 220, 63),
            "{format}: top edge of the hot box drawn"
        );
        assert_eq!(
            at(a, 224, 96),
            at(b, 224, 96),
            "{format}: inside of the hot box untouched"
        );

        let msgs = detection_messages(&run.bus);
        assert_eq!(msgs.len(), 1, "{format}");
        assert_eq!(msgs[0].get::<u64>("frame").unwrap(), 0);
        assert_eq!(msgs[0].get::<u64>("pts").unwrap(), 0);
        let dets = msgs[0].get::<gst::List>("detections").unwrap();
        assert_eq!(dets.len(), 2, "{format}");
        let hot = dets
            .iter()
            .map(|v| v.get::<gst::Structure>().unwrap())
            .find(|s| s.get::<String>("label").unwrap() == "hot")
            .unwrap();
        assert_eq!(hot.name(), "detection");
        assert_eq!(hot.get::<i32>("class-id").unwrap(), 0);
        assert_eq!(
            ["x", "y", "width", "height"].map(|f| hot.get::<f64>(f).unwrap()),
            [192.0, 64.0, 64.0, 64.0],
            "{format}"
        );

        drop(run); // stop: flush the JSON file
        let text = std::fs::read_to_string(&json).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["frame"], 0);
        assert_eq!(line["pts"], 0);
        assert!(line["model"].as_str().unwrap().ends_with("hotspot_v8.onnx"));
        let hot = line["detections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["label"] == "hot")
            .unwrap();
        assert_eq!(hot["class_id"], 0);
        assert_eq!(
            hot["box"],
            serde_json::json!([192.0, 64.0, 256.0, 128.0]),
            "{format}"
        );
    }
}

#[test]
fn an_end_to_end_head_boxes_the_squares_exactly_as_the_nms_heads_do() {
    let v10 = fixture("hotspot_v10.onnx");
    for format in [PixelFormat::Gray16Le, PixelFormat::Gray8] {
        let mut run = harness(&[("model", v10.to_str().unwrap())]);
        run.h.set_src_caps(caps(format, W, H));
        let out = run.h.push_and_pull(buffer(format, W, H, 0)).unwrap();
        assert_hot_and_cold_rois(&out, format.name());
    }
}

#[test]
fn interval_reuses_the_last_result_and_draw_can_be_off() {
    let mut run = harness(&[
        ("interval", "3"),
        ("draw", "false"),
        ("post-messages", "false"),
    ]);
    run.h.set_src_caps(caps(PixelFormat::Gray16Le, W, H));
    for i in 0..4u64 {
        let input = buffer(PixelFormat::Gray16Le, W, H, i * 33);
        let out = run.h.push_and_pull(input.clone()).unwrap();
        assert_hot_and_cold_rois(&out, &format!("frame {i}"));
        let (a, b) = (input.map_readable().unwrap(), out.map_readable().unwrap());
        assert!(
            a.as_slice() == b.as_slice(),
            "draw=false leaves pixels alone"
        );
    }
    assert!(
        detection_messages(&run.bus).is_empty(),
        "post-messages=false"
    );
}

#[test]
fn a_new_frame_size_renegotiates() {
    let mut run = harness(&[]);
    run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    assert_hot_and_cold_rois(
        &run.h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, 0))
            .unwrap(),
        "640x512",
    );
    run.h.set_src_caps(caps(PixelFormat::Gray8, W / 2, H / 2));
    let out = run
        .h
        .push_and_pull(buffer(PixelFormat::Gray8, W / 2, H / 2, 33))
        .unwrap();
    let hot = rois(&out).into_iter().find(|r| r.0 == "hot").unwrap();
    assert_eq!(hot.1, HOT.map(|v| v / 2), "boxes in the new frame's pixels");
}

#[test]
fn thresholds_and_labels_are_properties() {
    let labels = tmp("labels.txt");
    std::fs::write(&labels, "warm\nchilly\n").unwrap();
    let mut run = harness(&[
        ("labels", labels.to_str().unwrap()),
        ("max-detections", "1"),
    ]);
    run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    let out = run
        .h
        .push_and_pull(buffer(PixelFormat::Gray8, W, H, 0))
        .unwrap();
    let r = rois(&out);
    assert_eq!(r.len(), 1);
    assert!(r[0].0 == "warm" || r[0].0 == "chilly", "{r:?}");

    // Live change: nothing is that confident.
    run.h
        .element()
        .unwrap()
        .set_property("conf-threshold", 1.0f32);
    let out = run
        .h
        .push_and_pull(buffer(PixelFormat::Gray8, W, H, 33))
        .unwrap();
    assert!(rois(&out).is_empty());
}

#[test]
fn properties_have_the_documented_defaults_and_report_what_runs() {
    init();
    let e = gst::ElementFactory::make("thermaldetect").build().unwrap();
    assert_eq!(e.property::<f32>("conf-threshold"), 0.25);
    assert_eq!(e.property::<f32>("iou-threshold"), 0.45);
    assert_eq!(e.property::<u32>("max-detections"), 100);
    assert_eq!(e.property::<u32>("interval"), 1);
    assert_eq!(e.property::<f64>("agc-low"), 1.0);
    assert_eq!(e.property::<f64>("agc-high"), 99.0);
    assert_eq!(e.property::<u32>("box-thickness"), 2);
    assert!(
        e.property::<bool>("draw")
            && e.property::<bool>("draw-labels")
            && e.property::<bool>("post-messages")
    );
    let nick = |p: &str| {
        let v = e.property_value(p);
        glib::EnumValue::from_value(&v)
            .unwrap()
            .1
            .nick()
            .to_string()
    };
    assert_eq!(nick("execution-provider"), "auto");
    assert_eq!(nick("agc"), "percentile");
    assert_eq!(nick("polarity"), "white-hot");
    assert_eq!(e.property::<Option<String>>("active-model"), None);

    let run = harness(&[("execution-provider", "cpu")]);
    let e = run.h.element().unwrap();
    assert!(
        e.property::<Option<String>>("active-model")
            .unwrap()
            .ends_with("hotspot_v8.onnx")
    );
    assert_eq!(
        e.property::<Option<String>>("active-provider").as_deref(),
        Some("cpu")
    );
}

fn pipeline(props: &[(&str, &str)]) -> gst::Pipeline {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("videotestsrc")
        .property("num-buffers", 1)
        .build()
        .unwrap();
    let det = gst::ElementFactory::make("thermaldetect").build().unwrap();
    for (name, value) in props {
        det.set_property_from_str(name, value);
    }
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline.add_many([&src, &det, &sink]).unwrap();
    gst::Element::link_many([&src, &det, &sink]).unwrap();
    pipeline
}

fn first_error(pipeline: &gst::Pipeline) -> String {
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error message");
    pipeline.set_state(gst::State::Null).unwrap();
    match msg.view() {
        gst::MessageView::Error(e) => e.error().to_string(),
        _ => unreachable!(),
    }
}

/// Starting fails with an error message on the bus that names the cause.
fn start_error(props: &[(&str, &str)]) -> String {
    let pipeline = pipeline(props);
    assert!(
        pipeline.set_state(gst::State::Paused).is_err(),
        "start must fail"
    );
    first_error(&pipeline)
}

#[test]
fn without_a_model_or_an_announcement_the_first_frame_is_an_error() {
    let pipeline = pipeline(&[]);
    pipeline.set_state(gst::State::Playing).unwrap();
    let e = first_error(&pipeline);
    assert!(e.contains("No model: set `model`"), "{e}");
}

#[test]
fn bad_input_fails_at_start_with_the_cause() {
    let model = fixture("hotspot_v8.onnx");
    let model = model.to_str().unwrap();

    let e = start_error(&[("model", "/nonexistent/det.onnx")]);
    assert!(e.contains("cannot read model /nonexistent/det.onnx"), "{e}");

    let corrupt = tmp("corrupt.onnx");
    std::fs::write(&corrupt, b"this is not a protobuf").unwrap();
    let e = start_error(&[("model", corrupt.to_str().unwrap())]);
    assert!(e.contains("corrupt.onnx"), "{e}");

    let e = start_error(&[("model", fixture("not_a_detector.onnx").to_str().unwrap())]);
    assert!(e.contains("no output in a known detector layout"), "{e}");

    let e = start_error(&[("model", model), ("labels", "/nonexistent/labels.txt")]);
    assert!(
        e.contains("cannot read labels /nonexistent/labels.txt"),
        "{e}"
    );

    // TensorRT: an error that says so where this ONNX Runtime lacks it, else it runs.
    if thermalzsq::runtime::Provider::TensorRt
        .is_compiled_in()
        .unwrap()
    {
        let run = harness(&[("execution-provider", "tensorrt")]);
        let e = run.h.element().unwrap();
        assert_eq!(
            e.property::<Option<String>>("active-provider").as_deref(),
            Some("tensorrt")
        );
    } else {
        let e = start_error(&[("model", model), ("execution-provider", "tensorrt")]);
        assert!(
            e.contains("execution provider tensorrt is not available"),
            "{e}"
        );
    }

    let e = start_error(&[
        ("model", model),
        ("json-location", "/nonexistent/dir/out.json"),
    ]);
    assert!(
        e.contains("Cannot write detections to /nonexistent/dir/out.json"),
        "{e}"
    );
}

/// The scene as one tightly packed buffer (no row padding) with a VideoMeta giving
/// its layout, as a camera driver or a decoder with its own pool would hand it over.
fn packed_buffer(format: PixelFormat, w: usize, h: usize) -> gst::Buffer {
    let planes = encode_grey(format, w, h, &scene(w, h));
    let (mut offsets, mut strides, mut data) = (Vec::new(), Vec::new(), Vec::new());
    for (plane, stride) in &planes {
        offsets.push(data.len());
        strides.push(*stride as i32);
        data.extend_from_slice(plane);
    }
    let mut buf = gst::Buffer::from_slice(data);
    gst_video::VideoMeta::add_full(
        buf.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        format.name().parse().unwrap(),
        w as u32,
        h as u32,
        &offsets,
        &strides,
    )
    .unwrap();
    buf
}

#[test]
fn odd_sizes_with_padded_strides_run_in_every_format() {
    // 157x117: GStreamer pads the rows of every format but the 4-byte ones to a
    // multiple of 4; the packed buffer with a VideoMeta has no padding at all. Both
    // must find the same objects, and find them.
    let (w, h) = (157, 117);
    for format in PixelFormat::ALL {
        let mut run = harness(&[]);
        run.h.set_src_caps(caps(format, w, h));
        let padded = rois(&run.h.push_and_pull(buffer(format, w, h, 0)).unwrap());
        let packed = rois(&run.h.push_and_pull(packed_buffer(format, w, h)).unwrap());
        assert_eq!(padded, packed, "{format}: padding changes nothing");
        let labels: Vec<&str> = padded.iter().map(|r| r.0.as_str()).collect();
        assert!(
            labels.contains(&"hot") && labels.contains(&"cold"),
            "{format}: both objects found at {w}x{h}: {padded:?}"
        );
        for r in &padded {
            assert!(
                r.1[0] + r.1[2] <= w as u32 && r.1[1] + r.1[3] <= h as u32,
                "{format}: {r:?} inside the frame"
            );
        }
    }
}

/// Element errors posted so far, as (domain error, message).
fn errors(bus: &gst::Bus) -> Vec<(glib::Error, String)> {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some((e.error(), e.error().to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_truncated_buffer_is_a_stream_error_not_a_crash() {
    let json = tmp("truncated.json");
    let mut run = harness(&[("json-location", json.to_str().unwrap())]);
    run.h.set_src_caps(caps(PixelFormat::Gray16Le, W, H));
    let short = gst::Buffer::with_size(W * H).unwrap(); // half a GRAY16 frame
    assert_eq!(run.h.push(short), Err(gst::FlowError::Error));

    // Exactly one error, a stream error that says what is missing; nothing of the
    // half frame went on: no buffer, no detections message, no JSON line.
    let errors = errors(&run.bus);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (error, text) = &errors[0];
    assert!(error.matches(gst::StreamError::Failed), "{error:?}");
    assert!(
        text.contains("Cannot map the frame") && text.contains(&format!("{}", W * H)),
        "{text}"
    );
    assert!(run.h.try_pull().is_none(), "the half frame went downstream");
    assert!(detection_messages(&run.bus).is_empty());

    // Not a crash: the element takes the next whole frame as if nothing happened.
    let out = run
        .h
        .push_and_pull(buffer(PixelFormat::Gray16Le, W, H, 33))
        .unwrap();
    assert_hot_and_cold_rois(&out, "the frame after the short one");
    drop(run);
    let lines = std::fs::read_to_string(&json).unwrap();
    assert_eq!(lines.lines().count(), 1, "only the whole frame: {lines}");
    let line: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(line["frame"], 1, "the short buffer kept its index");
}

/// The scene in GRAY8 whose VideoMeta gives the one plane `offset` and `stride`.
fn with_stride(offset: usize, stride: i32) -> gst::Buffer {
    let mut buf = buffer(PixelFormat::Gray8, W, H, 0);
    gst_video::VideoMeta::add_full(
        buf.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Gray8,
        W as u32,
        H as u32,
        &[offset],
        &[stride],
    )
    .unwrap();
    buf
}

#[test]
fn negative_and_huge_strides_in_a_video_meta_are_stream_errors_not_panics() {
    // Bottom-up (last row first, negative stride), a stride past the end of the
    // buffer, one that overflows 32-bit arithmetic, and an offset past the end.
    let cases = [
        (W * (H - 1), -(W as i32), "negative stride"),
        (0, 4 * W as i32, "need"),
        (0, i32::MAX, "need"),
        (W * H + 1, W as i32, "past the end"),
    ];
    for (offset, stride, says) in cases {
        // interval=2: frame 0 is detected on, frame 1 only drawn on (the last boxes).
        for bad_frame in [0, 1] {
            let mut run = harness(&[("interval", "2")]);
            run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
            let what = format!("offset {offset}, stride {stride}, bad frame {bad_frame}");
            if bad_frame == 1 {
                let out = run
                    .h
                    .push_and_pull(buffer(PixelFormat::Gray8, W, H, 0))
                    .unwrap();
                assert_hot_and_cold_rois(&out, &what);
            }
            assert_eq!(
                run.h.push(with_stride(offset, stride)),
                Err(gst::FlowError::Error),
                "{what}"
            );
            let errors = errors(&run.bus);
            assert_eq!(errors.len(), 1, "{what}: {errors:?}");
            assert!(
                errors[0].0.matches(gst::StreamError::Failed),
                "{what}: {errors:?}"
            );
            assert!(errors[0].1.contains(says), "{what}: {}", errors[0].1);
            // The element did not panic: good frames go through, frame 2 is detected.
            if bad_frame == 0 {
                run.h
                    .push_and_pull(buffer(PixelFormat::Gray8, W, H, 33))
                    .unwrap();
            }
            let out = run
                .h
                .push_and_pull(buffer(PixelFormat::Gray8, W, H, 66))
                .unwrap();
            assert_hot_and_cold_rois(&out, &what);
        }
    }
}

/// The announced model's precision as the `thermaldetect-model` messages tell it.
fn model_changes(bus: &gst::Bus) -> Vec<(String, String, u64)> {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "thermaldetect-model")
                .map(|s| {
                    (
                        s.get::<String>("location").unwrap(),
                        s.get::<String>("precision").unwrap(),
                        s.get::<u64>("frame").unwrap(),
                    )
                }),
            _ => None,
        })
        .collect()
}

fn announcement(model: &str, precision: &str) -> gstthermalzsq::modelevent::ModelAnnouncement {
    let location = fixture(model);
    gstthermalzsq::modelevent::ModelAnnouncement {
        location: location.clone(),
        data: None,
        source: fixture("hotspot_v8.onnx"),
        sha256: "0".repeat(64),
        precision: precision.into(),
        report: None,
    }
}

#[test]
fn an_announced_model_is_swapped_in_between_frames_without_losing_any() {
    let json = tmp("swap.json");
    let mut run = harness(&[("json-location", json.to_str().unwrap())]);
    run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    let mut outputs = 0;
    for i in 0..3 {
        let out = run
            .h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, i * 33))
            .unwrap();
        assert_hot_and_cold_rois(&out, "before the swap");
        outputs += 1;
    }
    assert!(
        run.h
            .push_event(announcement("hotspot_v5.onnx", "u8s8").to_event())
    );
    // The load runs on a thread; frames keep flowing meanwhile.
    let mut pushed = 3;
    while !active_model(&run.h).unwrap().ends_with("hotspot_v5.onnx") {
        assert!(pushed < 500, "the announced model never became active");
        let out = run
            .h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, pushed * 33))
            .unwrap();
        assert_hot_and_cold_rois(&out, "while loading");
        outputs += 1;
        pushed += 1;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for _ in 0..3 {
        let out = run
            .h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, pushed * 33))
            .unwrap();
        assert_hot_and_cold_rois(&out, "after the swap");
        outputs += 1;
        pushed += 1;
    }
    assert_eq!(outputs, pushed, "buffers in == buffers out");

    let changes = model_changes(&run.bus);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].0.ends_with("hotspot_v8.onnx") && changes[0].2 == 0);
    assert!(changes[1].0.ends_with("hotspot_v5.onnx") && changes[1].1 == "u8s8");
    let swapped_at = changes[1].2;

    drop(run);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, pushed, "one line per frame, none twice");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["frame"], i as u64);
        let model = line["model"].as_str().unwrap();
        let want = if (i as u64) < swapped_at {
            "hotspot_v8.onnx"
        } else {
            "hotspot_v5.onnx"
        };
        assert!(model.ends_with(want), "frame {i}: {model}");
    }
}

/// A model file that is a named pipe: loading it reads until the test writes the model
/// in, so the test, not the clock, decides when a load ends (a TensorRT engine build
/// in miniature).
struct SlowModel {
    path: PathBuf,
    released: bool,
}

impl SlowModel {
    fn new(name: &str) -> Self {
        let path = tmp(name);
        let _ = std::fs::remove_file(&path);
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {}", path.display());
        SlowModel {
            path,
            released: false,
        }
    }

    fn announcement(&self) -> gstthermalzsq::modelevent::ModelAnnouncement {
        let mut a = announcement("hotspot_v8.onnx", "fp32");
        a.location = self.path.clone();
        a
    }

    /// Lets the load finish: writes the model into the pipe, on a thread of its own
    /// (opening the pipe waits for the loader to open it too).
    fn release(&mut self) {
        if !std::mem::replace(&mut self.released, true) {
            let path = self.path.clone();
            std::thread::spawn(move || {
                let model = std::fs::read(fixture("hotspot_v8.onnx")).unwrap();
                std::fs::write(path, model).unwrap();
            });
        }
    }

    /// Pushes the announcement of this model. A sink_event that waited for the load
    /// would wait for ever on the empty pipe: after a minute a watchdog fills it, so
    /// that such an element fails this test instead of hanging it.
    fn announce(&mut self, h: &mut Harness) {
        let (done, watch) = std::sync::mpsc::channel::<()>();
        let path = self.path.clone();
        let watchdog = std::thread::spawn(move || {
            let timeout = std::time::Duration::from_secs(60);
            if watch.recv_timeout(timeout).is_ok() {
                return false;
            }
            let model = std::fs::read(fixture("hotspot_v8.onnx")).unwrap();
            std::fs::write(path, model).unwrap();
            true
        });
        assert!(h.push_event(self.announcement().to_event()));
        let _ = done.send(());
        let filled = watchdog.join().unwrap();
        self.released |= filled;
        assert!(!filled, "sink_event waited for the announced model to load");
    }
}

/// `thermaldetect` without a `model` of its own, waiting for an announced one.
fn harness_without_model(props: &[(&str, &str)]) -> DetectRun {
    init();
    let element = gst::ElementFactory::make("thermaldetect").build().unwrap();
    for (name, value) in props {
        element.set_property_from_str(name, value);
    }
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    DetectRun { h, bus }
}

fn active_model(h: &Harness) -> Option<String> {
    h.element().unwrap().property("active-model")
}

#[test]
fn with_wait_for_model_false_frames_pass_undetected_until_the_announced_model_is_ready() {
    let json = tmp("pass-through.json");
    let mut run = harness_without_model(&[
        ("wait-for-model", "false"),
        ("json-location", json.to_str().unwrap()),
    ]);
    let mut slow = SlowModel::new("pass-through.onnx");
    slow.announce(&mut run.h);

    // The pipe is empty, so the model cannot be there yet: frames pass untouched.
    let mut pushed = 0u64;
    for _ in 0..3 {
        let input = buffer(PixelFormat::Gray8, W, H, pushed * 33);
        let out = run.h.push_and_pull(input.clone()).unwrap();
        assert!(rois(&out).is_empty());
        let (a, b) = (input.map_readable().unwrap(), out.map_readable().unwrap());
        assert!(a.as_slice() == b.as_slice(), "nothing drawn");
        pushed += 1;
    }
    assert!(detection_messages(&run.bus).is_empty());
    assert_eq!(active_model(&run.h), None);

    slow.release();
    while active_model(&run.h).is_none() {
        assert!(pushed < 1000, "the announced model never became active");
        run.h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, pushed * 33))
            .unwrap();
        pushed += 1;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for _ in 0..3 {
        let out = run
            .h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, pushed * 33))
            .unwrap();
        assert_hot_and_cold_rois(&out, "once the model is ready");
        pushed += 1;
    }
    let changes = model_changes(&run.bus);
    assert_eq!(changes.len(), 1, "{changes:?}");
    let first_detected = changes[0].2;
    assert!(first_detected >= 3, "{changes:?}");

    drop(run);
    let frames: Vec<u64> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["frame"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        frames,
        (first_detected..pushed).collect::<Vec<_>>(),
        "a JSON line per detected frame, none for the frames that passed"
    );
}

#[test]
fn with_wait_for_model_frames_wait_for_the_announced_model_and_none_is_lost_or_undetected() {
    let mut run = harness_without_model(&[]);
    let mut slow = SlowModel::new("wait.onnx");
    slow.announce(&mut run.h);

    let DetectRun { mut h, bus } = run;
    let (started, pushing) = std::sync::mpsc::channel();
    let pusher = std::thread::spawn(move || {
        started.send(()).unwrap();
        let outs: Vec<gst::Buffer> = (0..3u64)
            .map(|i| {
                h.push_and_pull(buffer(PixelFormat::Gray8, W, H, i * 33))
                    .unwrap()
            })
            .collect();
        (outs, h)
    });
    pushing.recv().unwrap();
    // Let the first frame reach the element (the test holds whichever comes first).
    std::thread::sleep(std::time::Duration::from_millis(100));
    slow.release();
    let (outs, h) = pusher.join().unwrap();
    assert_eq!(outs.len(), 3);
    for (i, out) in outs.iter().enumerate() {
        assert_hot_and_cold_rois(out, &format!("frame {i}"));
    }
    let changes = model_changes(&bus);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].2, 0, "the first frame already ran the model");
    assert!(
        h.element().unwrap().property::<bool>("wait-for-model"),
        "waiting is the default"
    );
}

#[test]
fn a_frame_waiting_for_the_model_gives_up_on_flush_and_on_stop() {
    let mut run = harness_without_model(&[]);
    let mut slow = SlowModel::new("flush.onnx");
    slow.announce(&mut run.h);
    let element = run.h.element().unwrap();
    let sinkpad = element.static_pad("sink").unwrap();

    let DetectRun { mut h, bus: _bus } = run;
    let (to_test, from_pusher) = std::sync::mpsc::channel();
    let (to_pusher, from_test) = std::sync::mpsc::channel::<()>();
    let pusher = std::thread::spawn(move || {
        to_test.send(None).unwrap();
        let first = h.push(buffer(PixelFormat::Gray8, W, H, 0));
        to_test.send(Some(first)).unwrap();
        from_test.recv().unwrap();
        h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()));
        to_test.send(None).unwrap();
        let second = h.push(buffer(PixelFormat::Gray8, W, H, 33));
        (second, h)
    });

    // Flush: the waiting frame returns, flushing.
    assert_eq!(from_pusher.recv().unwrap(), None);
    std::thread::sleep(std::time::Duration::from_millis(100)); // let it start waiting
    assert!(sinkpad.send_event(gst::event::FlushStart::new()));
    assert_eq!(
        from_pusher.recv().unwrap(),
        Some(Err(gst::FlowError::Flushing))
    );
    assert!(sinkpad.send_event(gst::event::FlushStop::new(true)));

    // Stop: the next waiting frame returns, and the state change goes through
    // (once the load it must wait for is over).
    to_pusher.send(()).unwrap();
    assert_eq!(from_pusher.recv().unwrap(), None);
    std::thread::sleep(std::time::Duration::from_millis(100)); // let it start waiting
    let stopper = {
        let element = element.clone();
        std::thread::spawn(move || element.set_state(gst::State::Null))
    };
    let (second, h) = pusher.join().unwrap();
    assert_eq!(second, Err(gst::FlowError::Flushing));
    // The load still reads the empty pipe: stopping waits for its thread, so that no
    // thread outlives the session.
    assert!(
        !stopper.is_finished(),
        "stop left the loading thread behind"
    );
    slow.release();
    assert!(stopper.join().unwrap().is_ok());
    assert_eq!(element.current_state(), gst::State::Null);
    drop(h);
}

#[test]
fn json_lines_are_written_in_batches_and_reach_the_disk_at_eos_stop_and_drop() {
    // A disk write per frame wears an SD card out: one frame's line mid-stream stays
    // in memory; EOS, stopping and dropping the element each put every line on disk.
    let on_disk = |p: &PathBuf| std::fs::read_to_string(p).unwrap().lines().count();
    let json = tmp("batched-eos.json");
    let mut run = harness(&[("json-location", json.to_str().unwrap())]);
    run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    run.h
        .push_and_pull(buffer(PixelFormat::Gray8, W, H, 0))
        .unwrap();
    assert_eq!(on_disk(&json), 0, "one frame is not a disk write");
    assert!(run.h.push_event(gst::event::Eos::new()));
    assert_eq!(on_disk(&json), 1, "EOS writes every line");

    let json = tmp("batched-stop.json");
    let mut run = harness(&[("json-location", json.to_str().unwrap())]);
    run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    for i in 0..3 {
        run.h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, i * 33))
            .unwrap();
    }
    run.h
        .element()
        .unwrap()
        .set_state(gst::State::Null)
        .unwrap();
    assert_eq!(on_disk(&json), 3, "stopping without EOS writes every line");

    let json = tmp("batched-drop.json");
    let mut run = harness(&[("json-location", json.to_str().unwrap())]);
    run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    for i in 0..3 {
        run.h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, i * 33))
            .unwrap();
    }
    drop(run);
    assert_eq!(on_disk(&json), 3, "dropping the element writes every line");
}

#[test]
fn without_its_own_model_the_element_runs_the_announced_one_from_the_first_frame() {
    init();
    let element = gst::ElementFactory::make("thermaldetect").build().unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(caps(PixelFormat::Gray16Le, W, H));
    assert!(h.push_event(announcement("hotspot_v8.onnx", "fp32").to_event()));
    let out = h
        .push_and_pull(buffer(PixelFormat::Gray16Le, W, H, 0))
        .unwrap();
    assert_hot_and_cold_rois(&out, "first frame");
    assert_eq!(model_changes(&bus).len(), 1);
}

#[test]
fn a_broken_announced_model_keeps_the_running_one_with_a_warning() {
    let broken = tmp("broken.onnx");
    std::fs::write(&broken, b"not a model").unwrap();
    let mut run = harness(&[]);
    run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    let mut a = announcement("hotspot_v5.onnx", "u8s8");
    a.location = broken;
    assert!(run.h.push_event(a.to_event()));
    let mut warned = false;
    for i in 0..300 {
        let out = run
            .h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, i * 33))
            .unwrap();
        assert_hot_and_cold_rois(&out, "the running model keeps detecting");
        warned = std::iter::from_fn(|| run.bus.pop()).any(|m| match m.view() {
            gst::MessageView::Warning(w) => w
                .error()
                .to_string()
                .contains("Cannot load announced model, keeping"),
            _ => false,
        });
        if warned {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(warned, "a warning names the failed load");
    assert!(active_model(&run.h).unwrap().ends_with("hotspot_v8.onnx"));
}

#[test]
fn annotations_score_the_stream_at_eos() {
    // frames 0..4 carry the hot square at HOT; frame 4 of the annotations is never played
    let gt = tmp("gt.json");
    let images: Vec<_> = (0..5)
        .map(|i| serde_json::json!({"id": 100 + i, "file_name": format!("frame_{i:06}")}))
        .collect();
    let annotations: Vec<_> = (0..5)
        .map(|i| {
            serde_json::json!({"id": i + 1, "image_id": 100 + i, "category_id": 7,
                               "bbox": HOT.map(f64::from), "area": 4096.0, "iscrowd": 0})
        })
        .collect();
    let coco = serde_json::json!({"images": images, "annotations": annotations, "categories": [{"id": 7, "name": "hot"}]});
    std::fs::write(&gt, coco.to_string()).unwrap();

    let mut run = harness(&[
        ("annotations", gt.to_str().unwrap()),
        ("post-messages", "false"),
    ]);
    run.h.set_src_caps(caps(PixelFormat::Gray16Le, W, H));
    for i in 0..4 {
        run.h
            .push_and_pull(buffer(PixelFormat::Gray16Le, W, H, i * 33))
            .unwrap();
    }
    assert!(run.h.push_event(gst::event::Eos::new()));
    let score = std::iter::from_fn(|| run.bus.pop())
        .find_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "thermaldetect-eval")
                .map(|s| s.to_owned()),
            _ => None,
        })
        .expect("a thermaldetect-eval message at EOS");
    assert!(
        (score.get::<f64>("map").unwrap() - 1.0).abs() < 1e-9,
        "{score}"
    );
    assert!((score.get::<f64>("map50").unwrap() - 1.0).abs() < 1e-9);
    // pycocotools' whole summary: the 64x64 square is medium; small and large have no
    // ground truth (-1); recall is exact
    for key in ["map75", "map-medium"] {
        assert!(
            (score.get::<f64>(key).unwrap() - 1.0).abs() < 1e-9,
            "{key}: {score}"
        );
    }
    for key in ["ar1", "ar10", "ar100", "ar-medium"] {
        assert_eq!(score.get::<f64>(key).unwrap(), 1.0, "{key}: {score}");
    }
    for key in ["map-small", "map-large", "ar-small", "ar-large"] {
        assert_eq!(score.get::<f64>(key).unwrap(), -1.0, "{key}: {score}");
    }
    assert_eq!(score.get::<u64>("frames").unwrap(), 4);
    assert!(score.get::<f64>("latency-p50").unwrap() > 0.0);
    assert!(score.get::<f64>("latency-p95").unwrap() >= score.get::<f64>("latency-p50").unwrap());
    assert!(score.get::<f64>("fps").unwrap() > 0.0);
    assert_eq!(score.get::<f64>("conf-threshold").unwrap(), 0.25f32 as f64);
    let classes = score.get::<gst::List>("per-class").unwrap();
    let hot = classes
        .iter()
        .next()
        .unwrap()
        .get::<gst::Structure>()
        .unwrap();
    assert_eq!(hot.get::<String>("name").unwrap(), "hot");

    let e = start_error(&[
        ("model", fixture("hotspot_v8.onnx").to_str().unwrap()),
        ("annotations", "/nonexistent/gt.json"),
    ]);
    assert!(e.contains("Cannot read annotations"), "{e}");
}

#[test]
fn p2pro_layout_detects_on_the_counts_and_draws_on_the_image_half() {
    let (w, h) = (W, H);
    let mut run = harness(&[("input-layout", "thermal-bottom-half")]);
    run.h.set_src_caps(caps(PixelFormat::Yuy2, w, 2 * h));
    let mut data = vec![0u8; 2 * w * 2 * h];
    for (i, v) in scene(w, h).iter().enumerate() {
        data[2 * i] = 128;
        data[2 * i + 1] = 128;
        let counts: u16 = 18_000 + *v as u16 * 4; // 1/64 K
        data[2 * w * h + 2 * i..][..2].copy_from_slice(&counts.to_le_bytes());
    }
    let input = gst::Buffer::from_slice(data.clone());
    let out = run.h.push_and_pull(input).unwrap();
    assert_hot_and_cold_rois(&out, "P2 Pro");
    let map = out.map_readable().unwrap();
    assert_ne!(map[2 * (63 * w + 220)], 128, "box drawn on the image half");
    assert_eq!(
        &map[2 * w * h..],
        &data[2 * w * h..],
        "the radiometric half is left intact"
    );
}

#[test]
fn output_agc_replaces_counts_by_the_view_the_detector_saw() {
    let mut run = harness(&[("output-agc", "true"), ("draw", "false")]);
    run.h.set_src_caps(caps(PixelFormat::Gray16Le, W, H));
    let out = run
        .h
        .push_and_pull(buffer(PixelFormat::Gray16Le, W, H, 0))
        .unwrap();
    assert_hot_and_cold_rois(&out, "output-agc");
    let map = out.map_readable().unwrap();
    let px =
        |x: usize, y: usize| u16::from_le_bytes([map[2 * (y * W + x)], map[2 * (y * W + x) + 1]]);
    // counts 5·257 (cold), 128·257 (background), 250·257 (hot): stretched 0, 128, 255
    assert_eq!((px(0, 0), px(220, 90), px(470, 350)), (128 * 257, 65535, 0));
}

#[test]
fn agc_equalize_applies_plateau_histogram_equalisation() {
    use thermalzsq::imaging::agc::{Agc, agc_view};
    let mut run = harness(&[
        ("agc", "equalize"),
        ("output-agc", "true"),
        ("draw", "false"),
    ]);
    run.h.set_src_caps(caps(PixelFormat::Gray16Le, W, H));
    let input = buffer(PixelFormat::Gray16Le, W, H, 0);
    let counts = |b: &gst::Buffer| -> Vec<u16> {
        b.map_readable()
            .unwrap()
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect()
    };
    let want: Vec<u16> = agc_view(&counts(&input), &Agc::Equalize)
        .iter()
        .map(|&v| v as u16 * 257)
        .collect();
    let out = run.h.push_and_pull(input).unwrap();
    assert_hot_and_cold_rois(&out, "agc=equalize");
    assert_eq!(counts(&out), want, "the equalised view of the frame");
}

#[test]
fn output_agc_mode_equalize_changes_the_picture_not_what_the_detector_sees() {
    use thermalzsq::imaging::agc::{Agc, agc_view};
    let counts = |b: &gst::BufferRef| -> Vec<u16> {
        b.map_readable()
            .unwrap()
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect()
    };
    init();
    // The hot and cold blobs on a background with a faint texture (a few counts), which
    // a linear stretch leaves nearly flat and equalisation spreads over many levels.
    let input = {
        let mut buf = buffer(PixelFormat::Gray16Le, W, H, 0);
        let background = 128 * 257;
        let mut map = buf.get_mut().unwrap().map_writable().unwrap();
        for (i, px) in map.chunks_exact_mut(2).enumerate() {
            let v = u16::from_le_bytes([px[0], px[1]]);
            if v == background {
                let texture = ((i % W) / 8 + (i / W) / 8) % 24;
                px.copy_from_slice(&(v + texture as u16).to_le_bytes());
            }
        }
        drop(map);
        buf
    };
    let run_with = |mode: &str| {
        let mut run = harness(&[
            ("output-agc", "true"),
            ("output-agc-mode", mode),
            ("draw", "false"),
        ]);
        run.h.set_src_caps(caps(PixelFormat::Gray16Le, W, H));
        run.h.push_and_pull(input.copy()).unwrap()
    };
    let (detector, equalized) = (run_with("detector"), run_with("equalize"));
    let view = |agc: &Agc| -> Vec<u16> {
        agc_view(&counts(&input), agc)
            .iter()
            .map(|&v| v as u16 * 257)
            .collect()
    };
    let levels = |v: &[u16]| v.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(
        counts(&detector),
        view(&Agc::default()),
        "the detector's view"
    );
    assert_eq!(
        counts(&equalized),
        view(&Agc::Equalize),
        "the equalised view"
    );
    assert!(
        levels(&counts(&equalized)) > levels(&counts(&detector)) + 8,
        "equalisation spreads the texture: {} vs {} levels",
        levels(&counts(&equalized)),
        levels(&counts(&detector))
    );
    assert_hot_and_cold_rois(&equalized, "output-agc-mode=equalize");
    assert_eq!(rois(&detector), rois(&equalized), "detection is unchanged");
}

/// A copy of `model` without its `names` metadata: a detector as many exports leave it.
fn unnamed(model: &std::path::Path, name: &str) -> PathBuf {
    let mut m = thermalzsq::onnx::Model::load(model).unwrap();
    m.proto.metadata_props.retain(|e| e.key() != "names");
    let path = tmp(name);
    m.save(&path).unwrap();
    path
}

/// Writes a COCO file of the hot/cold scene over 3 frames with these categories
/// (`(id, name)`), the hot square of category `hot`, the cold one of `cold`.
fn hot_cold_annotations(name: &str, categories: &[(i64, &str)], hot: i64, cold: i64) -> PathBuf {
    let images: Vec<_> = (0..3)
        .map(|i| serde_json::json!({"id": i, "file_name": format!("frame_{i:06}")}))
        .collect();
    let annotations: Vec<_> = (0..3)
        .flat_map(|i| {
            [(hot, HOT), (cold, COLD)].map(|(category, bbox)| {
                serde_json::json!({"image_id": i, "category_id": category,
                                   "bbox": bbox.map(f64::from), "area": 4096.0, "iscrowd": 0})
            })
        })
        .enumerate()
        .map(|(n, mut a)| {
            a["id"] = serde_json::json!(n + 1);
            a
        })
        .collect();
    let categories: Vec<_> = categories
        .iter()
        .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
        .collect();
    let path = tmp(name);
    std::fs::write(
        &path,
        serde_json::json!({"images": images, "annotations": annotations, "categories": categories})
            .to_string(),
    )
    .unwrap();
    path
}

/// The warnings and errors on `bus` so far, as text (elements here run on
/// `execution-provider=cpu`: `auto` would warn where it runs).
fn warnings_and_errors(bus: &gst::Bus) -> (Vec<String>, Vec<String>) {
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    for m in std::iter::from_fn(|| bus.pop()) {
        match m.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Error(e) => errors.push(e.error().to_string()),
            _ => {}
        }
    }
    (warnings, errors)
}

/// The `thermaldetect-eval` message's mAP50-95 among `messages`.
fn score_map(messages: &[gst::Message]) -> f64 {
    messages
        .iter()
        .find_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "thermaldetect-eval")
                .map(|s| s.get::<f64>("map").unwrap()),
            _ => None,
        })
        .expect("a thermaldetect-eval message at EOS")
}

#[test]
fn a_model_without_names_is_scored_by_class_order_with_a_warning_that_states_it() {
    let model = unnamed(&fixture("hotspot_v8.onnx"), "hotspot_unnamed.onnx");
    // category ids in the other order than listed: by order means by id
    let gt = hot_cold_annotations("gt-hot-cold.json", &[(9, "cold"), (4, "hot")], 4, 9);
    let mut run = harness(&[
        ("execution-provider", "cpu"),
        ("model", model.to_str().unwrap()),
        ("annotations", gt.to_str().unwrap()),
        ("post-messages", "false"),
    ]);
    run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    for i in 0..3 {
        let out = run
            .h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, i * 33))
            .unwrap();
        let labels: Vec<String> = rois(&out).into_iter().map(|r| r.2).collect();
        assert!(labels.contains(&"class 0".to_string()), "{labels:?}");
    }
    assert!(run.h.push_event(gst::event::Eos::new()));
    let messages: Vec<gst::Message> = std::iter::from_fn(|| run.bus.pop()).collect();
    let warnings: Vec<String> = messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 1, "one warning, at start: {warnings:?}");
    assert!(
        warnings[0].contains(
            "the model names none of its 2 classes: scored by order as the annotations' categories, class 0 -> hot, class 1 -> cold"
        ),
        "{warnings:?}"
    );
    assert!(
        (score_map(&messages) - 1.0).abs() < 1e-9,
        "both classes scored"
    );
}

#[test]
fn classes_that_cannot_be_mapped_fail_at_start_naming_both_sides() {
    let named = fixture("hotspot_v8.onnx");
    let unnamed = unnamed(&named, "hotspot_unnamed_start.onnx");
    let one = hot_cold_annotations("gt-one.json", &[(1, "warm")], 1, 1);
    let e = start_error(&[
        ("model", named.to_str().unwrap()),
        ("annotations", one.to_str().unwrap()),
    ]);
    assert!(
        e.contains(
            "Cannot score against the annotations: the model's classes (hot, cold) match none of the annotations' categories (warm)"
        ),
        "{e}"
    );
    let e = start_error(&[
        ("model", unnamed.to_str().unwrap()),
        ("annotations", one.to_str().unwrap()),
    ]);
    assert!(
        e.contains(
            "the model names none of its 2 classes and the annotations have 1 categories (warm)"
        ) && e.contains("`labels=`"),
        "{e}"
    );
    // a labels file names them: scored by name, no error
    let labels = tmp("warm-labels.txt");
    std::fs::write(&labels, "warm\ncold\n").unwrap();
    let mut run = harness(&[
        ("execution-provider", "cpu"),
        ("model", unnamed.to_str().unwrap()),
        ("labels", labels.to_str().unwrap()),
        ("annotations", one.to_str().unwrap()),
    ]);
    run.h.set_src_caps(caps(PixelFormat::Gray8, W, H));
    run.h
        .push_and_pull(buffer(PixelFormat::Gray8, W, H, 0))
        .unwrap();
    assert_eq!(
        warnings_and_errors(&run.bus),
        (vec![], vec![]),
        "named by the labels file"
    );
}

#[test]
fn an_announced_model_is_mapped_when_it_starts_to_run() {
    let unnamed = unnamed(
        &fixture("hotspot_v8.onnx"),
        "hotspot_unnamed_announced.onnx",
    );
    let announce = |h: &mut Harness| {
        let mut a = announcement("hotspot_v8.onnx", "fp32");
        a.location = unnamed.clone();
        assert!(h.push_event(a.to_event()));
    };
    // by order: the warning comes with the first frame, once, also when the int8 twin
    // (same classes, same map) takes over
    let gt = hot_cold_annotations("gt-announced.json", &[(1, "hot"), (2, "cold")], 1, 2);
    let mut run = harness_without_model(&[
        ("execution-provider", "cpu"),
        ("annotations", gt.to_str().unwrap()),
    ]);
    announce(&mut run.h);
    run.h
        .push_and_pull(buffer(PixelFormat::Gray8, W, H, 0))
        .unwrap();
    let (warnings, errors) = warnings_and_errors(&run.bus);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("class 0 -> hot, class 1 -> cold"),
        "{warnings:?}"
    );
    let mut again = announcement("hotspot_v8.onnx", "u8s8");
    again.location = tmp("hotspot_unnamed_twin.onnx");
    std::fs::copy(&unnamed, &again.location).unwrap();
    assert!(run.h.push_event(again.to_event()));
    for i in 1..300 {
        run.h
            .push_and_pull(buffer(PixelFormat::Gray8, W, H, i * 33))
            .unwrap();
        if active_model(&run.h).is_some_and(|m| m.ends_with("twin.onnx")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(active_model(&run.h).unwrap().ends_with("twin.onnx"));
    assert_eq!(
        warnings_and_errors(&run.bus),
        (vec![], vec![]),
        "no second warning"
    );

    // counts that differ: the first frame is an error
    let one = hot_cold_annotations("gt-announced-one.json", &[(1, "hot")], 1, 1);
    let mut run = harness_without_model(&[
        ("execution-provider", "cpu"),
        ("annotations", one.to_str().unwrap()),
    ]);
    announce(&mut run.h);
    assert_eq!(
        run.h.push(buffer(PixelFormat::Gray8, W, H, 0)),
        Err(gst::FlowError::Error)
    );
    let (_, errors) = warnings_and_errors(&run.bus);
    assert!(
        errors.iter().any(|e| e.contains(
            "Cannot score against the annotations: the model names none of its 2 classes and the annotations have 1 categories (hot)"
        )),
        "{errors:?}"
    );
}

/// Runs `model` over `frames` of a synth recording in a Harness with `annotations`
/// and `json-location`; the messages it posted.
fn score_recording(
    model: &std::path::Path,
    recording: &thermalzsq::synth::Recording,
    frames: u32,
    gt: &std::path::Path,
    json: &std::path::Path,
) -> Vec<gst::Message> {
    init();
    let element = gst::ElementFactory::make("thermaldetect")
        .property("model", model.to_str().unwrap())
        .property("threads", 1u32)
        .property_from_str("execution-provider", "cpu")
        .property("annotations", gt.to_str().unwrap())
        .property("json-location", json.to_str().unwrap())
        .property("post-messages", false)
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(caps(PixelFormat::Gray16Le, W, H));
    for i in 0..frames {
        h.push_and_pull(recording_buffer(recording, i)).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    drop(h);
    std::iter::from_fn(|| bus.pop()).collect()
}

#[test]
fn an_unnamed_detector_scores_in_the_pipeline_as_zsq_eval_scores_its_json_lines_with_labels() {
    use thermalzsq::eval::{CocoGt, evaluate, read_detections};
    use thermalzsq::synth::{Recording, coco};

    const FRAMES: u32 = 12;
    let recording = Recording::new(3, W as u32, H as u32).unwrap();
    let frames: Vec<_> = (0..FRAMES)
        .map(|i| (i as i64, format!("frame_{i:06}"), recording.frame(i).labels))
        .collect();
    let gt = coco(W as u32, H as u32, &frames);
    assert!(
        gt.annotations.len() > 20,
        "{} objects",
        gt.annotations.len()
    );
    let gt_path = tmp("recording.json");
    std::fs::write(&gt_path, gt.to_json()).unwrap();

    let named = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/det_thermal_ft.onnx");
    let unnamed = unnamed(&named, "det_thermal_ft_unnamed.onnx");
    let named_json = tmp("named.jsonl");
    let unnamed_json = tmp("unnamed.jsonl");
    let by_name = score_recording(&named, &recording, FRAMES, &gt_path, &named_json);
    let by_order = score_recording(&unnamed, &recording, FRAMES, &gt_path, &unnamed_json);

    let warned = |messages: &[gst::Message]| -> Vec<String> {
        messages
            .iter()
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(warned(&by_name), Vec::<String>::new());
    let warnings = warned(&by_order);
    assert!(
        warnings.len() == 1
            && warnings[0].contains("class 0 -> person, class 1 -> car, class 2 -> bicycle"),
        "{warnings:?}"
    );
    let (map_named, map_unnamed) = (score_map(&by_name), score_map(&by_order));
    assert!(map_named > 0.2, "a real score to compare: {map_named}");
    assert_eq!(map_unnamed, map_named);
    let lines = std::fs::read_to_string(&unnamed_json).unwrap();
    assert!(lines.contains(r#""label":"class 1""#), "unnamed labels");

    // `zsq eval --coco GT --detections LINES --labels FILE`, as the binary runs it
    let labels_file = tmp("recording-labels.txt");
    std::fs::write(&labels_file, "person\ncar\nbicycle\n").unwrap();
    let labels = thermalzsq::detect::labels::read_labels_file(&labels_file).unwrap();
    let gt = CocoGt::from_file(&gt_path).unwrap();
    let dets = read_detections(&unnamed_json, &gt, Some(&labels)).unwrap();
    let map_eval = evaluate(&gt, &dets).unwrap().map.unwrap();
    assert_eq!(map_eval, map_unnamed);
    eprintln!(
        "mAP50-95 over {FRAMES} frames: named {map_named}, unnamed in the pipeline {map_unnamed}, zsq eval of its JSON lines with labels {map_eval}"
    );
}
