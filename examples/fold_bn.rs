//! Folds every BatchNormalization of a model into the Conv before it, with the
//! quantizer's own folding (`zsq::quantize::fold_batch_norms`), and writes the result:
//! the form most YOLO exporters produce by default (BN statistics gone), used to
//! measure calibration without BN (docs/quantize.md).
//!
//! `cargo run --release --example fold_bn -- IN.onnx OUT.onnx`

use std::process::ExitCode;

use thermalzsq::onnx::Model;
use thermalzsq::zsq::quantize::fold_batch_norms;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: fold_bn IN.onnx OUT.onnx");
        return ExitCode::FAILURE;
    };
    let run = || -> Result<String, Box<dyn std::error::Error>> {
        let mut model = Model::load(input)?;
        model.inline_external_data()?;
        let summary = fold_batch_norms(&mut model)?;
        model.save(output)?;
        Ok(format!(
            "{output}: {} BatchNormalization folded, {} kept",
            summary.folded,
            summary.kept.len()
        ))
    };
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fold_bn: error: {e}");
            ExitCode::FAILURE
        }
    }
}
