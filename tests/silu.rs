//! The one-pass quantized SiLU (`runtime` operator `com.thermalzsq:QLinearSilu`,
//! `detect::silu` rewrite): the operator gives ONNX Runtime's two-step result on every
//! input byte, the rewrite takes the SiLUs that convolutions read and says why it left
//! the others, the int8 detector's outputs do not change, and only CPU sessions get it.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use ort::value::TensorRef;
use thermalzsq::detect::silu::rewrite_silu;
use thermalzsq::detect::{Detector, DetectorConfig};
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::onnx::{
    DataType, GraphProto, Model, ModelProto, NodeBuilder, OperatorSetIdProto, TensorProto,
    ValueInfoProto,
};
use thermalzsq::runtime::{
    Provider, ProviderOptions, SILU_DOMAIN, SILU_OP, load_session_from_memory,
};
use thermalzsq::synth::Scene;
use thermalzsq::zsq::calibrate::Observer;
use thermalzsq::zsq::images::test_pattern;
use thermalzsq::zsq::pipeline::{CalibrationSource, QuantizeSettings, image_input, quantize};
use thermalzsq::zsq::qparams::Precision;
use thermalzsq::zsq::report::cosine;

fn cpu() -> ProviderOptions {
    ProviderOptions {
        provider: Provider::Cpu,
        ..ProviderOptions::default()
    }
}

/// Scale and zero point of one quantized tensor.
type Quantization = (f32, u8);

fn model(graph: GraphProto, custom: bool) -> Model {
    let mut opset_import = vec![OperatorSetIdProto {
        domain: Some(String::new()),
        version: Some(17),
        ..Default::default()
    }];
    if custom {
        opset_import.push(OperatorSetIdProto {
            domain: Some(SILU_DOMAIN.into()),
            version: Some(1),
            ..Default::default()
        });
    }
    Model::from_proto(ModelProto {
        ir_version: Some(8),
        graph: Some(graph),
        opset_import,
        ..Default::default()
    })
}

/// `y_q = SiLU(x_q)` on a (1, n) uint8 tensor: the QDQ form the quantizer writes
/// (`custom` false) or the operator alone.
fn silu_model(n: usize, [x, s, y]: [Quantization; 3], custom: bool) -> Vec<u8> {
    let mut initializers = Vec::new();
    for (name, (scale, zero_point)) in [("x", x), ("s", s), ("y", y)] {
        initializers.push(TensorProto::scalar(&format!("{name}_scale"), scale));
        initializers.push(TensorProto::scalar(&format!("{name}_zp"), zero_point));
    }
    let q = |op: &str, input: &str, t: &str, output: &str| {
        NodeBuilder::new(op)
            .name(output)
            .inputs([input, &format!("{t}_scale"), &format!("{t}_zp")])
            .output(output)
            .build()
    };
    let node = if custom {
        vec![
            NodeBuilder::new(SILU_OP)
                .domain(SILU_DOMAIN)
                .name("silu")
                .inputs([
                    "x_q", "x_scale", "x_zp", "s_scale", "s_zp", "y_scale", "y_zp",
                ])
                .output("y_q")
                .build(),
        ]
    } else {
        vec![
            q("DequantizeLinear", "x_q", "x", "x_dq"),
            NodeBuilder::new("Sigmoid")
                .name("sigmoid")
                .input("x_dq")
                .output("s")
                .build(),
            q("QuantizeLinear", "s", "s", "s_q"),
            q("DequantizeLinear", "s_q", "s", "s_dq"),
            NodeBuilder::new("Mul")
                .name("mul")
                .inputs(["x_dq", "s_dq"])
                .output("y")
                .build(),
            q("QuantizeLinear", "y", "y", "y_q"),
        ]
    };
    let shape = [1, n as i64];
    let graph = GraphProto {
        name: Some("silu".into()),
        node,
        initializer: initializers,
        input: vec![ValueInfoProto::tensor("x_q", DataType::Uint8, Some(&shape))],
        output: vec![ValueInfoProto::tensor("y_q", DataType::Uint8, Some(&shape))],
        ..GraphProto::default()
    };
    model(graph, custom).to_bytes()
}

fn run_u8(model: &[u8], x: &[u8]) -> Vec<u8> {
    let mut loaded = load_session_from_memory(model, &cpu()).expect("session");
    let input = TensorRef::from_array_view(([1, x.len()], x)).unwrap();
    let out = loaded.session.run(ort::inputs!["x_q" => input]).unwrap();
    out[0].try_extract_tensor::<u8>().unwrap().1.to_vec()
}

#[test]
fn the_operator_gives_onnx_runtimes_two_step_silu_within_one_step_on_every_byte() {
    // Every byte, three times over and a 17-byte tail: the 64-byte vector loop and the
    // byte loop both run.
    let x: Vec<u8> = (0..3 * 256 + 17).map(|i| (i % 256) as u8).collect();
    let sigmoid = (1.0 / 255.0, 0);
    let cases: [[Quantization; 3]; 4] = [
        // A YOLO activation: mostly positive, a short negative tail.
        [(0.05, 40), sigmoid, (0.045, 6)],
        // Centred.
        [(0.08, 128), sigmoid, (0.04, 60)],
        // Negative-heavy, the sigmoid calibrated to less than [0, 1].
        [(0.1, 200), (0.9 / 255.0, 0), (0.012, 24)],
        // Tiny steps.
        [(0.002, 100), sigmoid, (0.0012, 90)],
    ];
    for case in cases {
        let two_step = run_u8(&silu_model(x.len(), case, false), &x);
        let one_pass = run_u8(&silu_model(x.len(), case, true), &x);
        let differ: Vec<(u8, u8, u8)> = x
            .iter()
            .zip(two_step.iter().zip(&one_pass))
            .filter(|(_, (a, b))| a != b)
            .map(|(&x, (&a, &b))| (x, a, b))
            .collect();
        assert!(
            differ.iter().all(|&(_, a, b)| a.abs_diff(b) <= 1),
            "{case:?}: (x, two-step, one pass) {differ:?}"
        );
        // Off by one only where ONNX Runtime's float rounding lands the other side of a
        // half step: a handful of the 256 bytes at most.
        assert!(differ.len() <= 3 * 4, "{case:?}: {differ:?}");
    }
}

/// The bundled thermal detector quantized u8s8 (once per test binary).
fn int8_detector() -> &'static (Model, Model) {
    static MODELS: OnceLock<(Model, Model)> = OnceLock::new();
    MODELS.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/det_thermal_ft.onnx");
        let mut fp32 = Model::load(path).unwrap();
        fp32.inline_external_data().unwrap();
        let (_, input, _) = image_input(&fp32).unwrap();
        let images = test_pattern(8, input.channels, input.height, input.width, 1);
        let settings = QuantizeSettings {
            precision: Precision::U8S8,
            observer: Observer::Percentile(Observer::DEFAULT_PERCENTILE),
            source: CalibrationSource::Tensor(Arc::new(images)),
            check_images: 0,
            ..QuantizeSettings::default()
        };
        let int8 = quantize(&fp32, &settings, &mut |_| {}).unwrap().model;
        (fp32, int8)
    })
}

#[test]
fn the_rewrite_takes_the_silus_convolutions_read_and_says_why_it_left_the_others() {
    let (fp32, int8) = int8_detector();
    let mut rewritten = int8.clone();
    let summary = rewrite_silu(&mut rewritten);
    // 53 SiLUs: 30 read by convolutions alone; the others feed Concat, Split, Add,
    // MaxPool or Resize.
    assert_eq!(summary.applied, 30, "{summary:?}");
    assert_eq!(summary.skipped.len(), 23, "{summary:?}");
    assert!(
        summary
            .skipped
            .iter()
            .all(|why| why.contains("read by other than convolutions")),
        "{summary:?}"
    );
    let ops = |m: &Model, op: &str| m.graph().node.iter().filter(|n| n.op_type() == op).count();
    assert_eq!(ops(&rewritten, SILU_OP), 30);
    assert_eq!(ops(&rewritten, "Sigmoid"), ops(int8, "Sigmoid") - 30);
    assert_eq!(rewritten.opset_version(SILU_DOMAIN), Some(1));
    // The graph is whole: ONNX Runtime loads it (checked below by running it), and a
    // second pass finds nothing more to do.
    let mut again = rewritten.clone();
    assert_eq!(rewrite_silu(&mut again).applied, 0);

    // A float model has no quantized SiLU: nothing applied, nothing to report.
    let mut float = fp32.clone();
    assert_eq!(rewrite_silu(&mut float), Default::default());
}

#[test]
fn the_rewritten_int8_detector_agrees_with_fp32_as_the_exported_one_does() {
    let (fp32, int8) = int8_detector();
    let mut rewritten = int8.clone();
    assert_eq!(rewrite_silu(&mut rewritten).applied, 30);
    let (name, input, _) = image_input(fp32).unwrap();
    let dims = [1, input.channels, input.height, input.width];
    let run = |m: &Model, image: &[f32]| -> Vec<f32> {
        let mut loaded = load_session_from_memory(&m.to_bytes(), &cpu()).unwrap();
        let tensor = TensorRef::from_array_view((dims, image)).unwrap();
        let out = loaded
            .session
            .run(ort::inputs![name.as_str() => tensor])
            .unwrap();
        out[0].try_extract_tensor::<f32>().unwrap().1.to_vec()
    };
    for seed in [7, 99] {
        let image = test_pattern(1, input.channels, input.height, input.width, seed);
        let image = image.as_slice().unwrap();
        let reference = run(fp32, image);
        let exported = cosine(&run(int8, image), &reference);
        let one_pass = cosine(&run(&rewritten, image), &reference);
        assert!(
            (exported - one_pass).abs() <= 1e-3,
            "seed {seed}: int8 vs fp32 cosine {exported} as exported, {one_pass} rewritten"
        );
    }
}

#[test]
fn a_cpu_detector_runs_the_one_pass_silu_and_finds_the_same_objects() {
    let (_, int8) = int8_detector();
    let bytes = int8.to_bytes();
    let config = |rewrite_silu| DetectorConfig {
        provider: cpu(),
        rewrite_silu,
        ..DetectorConfig::default()
    };
    let mut on = Detector::from_bytes(&bytes, config(true)).unwrap();
    let mut off = Detector::from_bytes(&bytes, config(false)).unwrap();
    assert_eq!(on.silu_rewrite().applied, 30);
    assert_eq!(off.silu_rewrite().applied, 0);
    let mut found = 0;
    for seed in 0..4 {
        // A generated thermal street scene, 640×512 centikelvin.
        let scene = Scene::generate(14, seed, 640, 512).unwrap();
        let pixels: Vec<u8> = scene.thermal.iter().flat_map(|v| v.to_le_bytes()).collect();
        let frame = Frame::new(
            PixelFormat::Gray16Le,
            640,
            512,
            vec![(&pixels[..], 2 * 640)],
        )
        .unwrap();
        let a = on.detect(&frame).unwrap();
        let b = off.detect(&frame).unwrap();
        assert_eq!(a.len(), b.len(), "scene {seed}:\n{a:?}\n{b:?}");
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.class_id, b.class_id, "scene {seed}");
            assert!((a.confidence - b.confidence).abs() < 0.01, "{a:?} vs {b:?}");
            for (p, q) in a.bbox.iter().zip(&b.bbox) {
                assert!((p - q).abs() < 1.0, "{a:?} vs {b:?}");
            }
        }
        found += a.len();
    }
    assert!(found > 0, "the scenes should hold objects to compare");
}

#[test]
fn only_cpu_sessions_are_certain_to_have_the_operator() {
    assert!(Provider::Cpu.certainly_cpu().unwrap());
    assert!(!Provider::Cuda.certainly_cpu().unwrap());
    assert!(!Provider::TensorRt.certainly_cpu().unwrap());
    // `auto` is the CPU exactly when this ONNX Runtime has no GPU provider.
    let gpu =
        Provider::Cuda.is_compiled_in().unwrap() || Provider::TensorRt.is_compiled_in().unwrap();
    assert_eq!(Provider::Auto.certainly_cpu().unwrap(), !gpu);
    // A GPU session has no such operator: the rewritten graph is not for it.
    let custom = silu_model(4, [(0.1, 0), (1.0 / 255.0, 0), (0.1, 0)], true);
    if Provider::Cuda.is_compiled_in().unwrap() {
        let cuda = ProviderOptions {
            provider: Provider::Cuda,
            ..ProviderOptions::default()
        };
        assert!(load_session_from_memory(&custom, &cuda).is_err());
    }
}

#[test]
fn an_s8s8_model_keeps_its_silus_with_the_reason() {
    // The TensorRT profile: int8 activations, which the uint8 operator does not take.
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/yolov8_c2f_dfl.onnx");
    let fp32 = Model::load(path).unwrap();
    let (_, input, _) = image_input(&fp32).unwrap();
    let settings = QuantizeSettings {
        precision: Precision::S8S8,
        source: CalibrationSource::Tensor(Arc::new(test_pattern(
            4,
            input.channels,
            input.height,
            input.width,
            1,
        ))),
        check_images: 0,
        ..QuantizeSettings::default()
    };
    let mut int8 = quantize(&fp32, &settings, &mut |_| {}).unwrap().model;
    let summary = rewrite_silu(&mut int8);
    assert_eq!(summary.applied, 0, "{summary:?}");
    assert!(!summary.skipped.is_empty());
    assert!(
        summary.skipped.iter().all(|why| why.contains("not uint8")),
        "{summary:?}"
    );
    assert!(int8.opset_version(SILU_DOMAIN).is_none());
}
