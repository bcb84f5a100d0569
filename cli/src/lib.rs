//! What the `zsq` command line does beyond calling the engine: the results report
//! (`zsq report`: measurements, tables, charts) and pictures of an evaluation
//! (`zsq eval --draw`).
//!
//! Why a crate of its own: the GStreamer plugin links the engine `thermalzsq`, and its
//! shared library should carry only what an element runs; the report generator and the
//! argument parser live here, beside the binary that uses them.

pub mod figure;
pub mod results;
