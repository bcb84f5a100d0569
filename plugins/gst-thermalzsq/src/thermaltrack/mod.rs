//! `thermaltrack`: identities, zones and events over `thermaldetect`'s boxes (see imp.rs).

use gst::glib;
use gst::prelude::*;

mod imp;
mod outputs;
mod overlay;
mod rois;

glib::wrapper! {
    pub struct ThermalTrack(ObjectSubclass<imp::ThermalTrack>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// `tracker`: how detections are associated with tracks.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstThermalTrackMethod")]
pub enum TrackMethod {
    #[enum_value(
        name = "ByteTrack: Kalman motion, high- then low-confidence optimal matching",
        nick = "bytetrack"
    )]
    Bytetrack = 0,
    #[enum_value(name = "Greedy IoU with the last box (baseline)", nick = "iou")]
    Iou = 1,
}

impl From<TrackMethod> for thermalzsq::track::Method {
    fn from(m: TrackMethod) -> Self {
        match m {
            TrackMethod::Bytetrack => Self::ByteTrack,
            TrackMethod::Iou => Self::Iou,
        }
    }
}

impl From<thermalzsq::track::Method> for TrackMethod {
    fn from(m: thermalzsq::track::Method) -> Self {
        match m {
            thermalzsq::track::Method::ByteTrack => Self::Bytetrack,
            thermalzsq::track::Method::Iou => Self::Iou,
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::trackmeta::register();
    gst::Element::register(
        Some(plugin),
        "thermaltrack",
        gst::Rank::NONE,
        ThermalTrack::static_type(),
    )
}
