//! `zsq`: the thermalzsq command-line tool.
//!
//! Each subcommand is a thin shell over an engine module; errors are one line on stderr
//! and a non-zero exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "zsq", version, about = "Zero-shot int8 quantization and thermal detection tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), String> = match cli.command {};
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zsq: error: {e}");
            ExitCode::FAILURE
        }
    }
}
