//! Rewrites a YOLOv8-style detector's DFL box decoding to reduce over the bins in
//! place (`detect::dfl::rewrite_dfl`, what `Detector` does at load) and writes the
//! result: to profile or time the two forms side by side outside the detector.
//!
//! `cargo run --release --example rewrite_dfl -- IN.onnx OUT.onnx`

use std::process::ExitCode;

use thermalzsq::detect::dfl::rewrite_dfl;
use thermalzsq::onnx::Model;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: rewrite_dfl IN.onnx OUT.onnx");
        return ExitCode::FAILURE;
    };
    let run = || -> Result<String, Box<dyn std::error::Error>> {
        let mut model = Model::load(input)?;
        model.inline_external_data()?;
        let summary = rewrite_dfl(&mut model);
        model.save(output)?;
        let mut line = format!("{output}: {} DFL decoding(s) rewritten", summary.applied);
        for why in &summary.skipped {
            line += &format!("\n  left as exported: {why}");
        }
        Ok(line)
    };
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rewrite_dfl: error: {e}");
            ExitCode::FAILURE
        }
    }
}
