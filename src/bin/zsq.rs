//! `zsq`: the thermalzsq command-line tool.
//!
//! Each subcommand is a thin shell over an engine module; errors are one line on stderr
//! and a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thermalzsq::detect::{Detector, DetectorConfig};

#[derive(Parser)]
#[command(
    name = "zsq",
    version,
    about = "Zero-shot int8 quantization and thermal detection tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what thermaldetect sees in a detector: input, output layout, classes, provider.
    Inspect {
        /// The ONNX detector.
        model: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Inspect { model } => inspect(&model),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zsq: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn inspect(model: &std::path::Path) -> Result<(), String> {
    let detector = Detector::load(model, DetectorConfig::default()).map_err(|e| e.to_string())?;
    let [_, c, h, w] = detector.input_shape();
    println!("model:    {}", model.display());
    println!("input:    {c}x{h}x{w}");
    println!(
        "layout:   {} with {} classes",
        detector.layout().name(),
        detector.layout().classes()
    );
    println!("classes:  {}", detector.labels().join(", "));
    println!("provider: {}", detector.provider());
    for why in detector.fallbacks() {
        println!("          ({why})");
    }
    Ok(())
}
