//! `thermalpublish`: `thermaltrack`'s events to an MQTT broker (see imp.rs).

use gst::glib;
use gst::prelude::*;

mod broker;
mod client;
mod imp;
mod payload;

glib::wrapper! {
    pub struct ThermalPublish(ObjectSubclass<imp::ThermalPublish>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::trackmeta::register();
    gst::Element::register(
        Some(plugin),
        "thermalpublish",
        gst::Rank::NONE,
        ThermalPublish::static_type(),
    )
}
