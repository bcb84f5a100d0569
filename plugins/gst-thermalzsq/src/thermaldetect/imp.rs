use gst::glib;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;

#[derive(Default)]
pub struct ThermalDetect {}

#[glib::object_subclass]
impl ObjectSubclass for ThermalDetect {
    const NAME: &'static str = "GstThermalDetect";
    type Type = super::ThermalDetect;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for ThermalDetect {}
impl GstObjectImpl for ThermalDetect {}
impl ElementImpl for ThermalDetect {}
impl BaseTransformImpl for ThermalDetect {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;
}
impl VideoFilterImpl for ThermalDetect {}
