//! BN discovery and the gradient graph: every gradient rule, and whole exported
//! networks, checked against central finite differences of a float64 reference.
//!
//! Run with `--nocapture` to see the relative errors.

mod reference;
mod support;

use ndarray::{ArrayD, IxDyn};
use reference::{Reference, bn_loss};
use support::{Net, Rng, ints};
use thermalzsq::onnx::{AttributeProto, Model, NodeBuilder, TensorProto};
use thermalzsq::runtime::{Provider, ProviderOptions};
use thermalzsq::zsq::ZsqError;
use thermalzsq::zsq::autodiff::{
    GradientSession, LossSpec, LossTerms, Statistics, build_gradient_graph,
};
use thermalzsq::zsq::bn::{BnLayer, find_bn_layers};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/onnx");

fn cpu() -> ProviderOptions {
    ProviderOptions {
        provider: Provider::Cpu,
        threads: 1,
        ..ProviderOptions::default()
    }
}

fn fixture(name: &str) -> Model {
    Model::load(format!("{FIXTURES}/{name}")).expect("fixture loads")
}

/// x [2,3,8,8] → Conv 3→4 (3×3) → BN → op(s) → BN: the op's input is a real
/// activation, and the loss has a term before and after it.
fn op_model(op: impl FnOnce(&mut Net, &str) -> (String, usize)) -> Model {
    op_model_sized(&[2, 3, 8, 8], op)
}

fn op_model_sized(shape: &[usize], op: impl FnOnce(&mut Net, &str) -> (String, usize)) -> Model {
    let mut net = Net::new(shape);
    let c = net.conv("x", shape[1], 4, 3, vec![ints("pads", &[1, 1, 1, 1])]);
    let a = net.bn(&c, 4);
    let (y, channels) = op(&mut net, &a);
    let out = net.bn(&y, channels);
    net.model(&out)
}

/// The result of one gradient check.
struct Check {
    /// ‖g − g_fd‖ / ‖g_fd‖ over the checked coordinates and directions.
    relative_error: f64,
    /// |loss(ORT, f32) − loss(reference, f64)| / loss.
    loss_error: f64,
    checked: usize,
}

/// Where the gradient is compared with finite differences.
struct Probes {
    /// The coordinates with the largest gradients (a zero gradient checks little).
    largest: usize,
    /// Coordinates drawn at random.
    random: usize,
    /// Random directions: each mixes every coordinate, so an error anywhere shows.
    directions: usize,
}

/// What the one-op graphs get: 24 finite differences of a 384-value input.
const OP_PROBES: Probes = Probes {
    largest: 8,
    random: 8,
    directions: 8,
};

/// Builds the gradient graph, runs it at a random input, and compares the gradient
/// with central differences (h = 1e-5) of the float64 reference loss.
fn check(model: &Model, spec: LossSpec, probes: Probes, seed: u64) -> Check {
    check_batch(model, spec, probes, seed, None)
}

/// [`check`] with the model's batch replaced by `batch`.
fn check_batch(
    model: &Model,
    spec: LossSpec,
    probes: Probes,
    seed: u64,
    batch: Option<usize>,
) -> Check {
    let layers = find_bn_layers(model).expect("BN layers");
    let input = model.graph().input[0].name().to_string();
    let shape: Vec<usize> = model.graph().input[0]
        .r#type
        .as_ref()
        .and_then(|t| t.shape())
        .and_then(|s| s.static_dims())
        .expect("static input")
        .iter()
        .map(|&d| d as usize)
        .collect();
    let shape = [batch.unwrap_or(shape[0]), shape[1], shape[2], shape[3]];
    let graph = build_gradient_graph(model, &layers, shape, &spec, &cpu()).expect("graph builds");
    let mut session = GradientSession::new(&graph, &cpu()).expect("session");
    let mut rng = Rng(seed);
    let x = rng.array(&shape, -1.0, 1.0);
    let mut g = vec![0.0f32; x.len()];
    let eval = session
        .run(x.as_slice().expect("contiguous"), &mut g)
        .expect("gradient graph runs");

    let wanted: Vec<&str> = layers.iter().map(|l| l.input.as_str()).collect();
    let reference = Reference::new(model, &input, &wanted);
    let x64 = x.mapv(f64::from);
    let loss = |x: &ArrayD<f64>| bn_loss(&reference.run(x), &layers, &spec);
    let loss0 = loss(&x64);
    let loss_error = (f64::from(eval.loss) - loss0).abs() / loss0.abs().max(1e-12);

    let h = 1e-5;
    let mut diff2 = 0.0;
    let mut norm2 = 0.0;
    let mut compare = |direction: &ArrayD<f64>, analytic: f64| {
        let fd = (loss(&(&x64 + &(direction * h))) - loss(&(&x64 - &(direction * h)))) / (2.0 * h);
        diff2 += (analytic - fd).powi(2);
        norm2 += fd.powi(2);
    };
    let unit = |i: usize| {
        let mut e = ArrayD::zeros(x64.raw_dim());
        e.as_slice_mut().expect("contiguous")[i] = 1.0;
        e
    };
    let mut checked = 0;
    let mut order: Vec<usize> = (0..g.len()).collect();
    order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
    let picked = order.iter().take(probes.largest).copied();
    let drawn: Vec<usize> = (0..probes.random)
        .map(|_| (rng.next() * g.len() as f64) as usize % g.len())
        .collect();
    for i in picked.chain(drawn) {
        compare(&unit(i), f64::from(g[i]));
        checked += 1;
    }
    for _ in 0..probes.directions {
        let v = ArrayD::from_shape_simple_fn(x64.raw_dim(), || rng.next() * 2.0 - 1.0);
        let analytic: f64 = v.iter().zip(&g).map(|(a, b)| a * f64::from(*b)).sum();
        compare(&v, analytic);
        checked += 1;
    }
    Check {
        relative_error: (diff2 / norm2.max(1e-300)).sqrt(),
        loss_error,
        checked,
    }
}

/// Checks an op graph with the default loss; asserts and reports.
fn check_op(name: &str, model: Model) {
    check_op_with(name, model, LossSpec::default());
}

fn check_op_with(name: &str, model: Model, spec: LossSpec) {
    let c = check(&model, spec, OP_PROBES, 7);
    eprintln!(
        "gradient check {name:<28} relative error {:.2e} ({} probes); loss f32 vs f64 {:.1e}",
        c.relative_error, c.checked, c.loss_error
    );
    assert!(
        c.loss_error < 1e-5,
        "{name}: the forward pass disagrees with the reference ({:.2e})",
        c.loss_error
    );
    assert!(
        c.relative_error < 1e-5,
        "{name}: relative error {:.2e}",
        c.relative_error
    );
}

// ---------------------------------------------------------------------------------
// BN discovery

#[test]
fn bn_layers_of_the_fixtures() {
    for (file, count) in [
        ("yolov8_c2f_dfl.onnx", 53),
        ("yolov5_c3.onnx", 49),
        ("resnet_tiny.onnx", 8),
        ("mobilenet_tiny.onnx", 14),
    ] {
        let layers = find_bn_layers(&fixture(file)).expect(file);
        assert_eq!(layers.len(), count, "{file}");
        for l in &layers {
            assert_eq!(l.channels(), l.var.len());
            assert!(
                l.std().iter().all(|s| s.is_finite() && *s > 0.0),
                "{}",
                l.name
            );
        }
    }
    let first = &find_bn_layers(&fixture("resnet_tiny.onnx")).unwrap()[0];
    assert_eq!(first.channels(), 16);
    assert!(first.epsilon > 0.0);
}

#[test]
fn a_model_without_bn_is_a_clear_error() {
    let err = find_bn_layers(&fixture("no_bn.onnx")).unwrap_err();
    assert!(matches!(err, ZsqError::NoBatchNorm));
    let text = err.to_string();
    assert!(text.contains("folded away"), "{text}");
    assert!(text.contains("TrainingMode.PRESERVE"), "{text}");
}

#[test]
fn bn_statistics_behind_identity_nodes_are_found() {
    // The TorchScript exporter shares equal initializers through Identity nodes.
    let mut net = Net::new(&[1, 3, 8, 8]);
    let y = net.bn("x", 3);
    let mut model = net.model(&y);
    let var = model.graph().node[0].input[4].clone();
    let g = model.graph_mut();
    g.node.insert(
        0,
        NodeBuilder::new("Identity")
            .input(&var)
            .output("shared_var")
            .build(),
    );
    g.node[1].input[4] = "shared_var".into();
    let layers = find_bn_layers(&model).unwrap();
    assert_eq!(layers[0].var.len(), 3);
    check_op("identity-shared BN statistics", {
        let mut net = Net::new(&[2, 3, 8, 8]);
        let c = net.conv("x", 3, 4, 3, vec![ints("pads", &[1, 1, 1, 1])]);
        let a = net.bn(&c, 4);
        let mut m = net.model(&a);
        let mean = m.graph().node[1].input[3].clone();
        let g = m.graph_mut();
        g.node.insert(
            1,
            NodeBuilder::new("Identity")
                .input(&mean)
                .output("shared_mean")
                .build(),
        );
        g.node[2].input[3] = "shared_mean".into();
        m
    });
}

#[test]
fn bn_statistics_that_are_not_constants_are_named() {
    let mut net = Net::new(&[1, 3, 8, 8]);
    let y = net.bn("x", 3);
    let mut model = net.model(&y);
    // Make the running variance a computed value.
    let var = model.graph().node[0].input[4].clone();
    let g = model.graph_mut();
    g.node.insert(
        0,
        NodeBuilder::new("Abs")
            .input(&var)
            .output("computed_var")
            .build(),
    );
    g.node[1].input[4] = "computed_var".into();
    let err = find_bn_layers(&model).unwrap_err().to_string();
    assert!(
        err.contains("running variance 'computed_var' is not a constant"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------
// Gradient rules, one graph each

#[test]
fn conv_rules() {
    check_op(
        "conv 3x3 stride 1",
        op_model(|n, a| (n.conv(a, 4, 5, 3, vec![ints("pads", &[1, 1, 1, 1])]), 5)),
    );
    check_op(
        "conv 3x3 stride 2",
        op_model(|n, a| {
            (
                n.conv(
                    a,
                    4,
                    5,
                    3,
                    vec![ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])],
                ),
                5,
            )
        }),
    );
    check_op(
        "conv grouped",
        op_model(|n, a| {
            let attrs = vec![ints("pads", &[1, 1, 1, 1]), AttributeProto::int("group", 2)];
            (n.conv(a, 4, 6, 3, attrs), 6)
        }),
    );
    check_op(
        "conv depthwise stride 2",
        op_model(|n, a| {
            let attrs = vec![
                ints("pads", &[1, 1, 1, 1]),
                ints("strides", &[2, 2]),
                AttributeProto::int("group", 4),
            ];
            (n.conv(a, 4, 4, 3, attrs), 4)
        }),
    );
    check_op(
        "conv dilated",
        op_model(|n, a| {
            (
                n.conv(
                    a,
                    4,
                    4,
                    3,
                    vec![ints("pads", &[2, 2, 2, 2]), ints("dilations", &[2, 2])],
                ),
                4,
            )
        }),
    );
    check_op(
        "conv SAME_UPPER stride 2",
        op_model(|n, a| {
            let attrs = vec![
                AttributeProto::string("auto_pad", "SAME_UPPER"),
                ints("strides", &[2, 2]),
            ];
            (n.conv(a, 4, 4, 3, attrs), 4)
        }),
    );
    check_op(
        "conv SAME_LOWER stride 1 k2",
        op_model(|n, a| {
            (
                n.conv(
                    a,
                    4,
                    4,
                    2,
                    vec![AttributeProto::string("auto_pad", "SAME_LOWER")],
                ),
                4,
            )
        }),
    );
    check_op(
        "conv 1x1 padded (transpose)",
        op_model(|n, a| (n.conv(a, 4, 4, 1, vec![ints("pads", &[1, 0, 1, 2])]), 4)),
    );
    check_op(
        "conv valid stride 2 (out pad)",
        op_model(|n, a| (n.conv(a, 4, 4, 3, vec![ints("strides", &[2, 2])]), 4)),
    );
    check_op(
        "conv 1x1 stride 2 with bias",
        op_model(|n, a| {
            let w = n.rng.array(&[4, 4, 1, 1], -0.5, 0.5);
            let w = n.floats(w);
            let b = n.rng.array(&[4], -0.5, 0.5);
            let b = n.floats(b);
            (
                n.node("Conv", &[a, &w, &b], vec![ints("strides", &[2, 2])]),
                4,
            )
        }),
    );
}

#[test]
fn batch_norm_and_elementwise_rules() {
    check_op("batchnorm chain", op_model(|n, a| (n.bn(a, 4), 4)));
    check_op("relu", op_model(|n, a| (n.node("Relu", &[a], vec![]), 4)));
    check_op(
        "leakyrelu",
        op_model(|n, a| {
            (
                n.node("LeakyRelu", &[a], vec![AttributeProto::float("alpha", 0.1)]),
                4,
            )
        }),
    );
    check_op(
        "sigmoid",
        op_model(|n, a| (n.node("Sigmoid", &[a], vec![]), 4)),
    );
    check_op(
        "silu (sigmoid, mul)",
        op_model(|n, a| {
            let s = n.node("Sigmoid", &[a], vec![]);
            (n.node("Mul", &[a, &s], vec![]), 4)
        }),
    );
    check_op(
        "silu with a shared sigmoid",
        op_model(|n, a| {
            let s = n.node("Sigmoid", &[a], vec![]);
            let y = n.node("Mul", &[&s, a], vec![]);
            (n.node("Add", &[&y, &s], vec![]), 4)
        }),
    );
    check_op("tanh", op_model(|n, a| (n.node("Tanh", &[a], vec![]), 4)));
    check_op("neg", op_model(|n, a| (n.node("Neg", &[a], vec![]), 4)));
    check_op(
        "mul by constant (broadcast)",
        op_model(|n, a| {
            let k = n.rng.array(&[4, 1, 1], -2.0, 2.0);
            let k = n.floats(k);
            (n.node("Mul", &[&k, a], vec![]), 4)
        }),
    );
    check_op(
        "mul x·x",
        op_model(|n, a| (n.node("Mul", &[a, a], vec![]), 4)),
    );
    check_op(
        "add residual + bias",
        op_model(|n, a| {
            let c = n.conv(a, 4, 4, 3, vec![ints("pads", &[1, 1, 1, 1])]);
            let r = n.node("Add", &[a, &c], vec![]);
            let k = n.rng.array(&[1, 4, 1, 1], -1.0, 1.0);
            let k = n.floats(k);
            (n.node("Add", &[&r, &k], vec![]), 4)
        }),
    );
    check_op(
        "add broadcast (active [N,C,1,1])",
        op_model(|n, a| {
            let m = n.node("GlobalAveragePool", &[a], vec![]);
            (n.node("Add", &[a, &m], vec![]), 4)
        }),
    );
    check_op(
        "sub both ways",
        op_model(|n, a| {
            let k = n.scalar(0.3);
            let b = n.node("Sub", &[&k, a], vec![]);
            let s = n.node("Sigmoid", &[a], vec![]);
            (n.node("Sub", &[&b, &s], vec![]), 4)
        }),
    );
    check_op(
        "div by constant",
        op_model(|n, a| {
            let k = n.rng.array(&[4, 1, 1], 0.5, 2.0);
            let k = n.floats(k);
            (n.node("Div", &[a, &k], vec![]), 4)
        }),
    );
    check_op(
        "div by active",
        op_model(|n, a| {
            let s = n.node("Sigmoid", &[a], vec![]);
            let one = n.scalar(1.0);
            let d = n.node("Add", &[&s, &one], vec![]);
            (n.node("Div", &[a, &d], vec![]), 4)
        }),
    );
    check_op(
        "hardsigmoid",
        op_model(|n, a| {
            let attrs = vec![AttributeProto::float("alpha", 1.0 / 6.0)];
            (n.node("HardSigmoid", &[a], attrs), 4)
        }),
    );
    check_op(
        "hardswish",
        op_model(|n, a| {
            // Scale up so that inputs fall on all three pieces (below −3, between, above 3).
            let k = n.scalar(4.0);
            let big = n.node("Mul", &[a, &k], vec![]);
            (n.node("HardSwish", &[&big], vec![]), 4)
        }),
    );
    check_op(
        "clip (relu6)",
        op_model(|n, a| {
            let (lo, hi) = (n.scalar(-0.5), n.scalar(0.8));
            (n.node("Clip", &[a, &lo, &hi], vec![]), 4)
        }),
    );
    check_op(
        "clip min only",
        op_model(|n, a| {
            let lo = n.scalar(0.1);
            (n.node("Clip", &[a, &lo], vec![]), 4)
        }),
    );
}

#[test]
fn layout_rules() {
    check_op(
        "concat",
        op_model(|n, a| {
            let s = n.node("Sigmoid", &[a], vec![]);
            let k = n.rng.array(&[2, 2, 8, 8], -1.0, 1.0);
            let k = n.floats(k);
            (
                n.node(
                    "Concat",
                    &[a, &k, &s, a],
                    vec![AttributeProto::int("axis", 1)],
                ),
                14,
            )
        }),
    );
    check_op(
        "concat one active",
        op_model(|n, a| {
            let k = n.rng.array(&[2, 3, 8, 8], -1.0, 1.0);
            let k = n.floats(k);
            (
                n.node("Concat", &[&k, a], vec![AttributeProto::int("axis", -3)]),
                7,
            )
        }),
    );
    check_op(
        "split (one output unused)",
        op_model(|n, a| {
            let sizes = n.ints(&[1, 2, 1]);
            let parts = n.node_n(
                "Split",
                &[a, &sizes],
                3,
                vec![AttributeProto::int("axis", 1)],
            );
            let s = n.node("Sigmoid", &[&parts[2]], vec![]);
            (
                n.node(
                    "Concat",
                    &[&s, &parts[0], &s],
                    vec![AttributeProto::int("axis", 1)],
                ),
                3,
            )
        }),
    );
    check_op(
        "slice step 1",
        op_model(|n, a| {
            let (st, en, ax) = (n.ints(&[1, 2]), n.ints(&[-1, 7]), n.ints(&[2, 3]));
            (n.node("Slice", &[a, &st, &en, &ax], vec![]), 4)
        }),
    );
    check_op(
        "slice step 2 (focus)",
        op_model(|n, a| {
            let mut parts = Vec::new();
            for (r, c) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (st, en, ax, sp) = (
                    n.ints(&[r, c]),
                    n.ints(&[i64::MAX, 8]),
                    n.ints(&[2, 3]),
                    n.ints(&[2, 2]),
                );
                parts.push(n.node("Slice", &[a, &st, &en, &ax, &sp], vec![]));
            }
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            (
                n.node("Concat", &refs, vec![AttributeProto::int("axis", 1)]),
                16,
            )
        }),
    );
    check_op(
        "slice step 3 (ragged end)",
        op_model(|n, a| {
            let (st, en, ax, sp) = (n.ints(&[1]), n.ints(&[8]), n.ints(&[3]), n.ints(&[3]));
            (n.node("Slice", &[a, &st, &en, &ax, &sp], vec![]), 4)
        }),
    );
    check_op(
        "pad",
        op_model(|n, a| {
            let p = n.ints(&[0, 0, 1, 2, 0, 0, 2, 0]);
            let v = n.scalar(0.25);
            (n.node("Pad", &[a, &p, &v], vec![]), 4)
        }),
    );
    check_op(
        "pad negative (crop) with axes",
        op_model(|n, a| {
            n.opset = 18; // Pad takes axes from opset 18
            let p = n.ints(&[-1, 2, 1, -2]);
            let ax = n.ints(&[2, 3]);
            (n.node("Pad", &[a, &p, "", &ax], vec![]), 4)
        }),
    );
    check_op(
        "identity, dropout",
        op_model(|n, a| {
            let i = n.node("Identity", &[a], vec![]);
            (n.node("Dropout", &[&i], vec![]), 4)
        }),
    );
    check_op(
        "flatten, reshape",
        op_model(|n, a| {
            let f = n.node("Flatten", &[a], vec![]);
            let s = n.node("Sigmoid", &[&f], vec![]);
            let shape = n.ints(&[0, 4, 8, -1]);
            (n.node("Reshape", &[&s, &shape], vec![]), 4)
        }),
    );
    check_op(
        "transpose",
        op_model(|n, a| {
            let t = n.node("Transpose", &[a], vec![ints("perm", &[0, 2, 3, 1])]);
            let s = n.node("Sigmoid", &[&t], vec![]);
            (
                n.node("Transpose", &[&s], vec![ints("perm", &[0, 3, 1, 2])]),
                4,
            )
        }),
    );
    check_op(
        "unsqueeze, squeeze",
        op_model(|n, a| {
            let ax = n.ints(&[2]);
            let u = n.node("Unsqueeze", &[a, &ax], vec![]);
            let s = n.node("Sigmoid", &[&u], vec![]);
            (n.node("Squeeze", &[&s, &ax], vec![]), 4)
        }),
    );
    check_op(
        "resize nearest x2 (scales)",
        op_model_sized(&[2, 3, 4, 6], |n, a| {
            let scales =
                n.floats(ArrayD::from_shape_vec(IxDyn(&[4]), vec![1.0, 1.0, 2.0, 2.0]).unwrap());
            let attrs = vec![
                AttributeProto::string("mode", "nearest"),
                AttributeProto::string("coordinate_transformation_mode", "asymmetric"),
                AttributeProto::string("nearest_mode", "floor"),
            ];
            (n.node("Resize", &[a, "", &scales], attrs), 4)
        }),
    );
    check_op(
        "resize nearest x3,x1 (sizes)",
        op_model_sized(&[2, 3, 4, 6], |n, a| {
            let sizes = n.ints(&[2, 4, 12, 6]);
            (
                n.node(
                    "Resize",
                    &[a, "", "", &sizes],
                    vec![AttributeProto::string("mode", "nearest")],
                ),
                4,
            )
        }),
    );
}

#[test]
fn pooling_rules() {
    check_op(
        "maxpool 3x3 stride 2",
        op_model(|n, a| {
            let attrs = vec![
                ints("kernel_shape", &[3, 3]),
                ints("strides", &[2, 2]),
                ints("pads", &[1, 1, 1, 1]),
            ];
            (n.node("MaxPool", &[a], attrs), 4)
        }),
    );
    // On 16×16 maps: after three 5×5 pools on 8×8 maps every value is the channel's
    // maximum, the std is 0 and the loss is not differentiable there.
    check_op(
        "maxpool 5x5 stride 1 x3 (SPPF)",
        op_model_sized(&[1, 3, 16, 16], |n, a| {
            let attrs = || vec![ints("kernel_shape", &[5, 5]), ints("pads", &[2, 2, 2, 2])];
            let p1 = n.node("MaxPool", &[a], attrs());
            let p2 = n.node("MaxPool", &[&p1], attrs());
            let p3 = n.node("MaxPool", &[&p2], attrs());
            (
                n.node(
                    "Concat",
                    &[a, &p1, &p2, &p3],
                    vec![AttributeProto::int("axis", 1)],
                ),
                16,
            )
        }),
    );
    check_op(
        "maxpool at opset 13 (raised to 16)",
        op_model(|n, a| {
            n.opset = 13;
            let attrs = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
            (n.node("MaxPool", &[a], attrs), 4)
        }),
    );
    check_op(
        "maxpool ceil mode",
        op_model_sized(&[2, 3, 7, 7], |n, a| {
            let attrs = vec![
                ints("kernel_shape", &[2, 2]),
                ints("strides", &[2, 2]),
                AttributeProto::int("ceil_mode", 1),
            ];
            (n.node("MaxPool", &[a], attrs), 4)
        }),
    );
    check_op(
        "averagepool 2x2 stride 2",
        op_model(|n, a| {
            let attrs = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
            (n.node("AveragePool", &[a], attrs), 4)
        }),
    );
    check_op(
        "averagepool pads, exclude pad",
        op_model_sized(&[2, 3, 7, 7], |n, a| {
            let attrs = vec![
                ints("kernel_shape", &[3, 3]),
                ints("strides", &[2, 2]),
                ints("pads", &[1, 1, 1, 1]),
                AttributeProto::int("ceil_mode", 1),
            ];
            (n.node("AveragePool", &[a], attrs), 4)
        }),
    );
    check_op(
        "averagepool pads, include pad",
        op_model(|n, a| {
            let attrs = vec![
                ints("kernel_shape", &[3, 2]),
                ints("pads", &[1, 0, 1, 1]),
                AttributeProto::int("count_include_pad", 1),
            ];
            (n.node("AveragePool", &[a], attrs), 4)
        }),
    );
    check_op(
        "squeeze-excite (GAP, HardSigmoid)",
        op_model(|n, a| {
            let p = n.node("GlobalAveragePool", &[a], vec![]);
            let c = n.conv(&p, 4, 4, 1, vec![]);
            let s = n.node(
                "HardSigmoid",
                &[&c],
                vec![AttributeProto::float("alpha", 1.0 / 6.0)],
            );
            (n.node("Mul", &[a, &s], vec![]), 4)
        }),
    );
    check_op(
        "reducemean",
        op_model(|n, a| {
            let m = n.node(
                "ReduceMean",
                &[a],
                vec![ints("axes", &[2, 3]), AttributeProto::int("keepdims", 0)],
            );
            let ax = n.ints(&[2, 3]);
            let u = n.node("Unsqueeze", &[&m, &ax], vec![]);
            (n.node("Sub", &[a, &u], vec![]), 4)
        }),
    );
}

#[test]
fn attention_rules() {
    // YOLO11-style attention: scores = Softmax(Qᵀ·K), out = V·scoresᵀ.
    check_op(
        "attention (matmul, softmax)",
        op_model_sized(&[2, 3, 4, 4], |n, a| {
            let shape = n.ints(&[2, 4, 16]);
            let q = n.node("Reshape", &[a, &shape], vec![]);
            let qt = n.node("Transpose", &[&q], vec![ints("perm", &[0, 2, 1])]);
            let scores = n.node("MatMul", &[&qt, &q], vec![]);
            let k = n.scalar(0.5);
            let scaled = n.node("Mul", &[&scores, &k], vec![]);
            let attn = n.node("Softmax", &[&scaled], vec![AttributeProto::int("axis", -1)]);
            let at = n.node("Transpose", &[&attn], vec![ints("perm", &[0, 2, 1])]);
            let out = n.node("MatMul", &[&q, &at], vec![]);
            let w = n.rng.array(&[16, 16], -0.3, 0.3);
            let w = n.floats(w);
            let proj = n.node("MatMul", &[&out, &w], vec![]);
            let back = n.ints(&[2, 4, 4, 4]);
            (n.node("Reshape", &[&proj, &back], vec![]), 4)
        }),
    );
    // Ultralytics' Attention as exported (dim 4, 2 heads, key_dim 1): a qkv 1×1 conv
    // viewed as (B, heads, 2·key+head, N) through a shape built from int64 scalars,
    // split three ways, softmax(qᵀk·scale), v·attnᵀ, plus a depthwise 3×3 positional
    // encoding of v, then a 1×1 projection.
    check_op(
        "ultralytics attention (qkv split, pe)",
        op_model_sized(&[2, 3, 4, 4], |n, a| {
            let qkv = n.conv(a, 4, 8, 1, vec![]);
            let dims: Vec<String> = [2i64, 2, 4, 16]
                .iter()
                .map(|&d| {
                    let name = n.fresh("dim");
                    n.initializers
                        .push(TensorProto::from_array(&name, &ndarray::arr0(d).into_dyn()));
                    let axes = n.ints(&[0]);
                    n.node("Unsqueeze", &[&name, &axes], vec![])
                })
                .collect();
            let refs: Vec<&str> = dims.iter().map(String::as_str).collect();
            let shape = n.node("Concat", &refs, vec![AttributeProto::int("axis", 0)]);
            let heads = n.node("Reshape", &[&qkv, &shape], vec![]);
            let sizes = n.ints(&[1, 1, 2]);
            let parts = n.node_n(
                "Split",
                &[&heads, &sizes],
                3,
                vec![AttributeProto::int("axis", 2)],
            );
            let (q, k, v) = (&parts[0], &parts[1], &parts[2]);
            let qt = n.node("Transpose", &[q], vec![ints("perm", &[0, 1, 3, 2])]);
            let scores = n.node("MatMul", &[&qt, k], vec![]);
            let scale = n.scalar(0.7);
            let scaled = n.node("Mul", &[&scores, &scale], vec![]);
            let attn = n.node("Softmax", &[&scaled], vec![AttributeProto::int("axis", -1)]);
            let at = n.node("Transpose", &[&attn], vec![ints("perm", &[0, 1, 3, 2])]);
            let mixed = n.node("MatMul", &[v, &at], vec![]);
            let image = n.ints(&[2, 4, 4, 4]);
            let mixed = n.node("Reshape", &[&mixed, &image], vec![]);
            let v_image = n.node("Reshape", &[v, &image], vec![]);
            let pe = n.conv(
                &v_image,
                4,
                4,
                3,
                vec![ints("pads", &[1, 1, 1, 1]), AttributeProto::int("group", 4)],
            );
            let pe = n.bn(&pe, 4);
            let sum = n.node("Add", &[&mixed, &pe], vec![]);
            (n.conv(&sum, 4, 4, 1, vec![]), 4)
        }),
    );
}

#[test]
fn every_loss_variant() {
    let model = || {
        op_model(|n, a| {
            let c = n.conv(
                a,
                4,
                5,
                3,
                vec![ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])],
            );
            let s = n.node("Sigmoid", &[&c], vec![]);
            (n.node("Mul", &[&c, &s], vec![]), 5)
        })
    };
    for statistics in [Statistics::PerImage, Statistics::Batch] {
        for terms in [LossTerms::Mean, LossTerms::Std, LossTerms::MeanStd] {
            let name = format!("loss {terms} over {statistics}");
            check_op_with(&name, model(), LossSpec { terms, statistics });
        }
    }
}

// ---------------------------------------------------------------------------------
// Whole networks

fn check_fixture(file: &str) {
    check_fixture_with(file, &[Statistics::PerImage, Statistics::Batch], 1e-5);
}

/// [`check_fixture`] for some statistics, at a given tolerance.
fn check_fixture_with(file: &str, statistics_checked: &[Statistics], tolerance: f64) {
    for &statistics in statistics_checked {
        let spec = LossSpec {
            terms: LossTerms::MeanStd,
            statistics,
        };
        let probes = Probes {
            largest: 3,
            random: 0,
            directions: 2,
        };
        // Batch statistics need a batch: three images (also the batch size where
        // shapes are extrapolated from runs at batches 1 and 2).
        let batch = (statistics == Statistics::Batch).then_some(3);
        let c = check_batch(&fixture(file), spec, probes, 11, batch);
        eprintln!(
            "gradient check {file:<22} {statistics:<5} relative error {:.2e} ({} probes); loss f32 vs f64 {:.1e}",
            c.relative_error, c.checked, c.loss_error
        );
        assert!(
            c.loss_error < 1e-5,
            "{file}: forward disagrees ({:.2e})",
            c.loss_error
        );
        assert!(
            c.relative_error < tolerance,
            "{file}: relative error {:.2e}",
            c.relative_error
        );
    }
}

#[test]
fn yolov8_fixture_gradient() {
    check_fixture("yolov8_c2f_dfl.onnx");
}

#[test]
fn yolov5_fixture_gradient() {
    check_fixture("yolov5_c3.onnx");
}

// The YOLO11 and YOLOv10 fixtures' BN statistics were measured on scenes, so every
// layer's activations stay normalised through the depth and the gradient sums many
// terms of similar size that largely cancel: float32 rounding alone then reaches a few
// 1e-5 (the same graphs with arbitrary statistics check to 1e-7; a wrong rule is off
// by far more than 2e-4).
const NORMALISED_TOLERANCE: f64 = 2e-4;

#[test]
fn yolo11_attention_fixture_gradient() {
    // C3k2, SPPF and C2PSA: the attention's MatMuls, scale, Softmax, the qkv Split
    // and the depthwise positional-encoding conv are on the paths to BN inputs. The
    // export fixed the attention's view sizes for one image, so per image only.
    check_fixture_with(
        "yolo11_c2psa.onnx",
        &[Statistics::PerImage],
        NORMALISED_TOLERANCE,
    );
}

#[test]
fn yolov10_end_to_end_fixture_gradient() {
    // The one-to-one head's depthwise convs; the TopK selection is past every BN.
    check_fixture_with(
        "yolov10_e2e.onnx",
        &[Statistics::PerImage, Statistics::Batch],
        NORMALISED_TOLERANCE,
    );
}

#[test]
fn resnet_fixture_gradient() {
    check_fixture("resnet_tiny.onnx");
}

#[test]
fn mobilenet_fixture_gradient() {
    check_fixture("mobilenet_tiny.onnx");
}

// ---------------------------------------------------------------------------------
// The graph itself and its errors

#[test]
fn graph_shape_outputs_and_batch() {
    let model = fixture("yolov8_c2f_dfl.onnx");
    let layers = find_bn_layers(&model).unwrap();
    // The fixture declares a batch of 1; the gradient graph takes 3.
    let graph = build_gradient_graph(
        &model,
        &layers,
        [3, 3, 64, 64],
        &LossSpec::default(),
        &cpu(),
    )
    .expect("builds");
    assert_eq!(graph.input, "images");
    assert_eq!(graph.layers.len(), layers.len());
    assert_eq!(graph.model.graph().output.len(), 2 + 2 * layers.len());
    let mut session = GradientSession::new(&graph, &cpu()).unwrap();
    let mut rng = Rng(3);
    let x = rng.array(&[3, 3, 64, 64], 0.0, 1.0);
    let mut g = vec![0.0; x.len()];
    let eval = session.run(x.as_slice().unwrap(), &mut g).unwrap();
    assert!(eval.loss.is_finite() && eval.loss > 0.0);
    assert!(g.iter().any(|v| *v != 0.0));
    let first: &BnLayer = &layers[0];
    assert_eq!(eval.layers[0].mean.len(), 3 * first.channels());
    // Shapes at batch 3 were extrapolated from runs at batches 1 and 2: with
    // per-image statistics the batch's loss is the mean of the images' losses, so
    // each image's gradient is a third of what a graph for that image alone gives.
    let single = build_gradient_graph(
        &model,
        &layers,
        [1, 3, 64, 64],
        &LossSpec::default(),
        &cpu(),
    )
    .unwrap();
    let mut single = GradientSession::new(&single, &cpu()).unwrap();
    let plane = 3 * 64 * 64;
    let mut worst = 0.0f32;
    for i in 0..3 {
        let mut gi = vec![0.0; plane];
        let e = single
            .run(&x.as_slice().unwrap()[i * plane..][..plane], &mut gi)
            .unwrap();
        let c = first.channels();
        for (a, b) in e.layers[0]
            .mean
            .iter()
            .zip(&eval.layers[0].mean[i * c..][..c])
        {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
        }
        let scale = gi.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (a, b) in g[i * plane..][..plane].iter().zip(&gi) {
            worst = worst.max((a * 3.0 - b).abs() / scale);
        }
    }
    assert!(worst < 1e-4, "batch of 3 vs single images: {worst:e}");
    // Wrong buffer sizes are an error, not a panic.
    let err = session
        .run(&[0.0; 5], &mut [0.0; 5])
        .unwrap_err()
        .to_string();
    assert!(err.contains("takes [3, 3, 64, 64] images"), "{err}");
}

#[test]
fn an_op_without_a_rule_is_named() {
    let model = op_model(|n, a| (n.node("Exp", &[a], vec![]), 4));
    let layers = find_bn_layers(&model).unwrap();
    let err = build_gradient_graph(&model, &layers, [2, 3, 8, 8], &LossSpec::default(), &cpu())
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ZsqError::NoGradientRule { .. }));
    assert!(
        text.starts_with("no gradient rule for Exp node 'Exp_"),
        "{text}"
    );
}

#[test]
fn bilinear_resize_is_refused() {
    let model = op_model_sized(&[1, 3, 4, 4], |n, a| {
        let scales =
            n.floats(ArrayD::from_shape_vec(IxDyn(&[4]), vec![1.0, 1.0, 2.0, 2.0]).unwrap());
        (
            n.node(
                "Resize",
                &[a, "", &scales],
                vec![AttributeProto::string("mode", "linear")],
            ),
            4,
        )
    });
    let layers = find_bn_layers(&model).unwrap();
    let err = build_gradient_graph(&model, &layers, [1, 3, 4, 4], &LossSpec::default(), &cpu())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no gradient rule for Resize"), "{err}");
    assert!(err.contains("mode=linear"), "{err}");
}

#[test]
fn old_opsets_are_refused() {
    let model = op_model(|n, a| {
        n.opset = 12;
        (n.node("Relu", &[a], vec![]), 4)
    });
    let layers = find_bn_layers(&model).unwrap();
    let err = build_gradient_graph(&model, &layers, [2, 3, 8, 8], &LossSpec::default(), &cpu())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("opset 12; distillation needs opset 13"),
        "{err}"
    );
}

#[test]
fn non_image_inputs_are_refused() {
    let mut net = Net::new(&[2, 3]);
    let y = net.bn("x", 3);
    let model = net.model(&y);
    let layers = find_bn_layers(&model).unwrap();
    let err = build_gradient_graph(&model, &layers, [2, 3, 1, 1], &LossSpec::default(), &cpu())
        .unwrap_err()
        .to_string();
    assert!(err.contains("input 'x' is not an image"), "{err}");
}

#[test]
fn shapes_by_execution_report_model_failures() {
    // A Reshape with the batch written in runs at batch 2 but not at batch 3.
    let model = op_model(|n, a| {
        let shape = n.ints(&[2, 4, 64]);
        let r = n.node("Reshape", &[a, &shape], vec![]);
        let back = n.ints(&[2, 4, 8, 8]);
        (n.node("Reshape", &[&r, &back], vec![]), 4)
    });
    let layers = find_bn_layers(&model).unwrap();
    let spec = LossSpec::default();
    assert!(build_gradient_graph(&model, &layers, [2, 3, 8, 8], &spec, &cpu()).is_ok());
    let err = build_gradient_graph(&model, &layers, [3, 3, 8, 8], &spec, &cpu()).unwrap_err();
    assert!(matches!(err, ZsqError::Model(_)), "{err}");
    assert!(err.to_string().contains("does not run"), "{err}");
}
