//! The ONNX IR against real exports: byte-exact round trips, values as the Python
//! `onnx` package reports them (tests/fixtures/onnx/expected.json, written by
//! tools/fixtures/export_onnx_fixtures.py), graph queries, surgery checked by running
//! the edited model in ONNX Runtime, and robustness on damaged bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use serde_json::Value;
use thermalzsq::onnx::{
    AttributeType, DataLocation, DataType, DimValue, GraphProto, Model, ModelProto, NodeBuilder,
    OnnxError, StringStringEntryProto, TensorProto, TypeProto, TypeValue, UniqueNames,
};

const FIXTURES: [&str; 11] = [
    "yolov8_c2f_dfl.onnx",
    "yolov5_c3.onnx",
    "yolo11_c2psa.onnx",
    "yolo11_c2psa_nobn.onnx",
    "yolov10_e2e.onnx",
    "yolov10_e2e_nobn.onnx",
    "resnet_tiny.onnx",
    "mobilenet_tiny.onnx",
    "no_bn.onnx",
    "all_fields.onnx",
    "external_data/model.onnx",
];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn expected() -> Value {
    serde_json::from_slice(&read("expected.json")).unwrap()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("thermalzsq-onnx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    for name in FIXTURES {
        let bytes = read(name);
        let model = Model::from_bytes(&bytes).unwrap();
        assert_eq!(model.proto.encoded_len(), bytes.len(), "{name}");
        let out = model.to_bytes();
        if out != bytes {
            let at = out.iter().zip(&bytes).position(|(a, b)| a != b);
            panic!(
                "{name}: re-encoded bytes differ at byte {at:?} ({} vs {} bytes)",
                out.len(),
                bytes.len()
            );
        }
    }
}

/// Nothing in the fixtures is left to `unknown_fields`: every field was modelled, so
/// the round trip above exercised the real encoders.
#[test]
fn fixtures_have_no_unknown_fields() {
    fn graph_clean(g: &GraphProto) -> bool {
        g.unknown_fields.is_empty()
            && g.initializer.iter().all(|t| t.unknown_fields.is_empty())
            && g.input
                .iter()
                .chain(&g.output)
                .chain(&g.value_info)
                .all(|v| v.unknown_fields.is_empty())
            && g.node.iter().all(|n| {
                n.unknown_fields.is_empty()
                    && n.attribute.iter().all(|a| a.unknown_fields.is_empty())
                    && n.subgraphs().all(graph_clean)
            })
    }
    for name in FIXTURES {
        let model = Model::from_bytes(&read(name)).unwrap();
        assert!(
            model.proto.unknown_fields.is_empty() && graph_clean(model.graph()),
            "{name}"
        );
    }
}

#[test]
fn decoded_values_match_the_onnx_package() {
    let expected = expected();
    for name in FIXTURES {
        let e = &expected[name];
        let model = Model::load(fixture(name)).unwrap();
        let p = &model.proto;
        let g = model.graph();
        assert_eq!(
            std::fs::metadata(fixture(name)).unwrap().len(),
            e["bytes"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(p.ir_version, e["ir_version"].as_i64(), "{name}");
        assert_eq!(
            p.producer_name.as_deref().unwrap_or(""),
            e["producer_name"],
            "{name}"
        );
        let opsets: BTreeMap<String, i64> = p
            .opset_import
            .iter()
            .map(|o| (o.domain.clone().unwrap_or_default(), o.version.unwrap_or(0)))
            .collect();
        assert_eq!(
            serde_json::to_value(&opsets).unwrap(),
            e["opset_import"],
            "{name}"
        );
        let metadata: BTreeMap<&str, &str> = p
            .metadata_props
            .iter()
            .map(|m| (m.key(), m.value()))
            .collect();
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            e["metadata"],
            "{name}"
        );
        assert_eq!(
            g.node.len() as u64,
            e["node_count"].as_u64().unwrap(),
            "{name}"
        );
        let mut ops = BTreeMap::new();
        for n in &g.node {
            *ops.entry(n.op_type()).or_insert(0u64) += 1;
        }
        assert_eq!(serde_json::to_value(&ops).unwrap(), e["op_types"], "{name}");
        assert_eq!(
            p.functions.len() as u64,
            e["functions"].as_u64().unwrap(),
            "{name}"
        );

        let inits = e["initializers"].as_object().unwrap();
        assert_eq!(g.initializer.len(), inits.len(), "{name}");
        for t in &g.initializer {
            let want = &inits[t.name()];
            assert_eq!(
                serde_json::to_value(&t.dims).unwrap(),
                want["dims"],
                "{name}: {}",
                t.name()
            );
            assert_eq!(
                t.data_type.map(i64::from),
                want["data_type"].as_i64(),
                "{name}: {}",
                t.name()
            );
            if let Some(sum) = want.get("sum").and_then(Value::as_f64) {
                let values: ArrayD<f64> = model.tensor_array(t).unwrap();
                let tol = 1e-9 * values.len().max(1) as f64 + 1e-9 * sum.abs();
                assert!(
                    (values.sum() - sum).abs() <= tol,
                    "{name}: {} sums to {} not {sum}",
                    t.name(),
                    values.sum()
                );
            }
        }

        let view = g.view();
        let shape_json = |vi: &thermalzsq::onnx::ValueInfoProto| -> Value {
            match vi.r#type.as_ref().and_then(|t| t.shape()) {
                None => Value::Null,
                Some(s) => s
                    .dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(DimValue::Value(v)) => Value::from(*v),
                        Some(DimValue::Param(p)) => Value::from(p.as_str()),
                        None => Value::from(0),
                    })
                    .collect(),
            }
        };
        let inputs: serde_json::Map<String, Value> = view
            .data_inputs()
            .map(|v| (v.name().to_string(), shape_json(v)))
            .collect();
        assert_eq!(Value::Object(inputs), e["inputs"], "{name}");
        let outputs: serde_json::Map<String, Value> = g
            .output
            .iter()
            .map(|v| (v.name().to_string(), shape_json(v)))
            .collect();
        assert_eq!(Value::Object(outputs), e["outputs"], "{name}");
    }
}

#[test]
fn every_field_kind_decodes_to_what_was_written() {
    let model = Model::from_bytes(&read("all_fields.onnx")).unwrap();
    let g = model.graph();
    let view = g.view();
    let node = &g.node[0];
    assert_eq!(
        (node.domain(), node.overload.as_deref()),
        ("test.domain", Some("v2"))
    );
    let attr = |n: &str| node.attr(n).unwrap();
    assert_eq!(attr("i").i, Some(-7));
    assert_eq!(attr("f").f, Some(0.5));
    assert_eq!(attr("s").s.as_deref(), Some(&b"text"[..]));
    assert_eq!(attr("is_").ints, [-1, 0, 1 << 33]);
    assert_eq!(attr("fs").floats, [1.0, 2.5]);
    assert_eq!(attr("gs").graphs.len(), 2);
    assert_eq!(
        attr("sp").attribute_type(),
        Some(AttributeType::SparseTensor)
    );
    assert_eq!(attr("tps").type_protos.len(), 2);
    assert!(matches!(
        attr("tp").tp.as_ref().and_then(|t| t.value.as_ref()),
        Some(TypeValue::Sequence(_))
    ));

    let t = |n: &str| view.initializer(n).unwrap();
    assert_eq!(
        t("i32").to_array::<i32>().unwrap().as_slice().unwrap(),
        &[-1, 0, i32::MAX]
    );
    assert_eq!(
        t("i64").to_array::<i64>().unwrap().as_slice().unwrap(),
        &[-5, 1 << 40]
    );
    assert_eq!(
        t("f64").to_array::<f64>().unwrap().as_slice().unwrap(),
        &[0.1, -1e300]
    );
    assert_eq!(t("u64").uint64_data, [1, u64::MAX]);
    assert_eq!(
        t("f16").to_array::<f32>().unwrap().as_slice().unwrap(),
        &[1.0, -0.5]
    );
    assert_eq!(
        t("raw").to_array::<i8>().unwrap(),
        ArrayD::from_shape_vec(IxDyn(&[1, 3]), vec![-128, 0, 127]).unwrap()
    );
    assert_eq!(t("scalar").to_array::<f32>().unwrap().ndim(), 0);
    assert_eq!(t("s").string_data[1], b"\xff\x00bytes");
    assert!(t("seg").segment.is_some() && t("seg").to_array::<f32>().is_err());
    assert_eq!(t("ext").external_entry("location"), Some("weights.bin"));

    assert_eq!(g.sparse_initializer.len(), 1);
    assert_eq!(
        g.quantization_annotation[0].tensor_name.as_deref(),
        Some("z")
    );
    let x = view.value_info("x").unwrap();
    let x_type = x.r#type.as_ref().unwrap();
    assert_eq!(x_type.denotation.as_deref(), Some("TENSOR"));
    assert_eq!(
        x_type.shape().unwrap().dim[0].value,
        Some(DimValue::Param("N".into()))
    );
    assert_eq!(
        x_type.shape().unwrap().dim[0].denotation.as_deref(),
        Some("DATA_BATCH")
    );
    assert!(matches!(
        view.value_info("opaque")
            .and_then(|v| v.r#type.as_ref()?.value.as_ref()),
        Some(TypeValue::Opaque(_))
    ));

    let f = &model.proto.functions[0];
    assert_eq!(
        (f.name.as_deref(), f.overload.as_deref()),
        (Some("Leaky"), Some("o1"))
    );
    assert_eq!(
        f.node[0].attribute[0].ref_attr_name.as_deref(),
        Some("alpha")
    );
    assert_eq!(model.proto.training_info[0].update_binding[0].key(), "c");
    assert_eq!(model.opset_version("test.domain"), Some(1));
    assert_eq!(model.opset_version("ai.onnx"), Some(17));
}

#[test]
fn yolo_graph_view_answers_structural_queries() {
    let model = Model::load(fixture("yolov8_c2f_dfl.onnx")).unwrap();
    assert_eq!(model.opset_version(""), Some(17));
    assert_eq!(model.metadata("modality"), Some("thermal"));
    assert_eq!(
        model.metadata("names"),
        Some("{0: 'person', 1: 'car', 2: 'bicycle'}")
    );
    let g = model.graph();
    let view = g.view();
    assert_eq!(
        view.data_inputs().map(|v| v.name()).collect::<Vec<_>>(),
        ["images"]
    );
    assert_eq!(
        view.shape("images").and_then(|s| s.static_dims()),
        Some(vec![1, 3, 64, 64])
    );
    assert_eq!(view.elem_type("images"), Some(DataType::Float));
    let order = view.topological_order().unwrap();
    assert!(
        order.iter().copied().eq(0..g.node.len()),
        "an export is already in order"
    );

    let bns: Vec<_> = g
        .node
        .iter()
        .filter(|n| n.op_type() == "BatchNormalization")
        .collect();
    assert_eq!(bns.len(), 53);
    for bn in &bns {
        assert_eq!(
            view.producer_node(&bn.input[0]).map(|n| n.op_type()),
            Some("Conv"),
            "{}",
            bn.name()
        );
        // Scale, bias, mean, var: constants one way or another, one value per channel.
        let channels = view.tensor(&bn.input[1]).map(|t| t.dims.clone());
        for input in &bn.input[1..] {
            let t = view
                .tensor(input)
                .unwrap_or_else(|| panic!("{input} is not constant"));
            assert_eq!(Some(t.dims.clone()), channels);
            assert_eq!(view.producer(input), None, "initializers have no producer");
        }
        let var: ArrayD<f32> = view.tensor(&bn.input[4]).unwrap().to_array().unwrap();
        assert!(var.iter().all(|&v| v > 0.25), "randomised running_var");
        // Each BN feeds a SiLU: Sigmoid and Mul both read its output.
        let readers: Vec<&str> = view
            .consumers(&bn.output[0])
            .iter()
            .map(|u| g.node[u.node].op_type())
            .collect();
        assert_eq!(readers, ["Sigmoid", "Mul"], "{}", bn.name());
    }
    // Constant nodes have values (here Split sizes, Reshape shapes...).
    let constant = g.node.iter().find(|n| n.op_type() == "Constant").unwrap();
    let value = view.constant(&constant.output[0]).unwrap();
    assert!(value.to_array::<i64>().is_ok() || value.to_array::<f32>().is_ok());
    // The DFL conv's weights are 0..reg_max.
    let softmax = g
        .node
        .iter()
        .position(|n| n.op_type() == "Softmax")
        .unwrap();
    let dfl = &g.node[view.consumers(&g.node[softmax].output[0])[0].node];
    assert_eq!(dfl.op_type(), "Conv");
    let w: ArrayD<f32> = view.tensor(&dfl.input[1]).unwrap().to_array().unwrap();
    assert_eq!(
        w.iter().copied().collect::<Vec<_>>(),
        (0..8).map(|i| i as f32).collect::<Vec<_>>()
    );
}

/// The BN inputs as outputs: what BN discovery and distillation will need.
fn expose_bn_inputs(model: &mut Model) -> Vec<String> {
    let names: Vec<String> = model
        .graph()
        .node
        .iter()
        .filter(|n| n.op_type() == "BatchNormalization")
        .map(|n| n.input[0].clone())
        .collect();
    for name in &names {
        model.graph_mut().add_output(name, DataType::Float).unwrap();
    }
    names
}

/// Runs a model in ONNX Runtime on zeros; output names and shapes.
fn run_zeros(bytes: &[u8], input: &str, shape: [usize; 4]) -> Vec<(String, Vec<i64>)> {
    let mut loaded = thermalzsq::runtime::load_session_from_memory(bytes, &Default::default())
        .expect("ONNX Runtime loads it");
    let zeros = ndarray::Array4::<f32>::zeros(shape);
    let tensor = ort::value::TensorRef::from_array_view(&zeros).unwrap();
    let outputs = loaded.session.run(ort::inputs![input => tensor]).unwrap();
    outputs
        .iter()
        .map(|(name, value)| {
            let (shape, data) = value.try_extract_tensor::<f32>().unwrap();
            assert!(data.iter().all(|v| v.is_finite()), "{name}");
            (name.to_string(), shape.iter().copied().collect())
        })
        .collect()
}

#[test]
fn bn_inputs_exposed_as_outputs_run_in_onnx_runtime() {
    let dir = TempDir::new("bn-outputs");
    let mut model = Model::load(fixture("yolov8_c2f_dfl.onnx")).unwrap();
    let bn_inputs = expose_bn_inputs(&mut model);
    let path = dir.0.join("exposed.onnx");
    model.save(&path).unwrap();
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        1,
        "no temporary file left behind"
    );
    let reloaded = Model::load(&path).unwrap();
    assert_eq!(reloaded.proto, model.proto);

    let outputs = run_zeros(&std::fs::read(&path).unwrap(), "images", [1, 3, 64, 64]);
    assert_eq!(outputs.len(), 1 + bn_inputs.len());
    assert_eq!(outputs[0], ("output0".to_string(), vec![1, 7, 84]));
    let view = model.graph().view();
    for ((name, shape), bn_input) in outputs[1..].iter().zip(&bn_inputs) {
        assert_eq!(name, bn_input);
        let bn = view
            .consumers(bn_input)
            .iter()
            .map(|u| &model.graph().node[u.node]);
        let bn = bn
            .into_iter()
            .find(|n| n.op_type() == "BatchNormalization")
            .unwrap();
        let channels = view.tensor(&bn.input[1]).unwrap().dims[0];
        assert_eq!(shape[..2], [1, channels], "{name}");
    }
}

#[test]
fn pruning_to_bn_inputs_drops_the_head() {
    for (name, head_ops) in [
        ("yolov8_c2f_dfl.onnx", ["Softmax", "Sub"]),
        ("yolov5_c3.onnx", ["Pow", "Transpose"]),
    ] {
        let mut model = Model::load(fixture(name)).unwrap();
        let before = model.graph().node.len();
        let bn_inputs = expose_bn_inputs(&mut model);
        model.graph_mut().prune_to(&bn_inputs).unwrap();
        let g = model.graph();
        assert!(g.node.len() < before, "{name}");
        for op in head_ops {
            assert!(
                g.node.iter().all(|n| n.op_type() != op),
                "{name}: {op} should be gone"
            );
        }
        // The last BN's own node is not needed to compute any BN input.
        assert_eq!(g.output.len(), bn_inputs.len());
        let view = g.view();
        for t in &g.initializer {
            assert!(
                !view.consumers(t.name()).is_empty(),
                "{name}: unused initializer {} kept",
                t.name()
            );
        }
        let outputs = run_zeros(&model.to_bytes(), "images", [1, 3, 64, 64]);
        assert_eq!(outputs.len(), bn_inputs.len(), "{name}");
    }
}

#[test]
fn inserted_and_rewired_nodes_run() {
    // Scale every BN input by 1 through an inserted Mul: same output as before.
    let mut model = Model::load(fixture("resnet_tiny.onnx")).unwrap();
    let mut names = UniqueNames::new(model.graph());
    let bn_inputs: Vec<String> = model
        .graph()
        .node
        .iter()
        .filter(|n| n.op_type() == "BatchNormalization")
        .map(|n| n.input[0].clone())
        .collect();
    let one = names.fresh("one");
    model
        .graph_mut()
        .add_initializer(TensorProto::scalar(&one, 1.0f32))
        .unwrap();
    let err = model
        .graph_mut()
        .add_initializer(TensorProto::scalar(&one, 1.0f32))
        .unwrap_err();
    assert!(err.to_string().contains("already has a value"), "{err}");
    for x in &bn_inputs {
        let scaled = names.fresh(&format!("{x}_scaled"));
        let node = NodeBuilder::new("Mul")
            .name(&names.fresh("scale"))
            .inputs([x.as_str(), &one])
            .output(&scaled)
            .build();
        let g = model.graph_mut();
        g.insert_node(node).unwrap();
        assert_eq!(g.rewire(x, &scaled), 1);
    }
    let g = model.graph();
    assert_eq!(
        g.view().topological_order().unwrap(),
        (0..g.node.len()).collect::<Vec<_>>()
    );
    assert_eq!(
        g.node.iter().filter(|n| n.op_type() == "Mul").count(),
        bn_inputs.len()
    );
    let outputs = run_zeros(&model.to_bytes(), "images", [1, 3, 32, 32]);
    assert_eq!(outputs, [("output0".to_string(), vec![1, 10])]);
}

#[test]
fn external_data_is_read_from_beside_the_model() {
    let name = "external_data/model.onnx";
    let model = Model::load(fixture(name)).unwrap();
    let g = model.graph();
    let external: Vec<&TensorProto> = g.initializer.iter().filter(|t| t.is_external()).collect();
    assert_eq!(
        external.len(),
        1,
        "the conv weight is external, the BN vectors inline"
    );
    let weight = external[0];
    assert_eq!(weight.external_entry("location"), Some("model.bin"));
    let w: ArrayD<f32> = model.tensor_array(weight).unwrap();
    assert_eq!(w.shape(), [8, 3, 3, 3]);
    let err = weight.to_array::<f32>().unwrap_err().to_string();
    assert!(err.contains("external file 'model.bin'"), "{err}");

    // In memory, without a directory: a clear error until one is given.
    let mut in_memory = Model::from_bytes(&read(name)).unwrap();
    let err = in_memory
        .tensor_array::<f32>(&in_memory.graph().initializer[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("read from memory"), "{err}");
    in_memory.set_base_dir(fixture("external_data"));
    assert_eq!(
        in_memory.initializer_array::<f32>(weight.name()).unwrap(),
        w
    );

    // A missing file names the file.
    let dir = TempDir::new("external-missing");
    std::fs::copy(fixture(name), dir.0.join("model.onnx")).unwrap();
    let lonely = Model::load(dir.0.join("model.onnx")).unwrap();
    let err = lonely.initializer_array::<f32>(weight.name()).unwrap_err();
    assert!(matches!(err, OnnxError::Tensor { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("model.bin, which cannot be read") && msg.contains(weight.name()),
        "{msg}"
    );

    // Inlined, the model stands alone: ONNX Runtime runs it from memory.
    let mut inlined = model.clone();
    inlined.inline_external_data().unwrap();
    assert!(inlined.graph().initializer.iter().all(|t| !t.is_external()));
    assert_eq!(inlined.initializer_array::<f32>(weight.name()).unwrap(), w);
    let outputs = run_zeros(&inlined.to_bytes(), "images", [1, 3, 16, 16]);
    assert_eq!(outputs[0].1, [1, 8, 16, 16]);
}

/// A model whose one initializer, `w`, FLOAT of `dims`, lives in external data with
/// these `external_data` entries, resolved against `dir`.
fn external_model(dir: &Path, entries: &[(&str, &str)], dims: &[i64]) -> Model {
    let w = TensorProto {
        name: Some("w".into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: entries
            .iter()
            .map(|&(k, v)| StringStringEntryProto::new(k, v))
            .collect(),
        ..TensorProto::default()
    };
    let mut model = Model::from_proto(ModelProto {
        graph: Some(GraphProto {
            initializer: vec![w],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    });
    model.set_base_dir(dir);
    model
}

fn external_error(model: &Model) -> String {
    let w = &model.graph().initializer[0];
    let err = match model.tensor_data(w) {
        Ok(t) => panic!("read {:?} bytes", t.raw_data.as_ref().map(Vec::len)),
        Err(e) => e.to_string(),
    };
    // Inlining reads the same way and fails the same way.
    let mut inlined = model.clone();
    assert_eq!(inlined.inline_external_data().unwrap_err().to_string(), err);
    err
}

#[test]
fn external_data_never_leaves_the_models_directory() {
    let root = TempDir::new("external-escape");
    let dir = root.0.join("model");
    let outside = root.0.join("outside");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let floats: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(outside.join("secret.bin"), &floats).unwrap();
    std::fs::write(dir.join("w.bin"), &floats).unwrap();
    let link =
        |target: &Path, name: &str| std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
    link(&outside.join("secret.bin"), "secret.bin");
    link(Path::new("../outside/secret.bin"), "relative.bin");
    link(Path::new("/etc/passwd"), "passwd");
    link(&outside, "sub");
    link(Path::new("w.bin"), "alias.bin");

    for location in ["secret.bin", "relative.bin", "passwd", "sub/secret.bin"] {
        let model = external_model(&dir, &[("location", location)], &[4]);
        let err = external_error(&model);
        assert!(
            err.contains(&format!("external data location '{location}'"))
                && err.contains("outside the model's directory"),
            "{location}: {err}"
        );
    }
    // A link that stays inside is followed.
    let model = external_model(&dir, &[("location", "alias.bin")], &[4]);
    let w = &model.graph().initializer[0];
    assert_eq!(
        model
            .tensor_array::<f32>(w)
            .unwrap()
            .into_raw_vec_and_offset()
            .0,
        [1.0, 2.0, 3.0, 4.0]
    );
    // Absolute paths and `..` are refused without looking at the disk.
    for location in ["/etc/passwd", "../outside/secret.bin"] {
        let model = external_model(&dir, &[("location", location)], &[4]);
        assert!(
            external_error(&model).contains("outside the model's directory"),
            "{location}"
        );
    }
}

#[test]
fn external_data_must_be_a_regular_file() {
    let dir = TempDir::new("external-fifo");
    let fifo = dir.0.join("w.bin");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    // Held open for reading and writing, so that a reader that does open the FIFO
    // does not block forever (the old code did, with no writer): it then reads
    // nothing instead, and the test fails rather than hangs.
    let _held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    std::fs::create_dir(dir.0.join("sub")).unwrap();
    for location in ["w.bin", "sub", "."] {
        let model = external_model(&dir.0, &[("location", location)], &[0]);
        let err = external_error(&model);
        assert!(err.contains("not a regular file"), "{location}: {err}");
    }
}

#[test]
fn external_data_ranges_are_checked_against_the_file_and_the_dims() {
    let dir = TempDir::new("external-ranges");
    std::fs::write(dir.0.join("w.bin"), [0u8; 64]).unwrap();
    type Entries<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Entries, &[i64], &str); 6] = [
        // Past the end of the file.
        (&[("offset", "1000")], &[4], "has 64 bytes"),
        (&[("offset", "60"), ("length", "16")], &[4], "has 64 bytes"),
        (
            &[("offset", "18446744073709551615"), ("length", "16")],
            &[4],
            "has 64 bytes",
        ),
        // Not what the dims need: 4 floats are 16 bytes.
        (&[("length", "32")], &[4], "need 16 bytes"),
        (&[], &[4], "need 16 bytes"),
        // Dims whose size overflows.
        (&[], &[i64::MAX, 4], "overflow"),
    ];
    for (entries, dims, expected) in cases {
        let mut all = vec![("location", "w.bin")];
        all.extend_from_slice(entries);
        let model = external_model(&dir.0, &all, dims);
        let err = external_error(&model);
        assert!(err.contains(expected), "{entries:?} {dims:?}: {err}");
    }
    // The right range reads.
    let model = external_model(
        &dir.0,
        &[("location", "w.bin"), ("offset", "48"), ("length", "16")],
        &[2, 2],
    );
    let w = &model.graph().initializer[0];
    assert_eq!(model.tensor_array::<f32>(w).unwrap().shape(), [2, 2]);
}

#[test]
fn unknown_and_non_canonical_fields_survive() {
    let mut bytes = read("resnet_tiny.onnx");
    // Field 99 (varint 5) and field 100 (3 bytes) appended to the ModelProto.
    let extra = [0x98, 0x06, 0x05, 0xa2, 0x06, 0x03, b'a', b'b', b'c'];
    bytes.extend_from_slice(&extra);
    let model = ModelProto::decode(&bytes).unwrap();
    assert_eq!(model.unknown_fields, extra);
    assert_eq!(model.encode_to_vec(), bytes);

    // dims written packed (allowed, though onnx.proto does not declare it) decode the same.
    let packed = [0x0a, 0x02, 0x02, 0x03, 0x10, 0x01];
    let t = TensorProto::decode(&packed).unwrap();
    assert_eq!(
        (t.dims.as_slice(), t.data_type()),
        (&[2, 3][..], Some(DataType::Float))
    );
}

#[test]
fn damaged_bytes_give_errors_never_panics() {
    // Xorshift: deterministic "random" damage.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for name in ["mobilenet_tiny.onnx", "all_fields.onnx"] {
        let bytes = read(name);
        let full = Model::from_bytes(&bytes).unwrap();
        // Truncation. A prefix decodes only if the cut falls exactly after one of the
        // ModelProto's own fields, at or after the end of the graph: a cut anywhere
        // else leaves a key, a varint or a length-delimited field (the graph, which
        // holds everything nested) running past the end, and a prefix without the
        // graph is not a model. Such a prefix is the model without its later fields
        // (opset_import, metadata...): it re-encodes to exactly the prefix, so it is
        // a different model, never the original passed off as whole.
        let field_ends = top_level_field_ends(&bytes);
        let graph_end = field_ends
            .iter()
            .find(|&&(number, _)| number == 7)
            .map(|&(_, end)| end)
            .unwrap();
        let decodable: BTreeSet<usize> = field_ends
            .iter()
            .map(|&(_, end)| end)
            .filter(|&end| end >= graph_end && end < bytes.len())
            .collect();
        assert!(!decodable.is_empty(), "{name}: a field follows the graph");
        // ~2,000 cuts spread over the file, the first 64, and every field boundary
        // with its neighbours.
        let step = (bytes.len() / 2000).max(1);
        let ends: BTreeSet<usize> = (0..bytes.len())
            .filter(|&i| i < 64 || i % step == 0)
            .chain(
                field_ends
                    .iter()
                    .flat_map(|&(_, end)| [end.saturating_sub(1), end, end + 1]),
            )
            .filter(|&end| end < bytes.len())
            .collect();
        for end in ends {
            match Model::from_bytes(&bytes[..end]) {
                Ok(model) => {
                    assert!(
                        decodable.contains(&end),
                        "{name}: the cut at {end} is inside a field, yet it decoded"
                    );
                    assert!(model.to_bytes() == bytes[..end], "{name}: cut at {end}");
                    assert!(model != full, "{name}: cut at {end}");
                }
                Err(_) => assert!(
                    !decodable.contains(&end),
                    "{name}: the cut at {end} leaves whole fields and the graph, yet failed"
                ),
            }
        }
        // A few bit flips at a time.
        let mut damaged = bytes.clone();
        for _ in 0..1500 {
            damaged.copy_from_slice(&bytes);
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                damaged[at] ^= 1 << (next() % 8);
            }
            if let Ok(model) = Model::from_bytes(&damaged) {
                // What decodes re-encodes canonically: a second round trip is exact.
                // (Bytes, not structs, are compared: a flip can make a NaN.)
                let once = model.to_bytes();
                let twice = ModelProto::decode(&once).unwrap().encode_to_vec();
                assert!(once == twice, "{name}: re-encoding is not stable");
            }
        }
    }
}

/// (field number, end offset) of each field of a message's own (top-level) fields.
fn top_level_field_ends(bytes: &[u8]) -> Vec<(u64, usize)> {
    fn varint(bytes: &[u8], pos: &mut usize) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let byte = bytes[*pos];
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        value
    }
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let key = varint(bytes, &mut pos);
        match key & 7 {
            0 => drop(varint(bytes, &mut pos)),
            1 => pos += 8,
            2 => {
                let len = varint(bytes, &mut pos);
                pos += len as usize;
            }
            5 => pos += 4,
            other => panic!("wire type {other} in a fixture"),
        }
        out.push((key >> 3, pos));
    }
    out
}

/// TypeProto { sequence_type { elem_type { sequence_type ... } } }, `levels` deep.
fn nested_type(levels: usize) -> Vec<u8> {
    let mut message = Vec::new();
    for level in 0..levels {
        let field = if level % 2 == 0 { 0x0a } else { 0x22 }; // elem_type (1), sequence_type (4)
        let mut outer = vec![field];
        let mut len = message.len();
        while len >= 0x80 {
            outer.push((len as u8) | 0x80);
            len >>= 7;
        }
        outer.push(len as u8);
        outer.extend_from_slice(&message);
        message = outer;
    }
    message
}

#[test]
fn hostile_nesting_is_refused_before_the_stack_runs_out() {
    assert!(TypeProto::decode(&nested_type(98)).is_ok());
    let err = TypeProto::decode(&nested_type(1000))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("messages nested deeper than 100 at byte"),
        "{err}"
    );
}

#[test]
fn decode_errors_name_the_byte_and_the_field() {
    let bytes = read("resnet_tiny.onnx");
    let model = ModelProto::decode(&bytes).unwrap();
    // Cut inside the first initializer's raw_data.
    let raw_len = model.graph.as_ref().unwrap().initializer[0]
        .raw_data
        .as_ref()
        .unwrap()
        .len();
    let marker = model.graph.as_ref().unwrap().initializer[0]
        .raw_data
        .as_ref()
        .unwrap()[..16]
        .to_vec();
    let at = bytes
        .windows(16)
        .position(|w| w == marker.as_slice())
        .unwrap();
    let err = Model::from_bytes(&bytes[..at + raw_len / 2])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("truncated protobuf (message of")
            || err.starts_with("truncated protobuf (field of"),
        "{err}"
    );
    assert!(
        err.contains(" at byte ") && err.contains("while reading"),
        "{err}"
    );
    assert!(err.contains("ModelProto.graph"), "{err}");

    let err = Model::from_bytes(b"\x89PNG\r\n\x1a\n not a model")
        .unwrap_err()
        .to_string();
    assert!(err.contains(" at byte "), "{err}");
    let err = Model::from_bytes(&[]).unwrap_err().to_string();
    assert_eq!(err, "not an ONNX model: the ModelProto has no graph");
    let err = Model::load(fixture("expected.json"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected.json is not a valid ONNX model: "),
        "{err}"
    );
    let err = Model::load(Path::new("/nonexistent/model.onnx"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot read model /nonexistent/model.onnx"),
        "{err}"
    );
}
