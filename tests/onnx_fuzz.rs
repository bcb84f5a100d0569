//! Hostile and damaged ONNX bytes: the decoder and what a loader does next (graph
//! view, tensor reads, re-encoding, surgery) must end in an error or a valid model,
//! never a panic, and never take more memory than the decoder promises: at most
//! [`BYTES_PER_INPUT_BYTE`] bytes per byte of input plus [`ALLOWANCE`].
//!
//! Memory is measured, not estimated: this test binary installs a counting global
//! allocator that keeps the live and peak heap of each thread (tests run on parallel
//! threads; per-thread counts keep them apart).
//!
//! The mutations are deterministic (a seeded xorshift PRNG), so a failure names a seed
//! and a mutation that reproduce it. `cargo +nightly fuzz run decode` (fuzz/, see
//! docs/onnx-ir.md) runs the same checks for as long as one likes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use thermalzsq::onnx::{
    AttributeProto, DataType, GraphProto, Model, ModelProto, NodeBuilder, StringStringEntryProto,
    TensorProto, TypeProto, UniqueNames, ValueInfoProto,
};

/// The decoder's promise (src/onnx/wire.rs): decoding N bytes never holds more than
/// `BYTES_PER_INPUT_BYTE * N + ALLOWANCE` bytes of heap.
const BYTES_PER_INPUT_BYTE: usize = 64;
const ALLOWANCE: usize = 1 << 20;

fn decode_bound(input: usize) -> usize {
    BYTES_PER_INPUT_BYTE * input + ALLOWANCE
}

// ---------------------------------------------------------------------------------
// A counting allocator: live and peak heap bytes of the current thread.

struct Counting;

thread_local! {
    // Const-initialised Cells need no lazy allocation or destructor, so the allocator
    // can use them without recursing into itself.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counts are
// kept on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as a move: both buffers are live while the bytes are copied.
        note(new_size as isize);
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            note(-(new_size as isize));
        } else {
            note(-(layout.size() as isize));
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most heap it held at once (what `f`
/// returns included).
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - base).max(0) as usize)
}

// ---------------------------------------------------------------------------------
// Protobuf bytes by hand (the library's writer is not public), and a reader that
// finds every length-delimited field, to aim mutations at lengths and messages.

fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// A length-delimited field: key, length, payload.
fn len_field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(number) << 3 | 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A length-delimited field found in a buffer; `parent` is the field whose payload
/// holds it (`None` at the top level).
#[derive(Debug, Clone)]
struct LenAt {
    key: usize,
    length: Range<usize>,
    payload: Range<usize>,
    parent: Option<usize>,
}

/// Every length-delimited field of `bytes[range]` whose payload parses as a message,
/// recursively (a payload that happens to parse, e.g. some raw data, is included: it
/// is only a place to aim a mutation). Returns false if `range` is not a message.
fn find_len_fields(
    bytes: &[u8],
    range: Range<usize>,
    parent: Option<usize>,
    depth: usize,
    out: &mut Vec<LenAt>,
) -> bool {
    let rollback = out.len();
    let mut pos = range.start;
    let bytes_in = &bytes[..range.end];
    while pos < range.end {
        let key_at = pos;
        let Some(key) = read_varint(bytes_in, &mut pos) else {
            out.truncate(rollback);
            return false;
        };
        let ok = match key & 7 {
            0 => read_varint(bytes_in, &mut pos).is_some(),
            1 => {
                pos += 8;
                pos <= range.end
            }
            5 => {
                pos += 4;
                pos <= range.end
            }
            2 => {
                let length_at = pos;
                match read_varint(bytes_in, &mut pos) {
                    Some(len) if key >> 3 != 0 && len <= (range.end - pos) as u64 => {
                        let payload = pos..pos + len as usize;
                        pos = payload.end;
                        let me = out.len();
                        out.push(LenAt {
                            key: key_at,
                            length: length_at..payload.start,
                            payload: payload.clone(),
                            parent,
                        });
                        if depth < 12 && !payload.is_empty() {
                            find_len_fields(bytes, payload, Some(me), depth + 1, out);
                        }
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !ok || key >> 3 == 0 {
            out.truncate(rollback);
            return false;
        }
    }
    true
}

/// `bytes` with `bytes[range]` replaced by `with`, where `range` lies in the payload of
/// `fields[inner]` (or at the top level): every enclosing length is rewritten, so the
/// result is well-formed protobuf again and the change reaches the decoder intact.
fn splice(
    bytes: &[u8],
    fields: &[LenAt],
    inner: Option<usize>,
    range: Range<usize>,
    with: &[u8],
) -> Vec<u8> {
    let (mut span, mut content) = (range, with.to_vec());
    let mut at = inner;
    while let Some(i) = at {
        let f = &fields[i];
        let mut payload = bytes[f.payload.start..span.start].to_vec();
        payload.extend_from_slice(&content);
        payload.extend_from_slice(&bytes[span.end..f.payload.end]);
        content = varint(payload.len() as u64);
        content.extend(payload);
        span = f.length.start..f.payload.end;
        at = f.parent;
    }
    let mut out = bytes[..span.start].to_vec();
    out.extend(content);
    out.extend_from_slice(&bytes[span.end..]);
    out
}

// ---------------------------------------------------------------------------------
// What a loader does with a model that decoded, short of ONNX Runtime.

/// Exercises `model` the way the engine's loaders do, and checks what decoded
/// re-encodes stably. Panics (with `what`) if anything panics.
fn exercise(model: &Model, what: &str) {
    let result = catch_unwind(AssertUnwindSafe(|| exercise_steps(model)));
    if let Err(panic) = result {
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("?");
        panic!("{what}: a model that decoded made the loader panic: {msg}");
    }
}

fn exercise_steps(model: &Model) {
    // Re-encoding: what decodes re-encodes canonically, so a second round trip is
    // exact (bytes compared, not structs: a flip can make a NaN).
    let once = model.to_bytes();
    assert_eq!(once.len(), model.proto.encoded_len(), "encoded_len");
    let again = ModelProto::decode(&once).expect("a re-encoded model decodes");
    assert!(again.encode_to_vec() == once, "re-encoding is not stable");

    let _ = (model.opset_version(""), model.metadata("names"));
    let graph = model.graph();
    let view = graph.view();
    let _ = view.topological_order();
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name()).collect();
    let _ = view.ancestors(&outputs);
    let _ = view.data_inputs().count();
    for node in &graph.node {
        for name in node.input.iter().chain(&node.output) {
            let _ = (view.producer(name), view.consumers(name).len());
            let _ = (
                view.shape(name).map(|s| s.static_dims()),
                view.elem_type(name),
            );
            if let Some(t) = view.tensor(name) {
                let _ = t.to_array::<f32>();
                let _ = t.to_array::<i64>();
            }
        }
    }
    for tensor in &graph.initializer {
        let _ = model.tensor_array::<f32>(tensor);
        let _ = model.tensor_array::<i64>(tensor);
        let _ = tensor.to_array::<u8>();
    }
    let mut names = UniqueNames::new(graph);
    let _ = names.fresh("x");

    // Surgery on a copy: keep one output, drop what it does not need.
    let mut edited = model.clone();
    if let Some(first) = outputs.first() {
        let _ = edited.graph_mut().prune_to(&[*first]);
    }
    edited.graph_mut().remove_unused();
    let _ = edited.to_bytes();
    let mut inlined = model.clone();
    let _ = inlined.inline_external_data();
}

/// Decodes `bytes` as a model under the memory bound; if it decodes, exercises it.
/// Returns whether it decoded.
pub fn check(bytes: &[u8], base_dir: &Path, what: &str) -> bool {
    let (decoded, peak) = peak_heap(|| Model::from_bytes(bytes));
    assert!(
        peak <= decode_bound(bytes.len()),
        "{what}: decoding {} bytes took {peak} bytes of heap (bound {})",
        bytes.len(),
        decode_bound(bytes.len())
    );
    let Ok(mut model) = decoded else {
        return false;
    };
    model.set_base_dir(base_dir);
    let ((), peak) = peak_heap(|| exercise(&model, what));
    assert!(
        peak <= 4 * decode_bound(bytes.len()),
        "{what}: using a model of {} bytes took {peak} bytes of heap",
        bytes.len()
    );
    true
}

// ---------------------------------------------------------------------------------
// Inputs.

struct Fixture {
    name: String,
    bytes: Vec<u8>,
    dir: PathBuf,
}

fn fixtures() -> Vec<Fixture> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        "tests/fixtures/onnx",
        "tests/fixtures/onnx/external_data",
        "tests/fixtures/models",
        "models",
    ] {
        let dir = root.join(dir);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
            .collect();
        paths.sort();
        for path in paths {
            out.push(Fixture {
                name: path.strip_prefix(&root).unwrap().display().to_string(),
                bytes: std::fs::read(&path).unwrap(),
                dir: dir.clone(),
            });
        }
    }
    assert!(out.len() >= 10, "fixtures found: {}", out.len());
    out
}

/// Xorshift64*: deterministic "random" choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One byte-level mutation of `bytes`, described for the failure message.
fn mutate(rng: &mut Rng, bytes: &[u8], fields: &[LenAt]) -> (String, Vec<u8>) {
    let n = bytes.len();
    let field = |rng: &mut Rng| (!fields.is_empty()).then(|| rng.below(fields.len()));
    match rng.below(8) {
        0 => {
            let end = rng.below(n);
            (format!("truncated to {end}"), bytes[..end].to_vec())
        }
        1 => {
            let mut out = bytes.to_vec();
            let mut flips = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(n);
                let bit = rng.below(8);
                out[at] ^= 1 << bit;
                flips.push((at, bit));
            }
            (format!("bits flipped {flips:?}"), out)
        }
        2 | 3 => {
            // A length bomb: a length field set past what is left, to huge values, or
            // just off by one; half keep the varint's width so nothing else moves.
            let Some(i) = field(rng) else {
                return ("unchanged".into(), bytes.to_vec());
            };
            let f = &fields[i];
            let len = f.payload.len() as u64;
            let value = *rng.pick(&[
                u64::MAX,
                1 << 62,
                u64::from(u32::MAX),
                (n - f.payload.start) as u64 + 1,
                len + 1,
                len.saturating_sub(1),
                len * 1000 + 7,
                0,
            ]);
            let mut encoded = varint(value);
            let width = f.length.len();
            if rng.below(2) == 0 && encoded.len() < width {
                // Same width, overlong: 0x80 continuation bytes, then a final 0.
                if let Some(last) = encoded.last_mut() {
                    *last |= 0x80;
                }
                encoded.resize(width - 1, 0x80);
                encoded.push(0);
            }
            let mut out = bytes[..f.length.start].to_vec();
            out.extend(&encoded);
            out.extend_from_slice(&bytes[f.length.end..]);
            (format!("length at {} set to {value}", f.length.start), out)
        }
        4 => {
            // A field repeated many times in its message, enclosing lengths fixed:
            // the repeated-message amplification issue 13 reports.
            let Some(i) = field(rng) else {
                return ("unchanged".into(), bytes.to_vec());
            };
            let f = &fields[i];
            let whole = f.key..f.payload.end;
            let copies = 1 + rng.below((1 << 18) / whole.len().max(1)).min(4000);
            let with = bytes[whole.clone()].repeat(copies + 1);
            let out = splice(bytes, fields, f.parent, whole, &with);
            (format!("field at {} repeated {copies} times", f.key), out)
        }
        5 => {
            // An empty message put in place of a field's payload, or a payload emptied.
            let Some(i) = field(rng) else {
                return ("unchanged".into(), bytes.to_vec());
            };
            let f = &fields[i];
            let out = splice(bytes, fields, Some(i), f.payload.clone(), &[]);
            (format!("payload at {} emptied", f.key), out)
        }
        6 => {
            // A field moved into another message (wrong type at the right depth).
            let (Some(a), Some(b)) = (field(rng), field(rng)) else {
                return ("unchanged".into(), bytes.to_vec());
            };
            let moved = bytes[fields[a].key..fields[a].payload.end].to_vec();
            let at = fields[b].payload.start;
            let out = splice(bytes, fields, Some(b), at..at, &moved);
            (
                format!(
                    "field at {} copied into field at {}",
                    fields[a].key, fields[b].key
                ),
                out,
            )
        }
        _ => {
            // Random bytes over a short run.
            let mut out = bytes.to_vec();
            let at = rng.below(n);
            let run = (1 + rng.below(16)).min(n - at);
            for b in &mut out[at..at + run] {
                *b = rng.next() as u8;
            }
            (format!("{run} random bytes at {at}"), out)
        }
    }
}

/// Mutations made on the decoded model, where the damage needs to be well-formed to
/// reach past the decoder: giant or negative dims, data shorter than the dims say,
/// wrong data types, external data pointing anywhere.
fn mutate_model(rng: &mut Rng, model: &ModelProto) -> (String, Vec<u8>) {
    let mut m = model.clone();
    let Some(graph) = m.graph.as_mut() else {
        return ("no graph".into(), m.encode_to_vec());
    };
    if graph.initializer.is_empty() {
        graph.initializer.push(TensorProto::from_array(
            "extra",
            &ndarray::arr1(&[1.0f32, 2.0]),
        ));
    }
    let i = rng.below(graph.initializer.len());
    let t = &mut graph.initializer[i];
    let what = match rng.below(5) {
        0 => {
            let dims = rng
                .pick(&[
                    vec![i64::MAX, i64::MAX],
                    vec![1 << 32, 1 << 32],
                    vec![-1],
                    vec![0, i64::MAX],
                    vec![i64::MIN],
                    vec![3; 70],
                    vec![1 << 40],
                ])
                .clone();
            t.dims = dims;
            format!("initializer {i} dims {:?}", t.dims)
        }
        1 => {
            if let Some(raw) = t.raw_data.as_mut() {
                raw.truncate(raw.len() / 2);
            }
            t.float_data.truncate(t.float_data.len() / 2);
            format!("initializer {i} data halved")
        }
        2 => {
            t.data_type = Some(rng.below(40) as i32 - 5);
            format!("initializer {i} data type {:?}", t.data_type)
        }
        3 => {
            let location = *rng.pick(&[
                "model.bin",
                "",
                ".",
                "missing.bin",
                "../onnx/no_bn.onnx",
                "/etc/passwd",
            ]);
            let offset = *rng.pick(&["0", "4", "1000000", "-1", "18446744073709551615", "x"]);
            let length = *rng.pick(&["", "0", "16", "864", "99999999999", "18446744073709551615"]);
            t.data_location = Some(1);
            t.raw_data = None;
            t.external_data = vec![
                StringStringEntryProto::new("location", location),
                StringStringEntryProto::new("offset", offset),
            ];
            if !length.is_empty() {
                t.external_data
                    .push(StringStringEntryProto::new("length", length));
            }
            format!("initializer {i} external at '{location}' offset {offset} length '{length}'")
        }
        _ => {
            // A Constant node reading a damaged tensor, so the graph view's constants
            // see it too.
            let mut bad = t.clone();
            bad.dims = vec![1 << 31, 1 << 31];
            graph.node.push(
                NodeBuilder::new("Constant")
                    .output("damaged_constant")
                    .attr_tensor("value", bad)
                    .build(),
            );
            "a Constant of giant dims".to_string()
        }
    };
    (what, m.encode_to_vec())
}

/// A model whose graph sits `levels` deep in If-node attributes (three nested messages
/// per level: node, attribute, graph).
fn nested_graphs(levels: usize) -> Vec<u8> {
    let mut graph = GraphProto {
        name: Some("leaf".into()),
        output: vec![ValueInfoProto::tensor("y", DataType::Float, Some(&[1]))],
        ..GraphProto::default()
    };
    for level in 0..levels {
        graph = GraphProto {
            node: vec![
                NodeBuilder::new("If")
                    .input("cond")
                    .output("y")
                    .attr(AttributeProto::graph("then_branch", graph))
                    .build(),
            ],
            name: Some(format!("level{level}")),
            output: vec![ValueInfoProto::tensor("y", DataType::Float, Some(&[1]))],
            ..GraphProto::default()
        };
    }
    ModelProto {
        ir_version: Some(8),
        graph: Some(graph),
        ..ModelProto::default()
    }
    .encode_to_vec()
}

// ---------------------------------------------------------------------------------
// Tests.

/// Issue 13: an empty element of a repeated message field is 2 bytes on the wire but
/// a whole default struct in memory. Each bomb here repeats one such element (or the
/// smallest valid one) until the file is ~40 kB; decoding must fail or stay in bound.
#[test]
fn repeated_empty_messages_cannot_amplify_memory() {
    let graph_of = |payload: &[u8]| len_field(7, payload); // ModelProto.graph
    let node_of = |payload: &[u8]| len_field(1, payload); // GraphProto.node
    let attribute_of = |payload: &[u8]| len_field(5, payload); // NodeProto.attribute
    let repeat = |element: &[u8]| element.repeat(40_000 / element.len());
    let bombs: Vec<(&str, Vec<u8>)> = vec![
        (
            "NodeProto.attribute",
            graph_of(&node_of(&repeat(&len_field(5, &[])))),
        ),
        ("GraphProto.node", graph_of(&repeat(&len_field(1, &[])))),
        (
            "GraphProto.initializer",
            graph_of(&repeat(&len_field(5, &[]))),
        ),
        (
            "GraphProto.value_info",
            graph_of(&repeat(&len_field(13, &[]))),
        ),
        ("ModelProto.training_info", repeat(&len_field(20, &[]))),
        ("ModelProto.functions", repeat(&len_field(25, &[]))),
        (
            "AttributeProto.sparse_tensors",
            graph_of(&node_of(&attribute_of(&repeat(&len_field(23, &[]))))),
        ),
        (
            "AttributeProto.tensors",
            graph_of(&node_of(&attribute_of(&repeat(&len_field(10, &[]))))),
        ),
        (
            "AttributeProto.graphs",
            graph_of(&node_of(&attribute_of(&repeat(&len_field(11, &[]))))),
        ),
        (
            // ValueInfo { type { tensor_type { shape { dim {} dim {} ... } } } }
            "TensorShapeProto.dim",
            graph_of(&len_field(
                11,
                &len_field(2, &len_field(1, &len_field(2, &repeat(&len_field(1, &[]))))),
            )),
        ),
        (
            // Packed int64s of one byte each: 8 bytes per byte in memory.
            "TensorProto.int64_data",
            graph_of(&len_field(5, &len_field(7, &vec![0; 40_000]))),
        ),
        (
            "NodeProto.input (empty strings)",
            graph_of(&node_of(&repeat(&len_field(1, &[])))),
        ),
    ];
    for (what, bytes) in bombs {
        let (decoded, peak) = peak_heap(|| Model::from_bytes(&bytes));
        let outcome = match &decoded {
            Ok(_) => "decoded".to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            peak <= decode_bound(bytes.len()),
            "{what}: {} bytes took {peak} bytes of heap ({}x, bound {}): {outcome}",
            bytes.len(),
            peak / bytes.len(),
            decode_bound(bytes.len())
        );
    }
}

/// The message a budget overrun gives says what is wrong and where.
#[test]
fn a_memory_bomb_fails_with_an_error_that_says_so() {
    let node = len_field(5, &[]).repeat(200_000);
    let bytes = len_field(7, &len_field(1, &node));
    let err = Model::from_bytes(&bytes).unwrap_err().to_string();
    assert!(
        err.contains("too large or complex for its size") && err.contains("NodeProto.attribute"),
        "{err}"
    );
}

/// Every committed model decodes within the bound with room to spare, so the budget
/// never refuses a real export.
#[test]
fn real_models_decode_well_within_the_memory_bound() {
    for f in fixtures() {
        let (model, peak) = peak_heap(|| Model::from_bytes(&f.bytes).unwrap());
        drop(model);
        assert!(
            peak * 2 <= decode_bound(f.bytes.len()),
            "{}: {} bytes took {peak} bytes of heap",
            f.name,
            f.bytes.len()
        );
    }
}

#[test]
fn deeply_nested_graphs_are_an_error_not_a_stack_overflow() {
    // 30 levels of If bodies (96 nested messages, down to the innermost output's
    // shape) are within the limit of 100, and every
    // recursive step of the loader (view, names, edits, encode) copes with them,
    // on a thread with a quarter of the default 2 MiB stack.
    let deep = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(|| {
            let bytes = nested_graphs(30);
            assert!(check(&bytes, Path::new("."), "30 levels of graphs"));
            let err = Model::from_bytes(&nested_graphs(40))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("messages nested deeper than 100"), "{err}");
            // Bare nesting, 3,000 messages deep: node > attribute > graph > node...
            let mut graph = Vec::new();
            for _ in 0..1000 {
                graph = len_field(1, &len_field(5, &len_field(6, &graph)));
            }
            let err = Model::from_bytes(&len_field(7, &graph))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("messages nested deeper than 100"), "{err}");
        })
        .unwrap();
    deep.join().unwrap();
}

/// The mutation fuzzer: every fixture, damaged many ways, ends in an error or a valid
/// model that the loader's next steps handle, within the memory bound.
#[test]
fn damaged_models_end_in_errors_or_valid_models_within_the_memory_bound() {
    // ONNX_FUZZ_SEED and ONNX_FUZZ_SCALE (a multiplier on the rounds) explore further;
    // the defaults are what `cargo test` runs, in a few seconds.
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let mut rng = Rng(env("ONNX_FUZZ_SEED").unwrap_or(0x9e37_79b9_7f4a_7c15) | 1);
    let scale = env("ONNX_FUZZ_SCALE").unwrap_or(1) as usize;
    let mut decoded = 0;
    let mut total = 0;
    for f in fixtures() {
        let original = ModelProto::decode(&f.bytes).unwrap();
        let mut fields = Vec::new();
        assert!(find_len_fields(
            &f.bytes,
            0..f.bytes.len(),
            None,
            0,
            &mut fields
        ));
        // Large models cost more per mutant; the small ones get more mutants.
        let rounds = scale * (40_000_000 / f.bytes.len().max(1)).clamp(12, 400);
        for round in 0..rounds {
            let (what, bytes) = if round % 4 == 3 {
                mutate_model(&mut rng, &original)
            } else {
                mutate(&mut rng, &f.bytes, &fields)
            };
            let what = format!("{} round {round}: {what}", f.name);
            decoded += usize::from(check(&bytes, &f.dir, &what));
            total += 1;
        }
    }
    // Both outcomes were exercised: the fuzzer reached past the decoder.
    assert!(
        decoded > total / 10 && decoded < total,
        "{decoded} of {total} mutants decoded"
    );
}

/// Old IR versions and hand-made models may carry a TypeProto nested in sequences and
/// maps; those allocate boxes, which the budget counts too.
#[test]
fn nested_type_boxes_are_counted() {
    // TypeProto { sequence_type { elem_type { sequence_type ... } } }, 90 deep, made
    // of 2-byte empty messages: each level is a heap box.
    let mut t = Vec::new();
    for _ in 0..45 {
        t = len_field(4, &len_field(1, &t));
    }
    let (decoded, peak) = peak_heap(|| TypeProto::decode(&t));
    assert!(decoded.is_ok());
    assert!(peak <= decode_bound(t.len()), "{peak}");
}

/// External data: a tiny model naming a huge file (a sparse 256 MiB one here) must
/// not make the loader read it all when its dims say 16 bytes.
#[test]
fn external_data_of_the_wrong_size_is_refused_before_it_is_read() {
    let dir = std::env::temp_dir().join(format!("thermalzsq-fuzz-sparse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join("w.bin")).unwrap();
    file.set_len(256 << 20).unwrap();
    let w = TensorProto {
        name: Some("w".into()),
        dims: vec![4],
        data_type: Some(DataType::Float as i32),
        data_location: Some(1),
        external_data: vec![StringStringEntryProto::new("location", "w.bin")],
        ..TensorProto::default()
    };
    let mut model = Model::from_proto(ModelProto {
        graph: Some(GraphProto {
            initializer: vec![w],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    });
    model.set_base_dir(&dir);
    let (read, peak) = peak_heap(|| model.tensor_data(&model.graph().initializer[0]).map(drop));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(peak < 1 << 20, "reading took {peak} bytes of heap");
    let err = read.unwrap_err().to_string();
    assert!(err.contains("need 16 bytes"), "{err}");
}
