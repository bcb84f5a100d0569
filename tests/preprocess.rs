//! The Rust pre-processing against the contract as numpy + PyTorch compute it
//! (fixtures from tools/fixtures/export_preprocess_fixture.py): AGC, letterbox
//! geometry and bilinear resampling must agree, or detectors see other images than
//! they were trained on.

use std::path::Path;

use thermalzsq::imaging::preprocess::Preprocess;
use thermalzsq::imaging::{Frame, PixelFormat};

fn check(name: &str, (w, h): (usize, usize), (in_w, in_h): (usize, usize)) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess");
    let raw = std::fs::read(dir.join(format!("{name}.gray16le"))).unwrap();
    let want: Vec<f32> = std::fs::read(dir.join(format!("{name}.f32")))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let frame = Frame::new(PixelFormat::Gray16Le, w, h, vec![(raw.as_slice(), 2 * w)]).unwrap();
    let mut pre = Preprocess::new(in_w, in_h, 3, false);
    let mut got = vec![0.0; pre.tensor_len()];
    pre.run(&frame, &mut got);
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "{name}: max abs difference {worst}");
}

#[test]
fn odd_frame_downscaled_into_a_wide_input() {
    check("odd_157x117_to_128x96", (157, 117), (128, 96));
}

#[test]
fn tiny_frame_upscaled() {
    check("up_20x12_to_96x96", (20, 12), (96, 96));
}
