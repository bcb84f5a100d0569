use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct ThermalDetect(ObjectSubclass<imp::ThermalDetect>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "thermaldetect",
        gst::Rank::NONE,
        ThermalDetect::static_type(),
    )
}
