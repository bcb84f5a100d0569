//! `thermaldetect`: thermal object detection on ONNX Runtime (see imp.rs).

use gst::glib;
use gst::prelude::*;

mod imp;
mod outputs;
mod pipelined;
mod swap;
mod temperature;

glib::wrapper! {
    pub struct ThermalDetect(ObjectSubclass<imp::ThermalDetect>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// `agc`: how 16-bit radiometric counts become the detector's 8-bit view.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstThermalDetectAgc")]
pub enum AgcMode {
    #[enum_value(
        name = "Per-frame stretch between the agc-low and agc-high percentiles",
        nick = "percentile"
    )]
    Percentile = 0,
    #[enum_value(
        name = "Per-frame stretch between the coldest and hottest pixel",
        nick = "minmax"
    )]
    Minmax = 1,
    #[enum_value(
        name = "Fixed stretch between agc-range-low and agc-range-high counts",
        nick = "fixed"
    )]
    Fixed = 2,
    #[enum_value(name = "None: the full 16-bit range", nick = "none")]
    None = 3,
    #[enum_value(
        name = "Per-frame plateau histogram equalisation (as FLIR cameras' AGC)",
        nick = "equalize"
    )]
    Equalize = 4,
}

/// `output-agc-mode`: the 8-bit view `output-agc` sends downstream.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstThermalDetectOutputAgc")]
pub enum OutputAgcMode {
    #[enum_value(
        name = "The view the detector saw (agc and its settings)",
        nick = "detector"
    )]
    Detector = 0,
    #[enum_value(
        name = "Plateau histogram equalisation, whatever view the detector gets",
        nick = "equalize"
    )]
    Equalize = 1,
}

/// `polarity`: which end of the grey scale is hot.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstThermalDetectPolarity")]
pub enum Polarity {
    #[enum_value(name = "White hot", nick = "white-hot")]
    WhiteHot = 0,
    #[enum_value(name = "Black hot", nick = "black-hot")]
    BlackHot = 1,
}

/// `input-layout`: where in the frame the thermal image is.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstThermalDetectInputLayout")]
pub enum InputLayout {
    #[enum_value(name = "The whole frame is the image", nick = "full")]
    Full = 0,
    #[enum_value(
        name = "YUY2, lower half raw 16-bit counts (InfiRay P2 Pro, Topdon TC001)",
        nick = "thermal-bottom-half"
    )]
    ThermalBottomHalf = 1,
}

/// `radiometry`: how a radiometric camera's 16-bit counts map to kelvin.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstThermalDetectRadiometry")]
pub enum Radiometry {
    #[enum_value(name = "Not radiometric: no temperatures", nick = "none")]
    None = 0,
    #[enum_value(
        name = "Centikelvin, K = count / 100 (FLIR Lepton 3.5 / Boson+ TLinear, zsq synth recordings)",
        nick = "centikelvin"
    )]
    Centikelvin = 1,
    #[enum_value(
        name = "1/64 K, K = count / 64 (InfiRay P2 Pro / Topdon TC001 raw half)",
        nick = "p2pro"
    )]
    P2Pro = 2,
    #[enum_value(
        name = "K = radiometric-gain x count + radiometric-offset",
        nick = "linear"
    )]
    Linear = 3,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "thermaldetect",
        gst::Rank::NONE,
        ThermalDetect::static_type(),
    )
}
