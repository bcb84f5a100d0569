//! W4A8 on the YOLOv8 C2f/DFL fixture: ONNX Runtime loads the model, the 4-bit layers'
//! weights lie on the 16-level grid (the 8-bit ones do not), the outputs stay close to
//! fp32, and AdaRound's reconstruction lowers each layer's output error below
//! round-to-nearest on the calibration images.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use ort::value::TensorRef;
use thermalzsq::onnx::Model;
use thermalzsq::runtime::{ProviderOptions, load_session_from_memory};
use thermalzsq::zsq::images::test_pattern;
use thermalzsq::zsq::pipeline::image_input;
use thermalzsq::zsq::w4a8::{INT4, Rounding, W4a8, W4a8Options, mse_scale, quantize_w4a8};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/yolov8_c2f_dfl.onnx")
}

fn images(model: &Model, n: usize, seed: u64) -> Array4<f32> {
    let (_, input, _) = image_input(model).unwrap();
    test_pattern(n, input.channels, input.height, input.width, seed)
}

fn provider() -> ProviderOptions {
    ProviderOptions {
        threads: 2,
        ..ProviderOptions::default()
    }
}

fn w4a8(model: &Model, rounding: Rounding) -> W4a8 {
    let options = W4a8Options {
        rounding,
        iterations: 60,
        provider: provider(),
        ..W4a8Options::default()
    };
    quantize_w4a8(model, images(model, 4, 7).view(), &options, &mut |_, _| {}).unwrap()
}

/// Outputs of `bytes` on `input`, flattened.
fn run(bytes: &[u8], input: &Array4<f32>) -> Vec<f32> {
    let mut s = load_session_from_memory(bytes, &provider()).unwrap();
    let name = s.info.inputs[0].name.clone();
    let shape: Vec<usize> = input.shape().to_vec();
    let out = s
        .session
        .run(ort::inputs![name => TensorRef::from_array_view((shape, input.as_slice().unwrap())).unwrap()])
        .unwrap();
    out[0].try_extract_tensor::<f32>().unwrap().1.to_vec()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// The int8 weight values behind a layer's DequantizeLinear.
fn layer_weight_values(model: &Model, layer: &str) -> Vec<i8> {
    let graph = model.graph();
    let view = graph.view();
    let node = graph
        .node
        .iter()
        .find(|n| n.name() == layer || n.output.first().is_some_and(|o| o == layer))
        .unwrap_or_else(|| panic!("layer {layer} is in the W4A8 model"));
    let dq = view
        .producer_node(&node.input[1])
        .unwrap_or_else(|| panic!("layer {layer}'s weight comes from a DequantizeLinear"));
    assert_eq!(dq.op_type(), "DequantizeLinear");
    let tensor = view.tensor(&dq.input[0]).expect("constant int8 weight");
    tensor.to_array::<i8>().unwrap().iter().copied().collect()
}

#[test]
fn w4a8_weights_lie_on_the_4bit_grid_and_outputs_stay_close_to_fp32() {
    let model = Model::load(fixture()).unwrap();
    let q = w4a8(&model, Rounding::AdaRound);
    let four: Vec<_> = q.layers.iter().filter(|l| l.bits == 4).collect();
    let eight: Vec<_> = q.layers.iter().filter(|l| l.bits == 8).collect();
    assert!(!four.is_empty(), "some layers get 4-bit weights");
    assert!(!eight.is_empty(), "first layer and head outputs stay 8-bit");
    for l in &four {
        let v = layer_weight_values(&q.model, &l.name);
        assert!(
            v.iter().all(|&x| (INT4.0..=INT4.1).contains(&x)),
            "{}: 4-bit weights in -8..=7",
            l.name
        );
        let levels: std::collections::BTreeSet<i8> = v.iter().copied().collect();
        assert!(levels.len() > 2, "{}: more than a sign is kept", l.name);
    }
    let wide = eight
        .iter()
        .filter(|l| {
            layer_weight_values(&q.model, &l.name)
                .iter()
                .any(|x| !(INT4.0..=INT4.1).contains(x))
        })
        .count();
    assert!(wide > 0, "8-bit layers use the wider grid");

    // ONNX Runtime loads it; the outputs follow fp32 on images it was not
    // calibrated on.
    let input = images(&model, 1, 99);
    let float = run(&model.to_bytes(), &input);
    let quant = run(&q.bytes, &input);
    assert_eq!(float.len(), quant.len());
    let c = cosine(&float, &quant);
    assert!(c > 0.98, "cosine to fp32 {c}");
}

#[test]
fn adaround_lowers_the_reconstruction_error_of_round_to_nearest() {
    let model = Model::load(fixture()).unwrap();
    let ada = w4a8(&model, Rounding::AdaRound);
    let reconstructed: Vec<_> = ada.layers.iter().filter(|l| l.reconstructed).collect();
    assert!(!reconstructed.is_empty(), "Conv layers are reconstructed");
    let (mut near, mut chosen) = (0.0, 0.0);
    for l in &reconstructed {
        let (n, c) = (l.error_nearest.unwrap(), l.error_chosen.unwrap());
        assert!(c <= n * 1.05 + 1e-9, "{}: {c} vs nearest {n}", l.name);
        near += n;
        chosen += c;
        assert!(l.flipped.unwrap() >= 0.0);
    }
    assert!(
        chosen < near,
        "reconstruction lowers the total error: {chosen} vs {near}"
    );
    assert!(ada.reconstruction_seconds > 0.0);

    let nearest = w4a8(&model, Rounding::Nearest);
    assert!(nearest.layers.iter().all(|l| !l.reconstructed));
    assert_eq!(nearest.reconstruction_seconds, 0.0);
    assert_ne!(nearest.bytes, ada.bytes, "AdaRound changes some roundings");
}

#[test]
fn mse_scales_clip_outliers_and_keep_zero_channels_finite() {
    // A channel with one outlier: clipping it lowers the squared error, so the scale
    // is below max/7.
    let mut w: Vec<f32> = (0..1000).map(|i| (i as f32 / 999.0 - 0.5) * 0.2).collect();
    w.push(1.0);
    let s = mse_scale(&w, INT4);
    assert!(s > 0.0 && s < 1.0 / 7.0, "{s}");
    // Uniform weights on the grid: no clipping.
    let g: Vec<f32> = (-7..=7).map(|i| i as f32 * 0.1).collect();
    assert!((mse_scale(&g, INT4) - 0.1).abs() < 1e-6);
    assert_eq!(mse_scale(&[0.0; 8], INT4), 1.0);
}
