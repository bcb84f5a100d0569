//! Small pieces both elements need: path properties, the input size and
//! always-present pads.

use std::path::PathBuf;

use gst::glib;
use thermalzsq::onnx::InputSize;

/// A path property's value (`None` when unset).
pub fn path_value(p: &Option<PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.display().to_string())
}

/// A path from a string property (`None` for unset or empty).
pub fn path_from(value: &glib::Value) -> Option<PathBuf> {
    value
        .get::<Option<String>>()
        .expect("type checked upstream")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// `input-size`, parsed: `None` when unset or empty (the model's own size).
pub fn input_size(text: Option<&str>) -> Result<Option<InputSize>, String> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|e| format!("input-size: {e}")),
    }
}

/// `extra-input-sizes`: comma-separated `WxH`s (empty or unset: none).
pub fn input_sizes(text: Option<&str>) -> Result<Vec<InputSize>, String> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().map_err(|e| format!("extra-input-sizes: {e}")))
        .collect()
}

/// An always-present `src` and `sink` pad template pair for `caps`.
pub fn filter_pad_templates(caps: &gst::Caps) -> Vec<gst::PadTemplate> {
    [
        ("src", gst::PadDirection::Src),
        ("sink", gst::PadDirection::Sink),
    ]
    .into_iter()
    .map(|(name, direction)| {
        gst::PadTemplate::new(name, direction, gst::PadPresence::Always, caps)
            .expect("a valid pad template")
    })
    .collect()
}
