//! `zsqcalibrate`: data-free int8 calibration at pipeline start-up (see imp.rs).

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct ZsqCalibrate(ObjectSubclass<imp::ZsqCalibrate>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// `calibration`: where the calibration images come from (all data-free).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstZsqCalibrateCalibration")]
pub enum Calibration {
    #[enum_value(
        name = "distill when the model has BatchNormalization layers, else synth",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "Images distilled from the model's BatchNormalization statistics",
        nick = "distill"
    )]
    Distill = 1,
    #[enum_value(
        name = "Generated scenes in the model's modality (thermal or RGB)",
        nick = "synth"
    )]
    Synth = 2,
    #[enum_value(
        name = "Distilled images and generated scenes together (needs BatchNormalization layers)",
        nick = "mix"
    )]
    Mix = 3,
}

/// `loss`: which BN statistics the distilled images must match.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstZsqCalibrateLoss")]
pub enum Loss {
    #[enum_value(name = "BN means", nick = "mean")]
    Mean = 0,
    #[enum_value(name = "BN standard deviations", nick = "std")]
    Std = 1,
    #[enum_value(name = "BN means and standard deviations", nick = "mean+std")]
    MeanStd = 2,
}

/// `precision`: the int8 profile.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstZsqCalibratePrecision")]
pub enum Precision {
    #[enum_value(name = "u8s8: uint8 activations, int8 weights (CPUs)", nick = "u8s8")]
    U8s8 = 0,
    #[enum_value(
        name = "s8s8: int8 everywhere, zero points 0 (TensorRT)",
        nick = "s8s8"
    )]
    S8s8 = 1,
}

/// `on-failure`: what a failed calibration does.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstZsqCalibrateOnFailure")]
pub enum OnFailure {
    #[enum_value(name = "Warn and keep the fp32 model running", nick = "warn")]
    Warn = 0,
    #[enum_value(name = "Post an error (the pipeline stops)", nick = "error")]
    Error = 1,
}

/// `state` (read-only): where calibration stands.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstZsqCalibrateState")]
pub enum State {
    #[enum_value(name = "Not started", nick = "idle")]
    Idle = 0,
    #[enum_value(
        name = "Calibrating (the fp32 model runs meanwhile)",
        nick = "calibrating"
    )]
    Calibrating = 1,
    #[enum_value(name = "The int8 model is ready", nick = "ready")]
    Ready = 2,
    #[enum_value(name = "Calibration failed (the fp32 model runs)", nick = "failed")]
    Failed = 3,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "zsqcalibrate",
        gst::Rank::NONE,
        ZsqCalibrate::static_type(),
    )
}
