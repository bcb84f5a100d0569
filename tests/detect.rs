//! The detector end to end on ONNX Runtime, with the hot/cold grid-cell test detectors
//! (tests/fixtures/models, made by tools/fixtures/export_test_detectors.py).

use std::path::{Path, PathBuf};

use thermalzsq::detect::decode::OutputLayout;
use thermalzsq::detect::{Detection, Detector, DetectorConfig};
use thermalzsq::imaging::frame::encode_grey;
use thermalzsq::imaging::preprocess::Preprocess;
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::runtime::Provider;

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

/// A 640x512 scene: mid-grey, a hot square on the grid cell at input (96..128, 64..96)
/// = frame (192..256, 64..128), a cold square on frame (448..512, 320..384).
fn scene() -> Vec<u8> {
    let (w, h) = (640, 512);
    let mut grey = vec![128u8; w * h];
    for y in 0..h {
        for x in 0..w {
            if (192..256).contains(&x) && (64..128).contains(&y) {
                grey[y * w + x] = 250;
            } else if (448..512).contains(&x) && (320..384).contains(&y) {
                grey[y * w + x] = 5;
            }
        }
    }
    grey
}

fn detect(detector: &mut Detector, format: PixelFormat) -> Vec<Detection> {
    let planes = encode_grey(format, 640, 512, &scene());
    let frame = Frame::new(
        format,
        640,
        512,
        planes.iter().map(|(d, s)| (d.as_slice(), *s)).collect(),
    )
    .unwrap();
    detector.detect(&frame).unwrap()
}

fn assert_hot_and_cold(dets: &[Detection], what: &str) {
    assert_eq!(dets.len(), 2, "{what}: {dets:?}");
    let hot = dets.iter().find(|d| d.label == "hot").expect("hot box");
    let cold = dets.iter().find(|d| d.label == "cold").expect("cold box");
    assert_eq!(hot.class_id, 0);
    assert!(hot.confidence > 0.9, "{what}: {hot:?}");
    assert_eq!(hot.bbox, [192.0, 64.0, 256.0, 128.0], "{what}");
    assert_eq!(cold.bbox, [448.0, 320.0, 512.0, 384.0], "{what}");
}

#[test]
fn yolov8_layout_detects_in_every_format() {
    let mut detector =
        Detector::load(&model("hotspot_v8.onnx"), DetectorConfig::default()).unwrap();
    assert_eq!(
        detector.layout(),
        OutputLayout::Yolov8 {
            classes: 2,
            anchors: 100
        }
    );
    assert_eq!(detector.labels(), ["hot", "cold"]);
    assert_eq!(detector.input_shape(), [1, 3, 320, 320]);
    for format in PixelFormat::ALL {
        assert_hot_and_cold(&detect(&mut detector, format), format.name());
    }
}

#[test]
fn yolov5_layout_gives_the_same_boxes() {
    let mut detector =
        Detector::load(&model("hotspot_v5.onnx"), DetectorConfig::default()).unwrap();
    assert_eq!(
        detector.layout(),
        OutputLayout::Yolov5 {
            classes: 2,
            anchors: 100
        }
    );
    assert_hot_and_cold(&detect(&mut detector, PixelFormat::Gray16Le), "v5");
}

/// A copy of fixture `name` without the metadata entries `keys`, loaded.
fn without_metadata(name: &str, keys: &[&str], config: DetectorConfig) -> Result<Detector, String> {
    let mut m = thermalzsq::onnx::Model::load(model(name)).unwrap();
    m.proto.metadata_props.retain(|e| !keys.contains(&e.key()));
    Detector::from_bytes(&m.to_bytes(), config).map_err(|e| e.to_string())
}

#[test]
fn an_end_to_end_head_gives_the_same_boxes_without_nms() {
    let mut detector =
        Detector::load(&model("hotspot_v10.onnx"), DetectorConfig::default()).unwrap();
    assert_eq!(
        detector.layout(),
        OutputLayout::EndToEnd {
            classes: 2,
            detections: 20
        }
    );
    assert_eq!(detector.metadata().end2end, Some(true));
    // Corners in input pixels, mapped back through the 640x512 -> 320x320 letterbox.
    for format in [PixelFormat::Gray16Le, PixelFormat::Gray8] {
        assert_hot_and_cold(&detect(&mut detector, format), format.name());
    }
    // Thresholds and max-detections still apply (the other 18 rows score ~0).
    detector.set_thresholds(0.25, 0.45, 1);
    let dets = detect(&mut detector, PixelFormat::Gray8);
    assert_eq!(dets.len(), 1, "{dets:?}");
    detector.set_thresholds(0.0, 0.45, 100);
    assert_eq!(detect(&mut detector, PixelFormat::Gray8).len(), 20);
}

#[test]
fn an_end_to_end_head_is_recognised_without_the_end2end_key() {
    // By its two class names (6 columns and 2 classes cannot be YOLOv5).
    let mut named =
        without_metadata("hotspot_v10.onnx", &["end2end"], DetectorConfig::default()).unwrap();
    assert!(named.layout().is_end_to_end());
    assert_hot_and_cold(&detect(&mut named, PixelFormat::Gray16Le), "named");
    // By its 20 rows: no anchor count of a 320x320 input.
    let mut bare = without_metadata(
        "hotspot_v10.onnx",
        &["end2end", "names"],
        DetectorConfig::default(),
    )
    .unwrap();
    assert_eq!(
        bare.layout(),
        OutputLayout::EndToEnd {
            classes: 0,
            detections: 20
        }
    );
    let dets = detect(&mut bare, PixelFormat::Gray8);
    let labels: Vec<&str> = dets.iter().map(|d| d.label.as_str()).collect();
    assert_eq!(labels.len(), 2);
    assert!(
        labels.contains(&"class 0") && labels.contains(&"class 1"),
        "{labels:?}"
    );
}

#[test]
fn an_end_to_end_head_quantized_on_generated_scenes_still_boxes_the_squares() {
    // Generated scenes, not distillation: the one BN layer of these test detectors
    // says too little for distilled images to reach the hot square's brightness (the
    // same holds for hotspot_v8), while a thermal scene has hot objects.
    use thermalzsq::zsq::pipeline::{QuantizeSettings, quantize};
    let fp32 = thermalzsq::onnx::Model::load(model("hotspot_v10.onnx")).unwrap();
    let settings = QuantizeSettings {
        provider: thermalzsq::runtime::ProviderOptions {
            threads: 2,
            ..Default::default()
        },
        source: thermalzsq::zsq::pipeline::CalibrationSource::Synth(
            thermalzsq::zsq::scenes::SynthScenes {
                count: 8,
                ..Default::default()
            },
        ),
        ..QuantizeSettings::default()
    };
    let q = quantize(&fp32, &settings, &mut |_| {}).unwrap();
    assert_eq!(q.report.calibration.source, "synth");
    // The head's logits follow fp32; the TopK/Gather tail stays float.
    let check = q.report.check.as_ref().unwrap();
    assert!(
        !check.head.is_empty() && check.head.iter().all(|h| h.cosine >= 0.99),
        "{check:?}"
    );
    let mut detector = Detector::from_bytes(&q.bytes, DetectorConfig::default()).unwrap();
    assert!(detector.layout().is_end_to_end());
    assert_hot_and_cold(&detect(&mut detector, PixelFormat::Gray16Le), "int8");
}

#[test]
fn end2end_metadata_on_a_head_without_six_columns_is_a_one_line_error() {
    let mut m = thermalzsq::onnx::Model::load(model("hotspot_v5.onnx")).unwrap();
    m.set_metadata("end2end", "True");
    let e = Detector::from_bytes(&m.to_bytes(), DetectorConfig::default())
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        e.contains("end2end") && e.contains("[1, 100, 7]") && e.contains("7 columns"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn thresholds_labels_and_polarity_apply() {
    let config = DetectorConfig {
        max_detections: 1,
        labels: Some(vec!["warm".into(), "chilly".into()]),
        ..Default::default()
    };
    let mut detector = Detector::load(&model("hotspot_v8.onnx"), config).unwrap();
    let dets = detect(&mut detector, PixelFormat::Gray8);
    assert_eq!(dets.len(), 1);
    assert!(dets[0].label == "warm" || dets[0].label == "chilly");

    let config = DetectorConfig {
        polarity: "black-hot".parse().unwrap(),
        ..Default::default()
    };
    let mut detector = Detector::load(&model("hotspot_v8.onnx"), config).unwrap();
    let dets = detect(&mut detector, PixelFormat::Gray16Le);
    let hot = dets.iter().find(|d| d.label == "hot").unwrap();
    assert_eq!(
        hot.bbox,
        [448.0, 320.0, 512.0, 384.0],
        "black-hot swaps hot and cold"
    );
}

#[test]
fn bad_models_are_clear_errors() {
    let err = |path: &Path, config: DetectorConfig| {
        Detector::load(path, config)
            .err()
            .expect("must fail")
            .to_string()
    };

    let e = err(&model("missing.onnx"), DetectorConfig::default());
    assert!(
        e.contains("cannot read model") && e.contains("missing.onnx"),
        "{e}"
    );

    let dir = std::env::temp_dir().join(format!("tzsq-detect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("corrupt.onnx");
    let bytes = std::fs::read(model("hotspot_v8.onnx")).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(&corrupt, DetectorConfig::default());
    assert!(e.contains("corrupt.onnx"), "{e}");

    let e = err(&model("not_a_detector.onnx"), DetectorConfig::default());
    assert!(
        e.contains("no output in a known detector layout") && e.contains("[1, 10, 10, 3]"),
        "{e}"
    );

    let three = DetectorConfig {
        labels: Some(vec!["a".into(), "b".into(), "c".into()]),
        ..Default::default()
    };
    let e = err(&model("hotspot_v8.onnx"), three);
    assert!(
        e.contains("3 class names given") && e.contains("2 classes"),
        "{e}"
    );

    let cuda = DetectorConfig {
        provider: thermalzsq::runtime::ProviderOptions {
            provider: "cuda".parse().unwrap(),
            ..Default::default()
        },
        ..Default::default()
    };
    // An explicit provider never falls back to the CPU: it runs there or it is an error
    // that names it. Which one depends on the runtime this test runs against.
    match Detector::load(&model("hotspot_v8.onnx"), cuda) {
        Ok(d) => assert_eq!(d.provider(), Provider::Cuda),
        Err(e) if !Provider::Cuda.is_compiled_in().unwrap() => assert!(
            e.to_string()
                .contains("execution provider cuda is not available"),
            "{e}"
        ),
        Err(e) => assert!(e.to_string().contains("cuda"), "{e}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn auto_provider_takes_the_best_available_and_says_why_it_passed_others() {
    let detector = Detector::load(&model("hotspot_v8.onnx"), DetectorConfig::default()).unwrap();
    let chosen = detector.provider();
    let passed: Vec<Provider> = Provider::AUTO_ORDER
        .into_iter()
        .take_while(|p| *p != chosen)
        .collect();
    // Each provider before the chosen one has its reason; none after it is tried.
    let why = detector.fallbacks();
    assert_eq!(why.len(), passed.len(), "{why:?}");
    for (p, reason) in passed.iter().zip(why) {
        assert!(reason.contains(p.as_str()), "{p}: {reason}");
        if !p.is_compiled_in().unwrap() {
            assert!(reason.contains("not available"), "{reason}");
        }
    }
    // On a runtime without GPU providers (the PyPI CPU wheel) that is the CPU.
    if !Provider::TensorRt.is_compiled_in().unwrap() && !Provider::Cuda.is_compiled_in().unwrap() {
        assert_eq!(chosen, Provider::Cpu);
    }
}

#[test]
fn p2pro_frames_detect_on_the_radiometric_lower_half() {
    use thermalzsq::imaging::frame::{lower_half_counts, upper_half_image};
    // 640x1024 YUY2: upper half an 8-bit image (flat grey), lower half 16-bit counts
    // with the scene (hot and cold squares) in 1/64 K.
    let (w, h) = (640usize, 512usize);
    let mut data = vec![0u8; 2 * w * 2 * h];
    for (i, v) in scene().iter().enumerate() {
        data[2 * i] = 128; // Y of the upper half
        data[2 * i + 1] = 128;
        let counts: u16 = 18_000 + *v as u16 * 4;
        data[2 * w * h + 2 * i..][..2].copy_from_slice(&counts.to_le_bytes());
    }
    let frame = Frame::new(PixelFormat::Yuy2, w, 2 * h, vec![(data.as_slice(), 2 * w)]).unwrap();
    let counts = lower_half_counts(&frame).unwrap();
    assert_eq!(
        (counts.format, counts.width, counts.height),
        (PixelFormat::Gray16Le, w, h)
    );
    let mut detector =
        Detector::load(&model("hotspot_v8.onnx"), DetectorConfig::default()).unwrap();
    assert_hot_and_cold(&detector.detect(&counts).unwrap(), "P2 Pro lower half");

    let upper = upper_half_image(
        Frame::new(
            PixelFormat::Yuy2,
            w,
            2 * h,
            vec![(data.as_mut_slice(), 2 * w)],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (upper.width, upper.height, upper.planes[0].0.len()),
        (w, h, 2 * w * h)
    );
    let gray = Frame::new(
        PixelFormat::Gray16Le,
        w,
        2 * h,
        vec![(data.as_slice(), 2 * w)],
    )
    .unwrap();
    assert!(
        lower_half_counts(&gray)
            .unwrap_err()
            .to_string()
            .contains("needs YUY2")
    );
}

#[test]
fn the_ultralytics_style_fixtures_decode_fp32_and_int8() {
    // The PyTorch-exported YOLO11 (C2PSA attention) and YOLOv10 (end-to-end head)
    // fixtures, as exported and quantized: the layout is recognised and every row
    // above a near-zero threshold comes out as a box in the frame.
    use thermalzsq::zsq::pipeline::{QuantizeSettings, quantize};
    let onnx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let cases = [
        (
            "yolo11_c2psa.onnx",
            OutputLayout::Yolov8 {
                classes: 3,
                anchors: 84,
            },
        ),
        (
            "yolov10_e2e.onnx",
            OutputLayout::EndToEnd {
                classes: 3,
                detections: 30,
            },
        ),
    ];
    for (name, layout) in cases {
        let fp32 = thermalzsq::onnx::Model::load(onnx.join(name)).unwrap();
        let settings = QuantizeSettings {
            provider: thermalzsq::runtime::ProviderOptions {
                threads: 2,
                ..Default::default()
            },
            distill: thermalzsq::zsq::pipeline::DistillSettings {
                iterations: 2,
                batch: 1,
                ..Default::default()
            },
            check_images: 0,
            ..QuantizeSettings::default()
        };
        let int8 = quantize(&fp32, &settings, &mut |_| {}).unwrap().model;
        for (which, model) in [("fp32", &fp32), ("int8", &int8)] {
            let config = DetectorConfig {
                conf_threshold: 1e-6,
                ..DetectorConfig::default()
            };
            let mut detector = Detector::from_bytes(&model.to_bytes(), config)
                .unwrap_or_else(|e| panic!("{name} {which}: {e}"));
            assert_eq!(detector.layout(), layout, "{name} {which}");
            let dets = detect(&mut detector, PixelFormat::Gray16Le);
            assert!(!dets.is_empty(), "{name} {which}");
            if layout.is_end_to_end() {
                // No NMS: all K rows survive the near-zero threshold.
                assert_eq!(dets.len(), 30, "{name} {which}");
            }
            for d in &dets {
                assert!(d.class_id < 3, "{name} {which}: {d:?}");
                let [x0, y0, x1, y1] = d.bbox;
                assert!(
                    0.0 <= x0 && x0 <= x1 && x1 <= 640.0 && 0.0 <= y0 && y0 <= y1 && y1 <= 512.0,
                    "{name} {which}: {d:?}"
                );
            }
        }
    }
}

#[test]
fn a_tensor_made_ahead_is_used_when_its_settings_are_the_detectors() {
    let mut detector =
        Detector::load(&model("hotspot_v8.onnx"), DetectorConfig::default()).unwrap();
    let planes = encode_grey(PixelFormat::Gray8, 640, 512, &scene());
    let frame = Frame::new(
        PixelFormat::Gray8,
        640,
        512,
        vec![(planes[0].0.as_slice(), 640)],
    )
    .unwrap();
    let grey = vec![128u8; 640 * 512];
    let empty = Frame::new(PixelFormat::Gray8, 640, 512, vec![(grey.as_slice(), 640)]).unwrap();
    let mut pre = detector.preprocess();

    // Made ahead (here on this thread) from the frame itself: the same detections.
    let prepared = pre.prepare(&frame, Vec::new());
    let ahead = detector.detect_prepared(&frame, &prepared).unwrap();
    assert_eq!(ahead, detector.detect(&frame).unwrap());
    assert_hot_and_cold(&ahead, "made ahead");

    // The tensor is what runs: an empty scene's tensor finds nothing in the squares.
    let of_empty = pre.prepare(&empty, prepared.input);
    assert!(
        detector
            .detect_prepared(&frame, &of_empty)
            .unwrap()
            .is_empty()
    );

    // Made with other settings (the polarity changed since): made again from the frame.
    let mut black_hot = pre.settings();
    black_hot.polarity = "black-hot".parse().unwrap();
    let stale = Preprocess::with_settings(black_hot).prepare(&frame, of_empty.input);
    assert_hot_and_cold(
        &detector.detect_prepared(&frame, &stale).unwrap(),
        "a stale tensor is not used",
    );
}
