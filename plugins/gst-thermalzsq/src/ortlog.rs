//! ONNX Runtime's log, bridged into the `thermalzsq-ort` debug category.
//!
//! Only the sink is installed at plugin load; the ONNX Runtime environment itself is
//! created lazily by the first element that needs it.

use std::sync::{Arc, LazyLock};

use thermalzsq::runtime::{self, LogLevel};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "thermalzsq-ort",
        gst::DebugColorFlags::empty(),
        Some("ONNX Runtime log"),
    )
});

pub fn install() {
    // ONNX Runtime formats every message it produces; ask only for what the category shows.
    let min_level = match CAT.threshold() {
        t if t >= gst::DebugLevel::Log => LogLevel::Verbose,
        t if t >= gst::DebugLevel::Info => LogLevel::Info,
        t if t >= gst::DebugLevel::Warning => LogLevel::Warning,
        _ => LogLevel::Error,
    };
    runtime::set_log_sink(
        Arc::new(|level, id, msg| {
            let level = match level {
                LogLevel::Verbose => gst::DebugLevel::Log,
                LogLevel::Info => gst::DebugLevel::Info,
                LogLevel::Warning => gst::DebugLevel::Warning,
                LogLevel::Error | LogLevel::Fatal => gst::DebugLevel::Error,
            };
            gst::log_with_level!(CAT, level, "[{}] {}", id, msg);
        }),
        min_level,
    );
}
