//! GStreamer plugin `thermalzsq`: thermal object detection (`thermaldetect`),
//! tracking with zones and events (`thermaltrack`), MQTT publishing of the events
//! (`thermalpublish`) and zero-shot int8 calibration
//! (`zsqcalibrate`) on ONNX Runtime.
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

use gst::glib;

mod enums;
mod jsonlines;
pub mod modelevent;
mod ortlog;
mod props;
mod sync;
mod thermaldetect;
mod thermalpublish;
mod thermaltrack;
pub mod trackmeta;
mod videolayout;
mod zsqcalibrate;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    ortlog::install();
    thermaldetect::register(plugin)?;
    thermalpublish::register(plugin)?;
    thermaltrack::register(plugin)?;
    zsqcalibrate::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    thermalzsq,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
