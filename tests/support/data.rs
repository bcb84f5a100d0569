//! Scratch directories and a small generated data set, shared by the engine's
//! tests/quantize.rs and the command line's cli/tests/quantize.rs (included with
//! `#[path]`, as tests/support/pin.rs is).

use std::path::PathBuf;

/// An empty directory of this test process under the system's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("thermalzsq-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small `zsq synth` data set (thermal16/, thermal8/, rgb/).
pub fn synth_dataset(name: &str, scenes: u64) -> PathBuf {
    let dir = temp_dir(name);
    thermalzsq::synth::write_dataset(&thermalzsq::synth::DatasetSpec {
        out: dir.clone(),
        scenes,
        seed: 3,
        width: 96,
        height: 80,
        recording: 0,
        recording_format: Default::default(),
        radiometry: Default::default(),
        agc: Default::default(),
    })
    .unwrap();
    dir
}
