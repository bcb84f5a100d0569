//! CPU sessions made at once, the first ones of a process (a binary of its own, so that
//! nothing made one before): each registers thermalzsq's operator domain, which ONNX
//! Runtime's process-wide domain table does not guard (runtime::session).

use std::path::Path;
use std::sync::{Arc, Barrier};

use thermalzsq::runtime::{ProviderOptions, load_session_from_memory};

#[test]
fn the_first_cpu_sessions_of_a_process_can_be_made_at_once() {
    let model = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/hotspot_v8.onnx"),
    )
    .unwrap();
    let model = Arc::new(model);
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (model, start) = (model.clone(), start.clone());
            std::thread::spawn(move || {
                let options = ProviderOptions {
                    provider: "cpu".parse().unwrap(),
                    threads: 1,
                    ..ProviderOptions::default()
                };
                start.wait();
                load_session_from_memory(&model, &options).map(|_| ())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().expect("every session is made");
    }
}
