//! `thermaldetect`: runs a YOLO detector on every frame (or every N-th), draws the
//! boxes in place and hands the detections on as region-of-interest metas, element
//! messages and JSON lines.
//!
//! All numeric work lives in `thermalzsq::detect`; this file maps GStreamer buffers to
//! engine frames. Model swapping lives in `swap.rs`, the outputs (metas, messages, JSON
//! lines, scoring) in `outputs.rs`, the scene temperatures of radiometric frames in
//! `temperature.rs`, `pipelined` (pre-processing the next frame during inference) in
//! `pipelined.rs`.
//!
//! With `share-session` (the default) the detector runs on the process's shared ONNX
//! Runtime session of its model and session settings (`thermalzsq::runtime::
//! shared_session`): many cameras in one process hold the model once and take turns
//! on one thread pool; everything per stream stays in this element.

use std::path::PathBuf;
use std::sync::{Condvar, LazyLock, Mutex, Weak};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;
use thermalzsq::detect::draw::{Style, draw_detections, draw_hotspot};
use thermalzsq::detect::labels::read_labels_file;
use thermalzsq::detect::temperature::{GateError, TemperatureGate};
use thermalzsq::detect::{Detection, Detector, DetectorConfig};
use thermalzsq::eval::{CocoGt, StreamEval};
use thermalzsq::imaging::agc::{self, Agc, Histogram};
use thermalzsq::imaging::frame::{lower_half_counts, upper_half_image};
use thermalzsq::imaging::preprocess::Prepared;
use thermalzsq::imaging::{Frame, FrameRef, PixelFormat};
use thermalzsq::runtime::{ProviderOptions, SharedSession};

use super::outputs::{self, FrameResult};
use super::pipelined::Ahead;
use super::swap::{ForFrame, Loaded, ModelSource, Swap};
use super::temperature::Temperatures;
use super::{AgcMode, InputLayout, OutputAgcMode, Polarity, Radiometry};
use crate::enums::ExecutionProvider;
use crate::jsonlines::JsonLines;
use crate::modelevent::ModelAnnouncement;
use crate::props::{filter_pad_templates, input_size, input_sizes, path_from, path_value};
use crate::sync::lock;
use crate::videolayout::plane_layout;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "thermaldetect",
        gst::DebugColorFlags::empty(),
        Some("Thermal object detection on ONNX Runtime"),
    )
});

/// The formats the element takes, in GStreamer's and the engine's names.
const FORMATS: [(gst_video::VideoFormat, PixelFormat); 12] = [
    (gst_video::VideoFormat::Gray8, PixelFormat::Gray8),
    (gst_video::VideoFormat::Gray16Le, PixelFormat::Gray16Le),
    (gst_video::VideoFormat::Gray16Be, PixelFormat::Gray16Be),
    (gst_video::VideoFormat::Rgb, PixelFormat::Rgb),
    (gst_video::VideoFormat::Bgr, PixelFormat::Bgr),
    (gst_video::VideoFormat::Rgbx, PixelFormat::Rgbx),
    (gst_video::VideoFormat::Bgrx, PixelFormat::Bgrx),
    (gst_video::VideoFormat::Rgba, PixelFormat::Rgba),
    (gst_video::VideoFormat::Bgra, PixelFormat::Bgra),
    (gst_video::VideoFormat::I420, PixelFormat::I420),
    (gst_video::VideoFormat::Nv12, PixelFormat::Nv12),
    (gst_video::VideoFormat::Yuy2, PixelFormat::Yuy2),
];

fn pixel_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    FORMATS.iter().find(|(g, _)| *g == format).map(|(_, p)| *p)
}

#[derive(Debug, Clone)]
pub(super) struct Settings {
    model: Option<PathBuf>,
    labels: Option<PathBuf>,
    /// `WxH` for a model with a symbolic input size; `None`: the model's own.
    input_size: Option<String>,
    /// `WxH,WxH…`: more sizes to run the model at and merge.
    extra_input_sizes: Option<String>,
    pub(super) conf_threshold: f32,
    iou_threshold: f32,
    max_detections: u32,
    pub(super) interval: u32,
    execution_provider: ExecutionProvider,
    device_id: i32,
    threads: u32,
    share_session: bool,
    trt_cache_dir: Option<PathBuf>,
    trt_fp16: bool,
    agc: AgcMode,
    agc_low: f64,
    agc_high: f64,
    agc_range_low: u32,
    agc_range_high: u32,
    polarity: Polarity,
    draw: bool,
    draw_labels: bool,
    box_thickness: u32,
    post_messages: bool,
    json_location: Option<PathBuf>,
    annotations: Option<PathBuf>,
    pub(super) input_layout: InputLayout,
    output_agc: bool,
    output_agc_mode: OutputAgcMode,
    wait_for_model: bool,
    radiometry: Radiometry,
    radiometric_gain: f64,
    radiometric_offset: f64,
    temperature_gate: Option<String>,
    draw_temperature: bool,
    draw_hotspot: bool,
    pub(super) pipelined: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            labels: None,
            input_size: None,
            extra_input_sizes: None,
            conf_threshold: 0.25,
            iou_threshold: 0.45,
            max_detections: 100,
            interval: 1,
            execution_provider: ExecutionProvider::Auto,
            device_id: 0,
            threads: 0,
            share_session: true,
            trt_cache_dir: None,
            trt_fp16: false,
            agc: AgcMode::Percentile,
            agc_low: 1.0,
            agc_high: 99.0,
            agc_range_low: 0,
            agc_range_high: 65535,
            polarity: Polarity::WhiteHot,
            draw: true,
            draw_labels: true,
            box_thickness: 2,
            post_messages: true,
            json_location: None,
            annotations: None,
            input_layout: InputLayout::Full,
            output_agc: false,
            output_agc_mode: OutputAgcMode::Detector,
            wait_for_model: true,
            radiometry: Radiometry::None,
            radiometric_gain: 0.01,
            radiometric_offset: 0.0,
            temperature_gate: None,
            draw_temperature: true,
            draw_hotspot: false,
            pipelined: false,
        }
    }
}

impl Settings {
    pub(super) fn agc(&self) -> Agc {
        match self.agc {
            AgcMode::Percentile => Agc::Percentile {
                low: self.agc_low,
                high: self.agc_high,
            },
            AgcMode::Minmax => Agc::MinMax,
            AgcMode::Fixed => Agc::Fixed {
                low: self.agc_range_low.min(65535) as u16,
                high: self.agc_range_high.min(65535) as u16,
            },
            AgcMode::None => Agc::None,
            AgcMode::Equalize => Agc::Equalize,
        }
    }

    /// The AGC of the view `output-agc` writes.
    fn output_agc(&self) -> Agc {
        match self.output_agc_mode {
            OutputAgcMode::Detector => self.agc(),
            OutputAgcMode::Equalize => Agc::Equalize,
        }
    }

    pub(super) fn polarity(&self) -> thermalzsq::imaging::preprocess::Polarity {
        match self.polarity {
            Polarity::WhiteHot => thermalzsq::imaging::preprocess::Polarity::WhiteHot,
            Polarity::BlackHot => thermalzsq::imaging::preprocess::Polarity::BlackHot,
        }
    }

    /// How counts map to kelvin; `None` without radiometry.
    pub(super) fn radiometry(&self) -> Option<thermalzsq::imaging::radiometry::Radiometry> {
        use thermalzsq::imaging::radiometry::Radiometry as Law;
        match self.radiometry {
            Radiometry::None => None,
            Radiometry::Centikelvin => Some(Law::Centikelvin),
            Radiometry::P2Pro => Some(Law::P2Pro),
            Radiometry::Linear => Some(Law::Linear {
                gain: self.radiometric_gain,
                offset: self.radiometric_offset,
            }),
        }
    }

    /// `temperature-gate`, parsed (unset: no gate).
    pub(super) fn gate(&self) -> Result<TemperatureGate, GateError> {
        self.temperature_gate.as_deref().unwrap_or("").parse()
    }

    pub(super) fn detector_config(&self) -> Result<DetectorConfig, String> {
        let labels = match &self.labels {
            Some(path) => Some(read_labels_file(path).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(DetectorConfig {
            conf_threshold: self.conf_threshold,
            iou_threshold: self.iou_threshold,
            max_detections: self.max_detections as usize,
            agc: self.agc(),
            polarity: self.polarity(),
            labels,
            provider: ProviderOptions {
                provider: self.execution_provider.into(),
                device_id: self.device_id,
                threads: self.threads as usize,
                trt_cache_dir: self.trt_cache_dir.clone(),
                trt_fp16: self.trt_fp16,
            },
            radiometry: self.radiometry(),
            gate: self.gate().map_err(|e| e.to_string())?,
            input_size: input_size(self.input_size.as_deref())?,
            extra_input_sizes: input_sizes(self.extra_input_sizes.as_deref())?,
            share_session: self.share_session,
            ..DetectorConfig::default()
        })
    }
}

pub(super) struct State {
    pub(super) info: Option<gst_video::VideoInfo>,
    format: Option<PixelFormat>,
    /// Frames seen (the index of the next one).
    pub(super) frames: u64,
    /// Out of the state while the streaming thread works on a frame (see `Work`).
    work: Option<Work>,
}

/// What the streaming thread works with. `transform_ip` takes it out of `State` for a
/// frame, so that inference, drawing and disk writes run without the state lock.
pub(super) struct Work {
    /// `None` until a model is loaded: from `model` at start, or announced upstream.
    pub(super) loaded: Option<Loaded>,
    last: Vec<Detection>,
    pub(super) json: Option<JsonLines>,
    /// With `annotations`: the frames' detections scored against them.
    pub(super) scoring: Option<StreamEval>,
    /// When the first frame arrived (frames/s of the scored run).
    pub(super) first_frame: Option<Instant>,
    /// Scratch for `output-agc`.
    hist: Histogram,
    /// `temperature-gate` and the scene temperatures.
    temperatures: Temperatures,
    /// With `pipelined`: the frame held back and the next one's tensor.
    pub(super) ahead: Ahead,
}

/// What the read-only properties report.
#[derive(Default)]
pub(super) struct Active {
    pub(super) model: Option<String>,
    pub(super) provider: Option<String>,
    /// The running model's session, to count who runs on it (not to keep it alive).
    pub(super) session: Weak<SharedSession>,
}

#[derive(Default)]
pub struct ThermalDetect {
    pub(super) settings: Mutex<Settings>,
    pub(super) state: Mutex<Option<State>>,
    pub(super) active: Mutex<Active>,
    pub(super) swap: Mutex<Swap>,
    /// Notified when a load finishes and when the element flushes or stops.
    pub(super) swap_changed: Condvar,
}

#[glib::object_subclass]
impl ObjectSubclass for ThermalDetect {
    const NAME: &'static str = "GstThermalDetect";
    type Type = super::ThermalDetect;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for ThermalDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("ONNX detector to run (fp32 or int8 QDQ; YOLOv8/v11 or YOLOv5 output). May stay unset when zsqcalibrate upstream announces the model; an announced model replaces this one")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("labels")
                    .nick("Labels")
                    .blurb("File with one class name per line (default: the model's `names` metadata, else \"class N\")")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("input-size")
                    .nick("Input size")
                    .blurb("WIDTHxHEIGHT to run the model at (a multiple of its stride: metadata `stride`, else 32): fixes a symbolic input size; rewrites the head of a YOLOv8/v10/11-style model exported at another fixed size (e.g. 640x512 runs a 320x320 detector at a 640x512 camera's own size, where small objects stay findable). Empty: the model's own size")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("extra-input-sizes")
                    .nick("Extra input sizes")
                    .blurb("WxH[,WxH...]: also run the model at these sizes on every detected frame and merge the boxes of all sizes with one class-aware NMS, e.g. input-size=640x512 extra-input-sizes=320x320: small objects from the camera's size, large ones from the size the model was trained at (each size costs its own inference). Empty: one size")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("conf-threshold")
                    .nick("Confidence threshold")
                    .blurb("Minimum class confidence of a detection")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.conf_threshold)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("iou-threshold")
                    .nick("IoU threshold")
                    .blurb("Non-maximum suppression: drop a box overlapping a better one of its class by more than this")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.iou_threshold)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-detections")
                    .nick("Maximum detections")
                    .blurb("Keep at most this many detections per frame, best first")
                    .minimum(1)
                    .default_value(d.max_detections)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("interval")
                    .nick("Interval")
                    .blurb("Run inference on every N-th frame; frames between reuse the last result")
                    .minimum(1)
                    .default_value(d.interval)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("execution-provider", d.execution_provider)
                    .nick("Execution provider")
                    .blurb("ONNX Runtime execution provider; auto tries tensorrt, cuda, cpu and warns which one runs, an explicit one that is unavailable is an error")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("device-id")
                    .nick("Device ID")
                    .blurb("GPU index for cuda and tensorrt")
                    .minimum(0)
                    .default_value(d.device_id)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("CPU threads for inference (0: one per core). With share-session, the shared session's one pool: streams on it take turns, each run with all its threads")
                    .default_value(d.threads)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("share-session")
                    .nick("Share session")
                    .blurb("Run on one ONNX Runtime session with every other thermaldetect in the process that has the same model and session settings (model bytes, input-size, execution-provider, device-id, threads, trt-*): the model is in memory once and the streams take turns on one thread pool. false: a session of its own, whose runs never wait for another stream's (a GPU that runs several at once, a stream that must not wait)")
                    .default_value(d.share_session)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("trt-cache-dir")
                    .nick("TensorRT cache directory")
                    .blurb("Where TensorRT keeps built engines and timing caches, so the next start skips the build")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("trt-fp16")
                    .nick("TensorRT fp16")
                    .blurb("Let TensorRT use fp16 kernels where they are faster")
                    .default_value(d.trt_fp16)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("agc", d.agc)
                    .nick("AGC")
                    .blurb("How 16-bit radiometric frames become the detector's 8-bit view (8-bit inputs are used as they are)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("agc-low")
                    .nick("AGC low percentile")
                    .blurb("agc=percentile: counts at or below this percentile become black")
                    .minimum(0.0)
                    .maximum(100.0)
                    .default_value(d.agc_low)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("agc-high")
                    .nick("AGC high percentile")
                    .blurb("agc=percentile: counts at or above this percentile become white")
                    .minimum(0.0)
                    .maximum(100.0)
                    .default_value(d.agc_high)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("agc-range-low")
                    .nick("AGC fixed low count")
                    .blurb("agc=fixed: raw count that becomes black")
                    .maximum(65535)
                    .default_value(d.agc_range_low)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("agc-range-high")
                    .nick("AGC fixed high count")
                    .blurb("agc=fixed: raw count that becomes white")
                    .maximum(65535)
                    .default_value(d.agc_range_high)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("polarity", d.polarity)
                    .nick("Polarity")
                    .blurb("Whether the camera shows hot as white or as black")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("draw")
                    .nick("Draw")
                    .blurb("Draw detection boxes into the frames")
                    .default_value(d.draw)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("draw-labels")
                    .nick("Draw labels")
                    .blurb("Write class and confidence above each box")
                    .default_value(d.draw_labels)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("box-thickness")
                    .nick("Box thickness")
                    .blurb("Line width of drawn boxes in pixels")
                    .minimum(1)
                    .maximum(64)
                    .default_value(d.box_thickness)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Post a `thermaldetect` element message with the detections of every frame")
                    .default_value(d.post_messages)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("json-location")
                    .nick("JSON location")
                    .blurb("Write one JSON line per frame with its detections to this file (to disk in batches, within about a second; all of it at EOS and at stop)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("output-agc")
                    .nick("Output AGC")
                    .blurb("Replace 16-bit frames by the AGC view the detector saw (scaled to 16 bits), so displays and encoders downstream show a picture; the radiometric counts are lost downstream")
                    .default_value(d.output_agc)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("output-agc-mode", d.output_agc_mode)
                    .nick("Output AGC mode")
                    .blurb("The view output-agc writes: detector (the detector's own view, agc and its settings) or equalize (plateau histogram equalisation, as a FLIR camera's display shows: people a few kelvin above the road stand out when the sky and a hot exhaust set the range), while the detector keeps the view it was trained on")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("annotations")
                    .nick("Annotations")
                    .blurb("COCO json of the stream's ground truth, images in frame order (as `zsq synth --recording` writes): at EOS the detections emitted are scored and a `thermaldetect-eval` message posted (pycocotools' twelve summary numbers: mAP50-95, mAP50, AP75, AP and AR per area range, AR@1/10/100; per class; latency p50/p95, frames/s). Classes score by name, or for a model without names by order with a warning; classes that cannot be mapped are an error")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("input-layout", d.input_layout)
                    .nick("Input layout")
                    .blurb("thermal-bottom-half: YUY2 frames whose lower half carries raw 16-bit counts (InfiRay P2 Pro, Topdon TC001); detection runs on the counts, boxes go on the upper image half")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("radiometry", d.radiometry)
                    .nick("Radiometry")
                    .blurb("How the camera's 16-bit counts map to kelvin, for temperatures: centikelvin (FLIR Lepton 3.5 / Boson+ TLinear, zsq synth recordings), p2pro (1/64 K in the lower half, with input-layout=thermal-bottom-half), linear (radiometric-gain, radiometric-offset). With it each detection carries its temperature (ROI meta, message, JSON lines) and the message the frame's; 8-bit and colour streams have none")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("radiometric-gain")
                    .nick("Radiometric gain")
                    .blurb("radiometry=linear: kelvin per count (K = gain x count + offset)")
                    .minimum(f64::MIN_POSITIVE)
                    .default_value(d.radiometric_gain)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("radiometric-offset")
                    .nick("Radiometric offset")
                    .blurb("radiometry=linear: kelvin at count 0 (K = gain x count + offset)")
                    .default_value(d.radiometric_offset)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("temperature-gate")
                    .nick("Temperature gate")
                    .blurb("With radiometry: drop detections whose hottest inner pixel is outside their class's range, LABEL:LOW-HIGH in °C, comma-separated (\"person:25-42,car:-40-120\"); classes not listed pass")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("draw-temperature")
                    .nick("Draw temperature")
                    .blurb("With radiometry and draw-labels: end each label with the box's hottest temperature (\"person 0.91 35.8°C\")")
                    .default_value(d.draw_temperature)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("draw-hotspot")
                    .nick("Draw hotspot")
                    .blurb("With radiometry: mark the frame's hottest pixel with a crosshair and its temperature, like a camera's spot meter (independent of draw)")
                    .default_value(d.draw_hotspot)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("pipelined")
                    .nick("Pipelined")
                    .blurb("Pre-process each frame on a helper thread while the detector runs on the one before: the element then runs at the detector's own frame rate on a multi-core CPU, for one frame of latency (added to the latency query). The same outputs as without")
                    .default_value(d.pipelined)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("wait-for-model")
                    .nick("Wait for model")
                    .blurb("While the first model loads (an announced one loads off the streaming thread; with TensorRT an engine build): true holds frames back until it is ready, so none goes undetected; false lets them pass undetected (no boxes, metas, messages or JSON lines), so a live source never stalls. A model swap never stalls: frames run the old model meanwhile")
                    .default_value(d.wait_for_model)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("active-model")
                    .nick("Active model")
                    .blurb("The model in use")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("active-provider")
                    .nick("Active provider")
                    .blurb("The execution provider the model runs on")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("session-users")
                    .nick("Session users")
                    .blurb("How many detectors in the process run on this element's ONNX Runtime session, this one included (1: none shares it; 0: no model yet)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "model" => s.model = path_from(value),
            "labels" => s.labels = path_from(value),
            "input-size" => s.input_size = value.get().expect("type checked upstream"),
            "extra-input-sizes" => {
                s.extra_input_sizes = value.get().expect("type checked upstream")
            }
            "conf-threshold" => s.conf_threshold = value.get().expect("type checked upstream"),
            "iou-threshold" => s.iou_threshold = value.get().expect("type checked upstream"),
            "max-detections" => s.max_detections = value.get().expect("type checked upstream"),
            "interval" => s.interval = value.get().expect("type checked upstream"),
            "execution-provider" => {
                s.execution_provider = value.get().expect("type checked upstream")
            }
            "device-id" => s.device_id = value.get().expect("type checked upstream"),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "share-session" => s.share_session = value.get().expect("type checked upstream"),
            "trt-cache-dir" => s.trt_cache_dir = path_from(value),
            "trt-fp16" => s.trt_fp16 = value.get().expect("type checked upstream"),
            "agc" => s.agc = value.get().expect("type checked upstream"),
            "agc-low" => s.agc_low = value.get().expect("type checked upstream"),
            "agc-high" => s.agc_high = value.get().expect("type checked upstream"),
            "agc-range-low" => s.agc_range_low = value.get().expect("type checked upstream"),
            "agc-range-high" => s.agc_range_high = value.get().expect("type checked upstream"),
            "polarity" => s.polarity = value.get().expect("type checked upstream"),
            "draw" => s.draw = value.get().expect("type checked upstream"),
            "draw-labels" => s.draw_labels = value.get().expect("type checked upstream"),
            "box-thickness" => s.box_thickness = value.get().expect("type checked upstream"),
            "post-messages" => s.post_messages = value.get().expect("type checked upstream"),
            "json-location" => s.json_location = path_from(value),
            "annotations" => s.annotations = path_from(value),
            "output-agc" => s.output_agc = value.get().expect("type checked upstream"),
            "output-agc-mode" => s.output_agc_mode = value.get().expect("type checked upstream"),
            "input-layout" => s.input_layout = value.get().expect("type checked upstream"),
            "wait-for-model" => s.wait_for_model = value.get().expect("type checked upstream"),
            "radiometry" => s.radiometry = value.get().expect("type checked upstream"),
            "radiometric-gain" => s.radiometric_gain = value.get().expect("type checked upstream"),
            "radiometric-offset" => {
                s.radiometric_offset = value.get().expect("type checked upstream")
            }
            "temperature-gate" => s.temperature_gate = value.get().expect("type checked upstream"),
            "draw-temperature" => s.draw_temperature = value.get().expect("type checked upstream"),
            "draw-hotspot" => s.draw_hotspot = value.get().expect("type checked upstream"),
            "pipelined" => s.pipelined = value.get().expect("type checked upstream"),
            other => unreachable!("no writable property {other}"),
        }
        gst::debug!(CAT, imp = self, "{} set", pspec.name());
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "model" => path_value(&s.model).to_value(),
            "labels" => path_value(&s.labels).to_value(),
            "input-size" => s.input_size.to_value(),
            "extra-input-sizes" => s.extra_input_sizes.to_value(),
            "conf-threshold" => s.conf_threshold.to_value(),
            "iou-threshold" => s.iou_threshold.to_value(),
            "max-detections" => s.max_detections.to_value(),
            "interval" => s.interval.to_value(),
            "execution-provider" => s.execution_provider.to_value(),
            "device-id" => s.device_id.to_value(),
            "threads" => s.threads.to_value(),
            "share-session" => s.share_session.to_value(),
            "trt-cache-dir" => path_value(&s.trt_cache_dir).to_value(),
            "trt-fp16" => s.trt_fp16.to_value(),
            "agc" => s.agc.to_value(),
            "agc-low" => s.agc_low.to_value(),
            "agc-high" => s.agc_high.to_value(),
            "agc-range-low" => s.agc_range_low.to_value(),
            "agc-range-high" => s.agc_range_high.to_value(),
            "polarity" => s.polarity.to_value(),
            "draw" => s.draw.to_value(),
            "draw-labels" => s.draw_labels.to_value(),
            "box-thickness" => s.box_thickness.to_value(),
            "post-messages" => s.post_messages.to_value(),
            "json-location" => path_value(&s.json_location).to_value(),
            "annotations" => path_value(&s.annotations).to_value(),
            "output-agc" => s.output_agc.to_value(),
            "output-agc-mode" => s.output_agc_mode.to_value(),
            "input-layout" => s.input_layout.to_value(),
            "wait-for-model" => s.wait_for_model.to_value(),
            "radiometry" => s.radiometry.to_value(),
            "radiometric-gain" => s.radiometric_gain.to_value(),
            "radiometric-offset" => s.radiometric_offset.to_value(),
            "temperature-gate" => s.temperature_gate.to_value(),
            "draw-temperature" => s.draw_temperature.to_value(),
            "draw-hotspot" => s.draw_hotspot.to_value(),
            "pipelined" => s.pipelined.to_value(),
            "active-model" => lock(&self.active).model.to_value(),
            "active-provider" => lock(&self.active).provider.to_value(),
            "session-users" => (lock(&self.active).session.strong_count() as u32).to_value(),
            other => unreachable!("no property {other}"),
        }
    }
}

impl GstObjectImpl for ThermalDetect {}

impl ElementImpl for ThermalDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Thermal object detector",
                "Filter/Analyzer/Video",
                "Detects objects with a YOLO ONNX model (fp32 or int8) on thermal and colour video, \
                 draws boxes and attaches region-of-interest metas",
                "thermalzsq developers",
            )
        });
        Some(&*METADATA)
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::PausedToReady {
            // A frame waiting for its model holds the streaming thread, and the pads
            // cannot stop before it returns.
            self.set_flushing(true);
        }
        self.parent_change_state(transition)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().map(|(f, _)| *f))
                .build();
            filter_pad_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for ThermalDetect {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        // Before the model: a typo in the gate is the first thing to fix.
        let gate = settings
            .gate()
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        input_size(settings.input_size.as_deref())
            .and_then(|_| input_sizes(settings.extra_input_sizes.as_deref()))
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        let loaded =
            match &settings.model {
                Some(path) => Some(self.load(&ModelSource::Property(path.clone())).map_err(
                    |e| gst::error_msg!(gst::LibraryError::Init, ("Cannot load detector: {}", e)),
                )?),
                // zsqcalibrate upstream will announce one before the first frame.
                None => None,
            };
        let json = match &settings.json_location {
            Some(path) => Some(JsonLines::create(path).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("Cannot write detections to {}: {}", path.display(), e)
                )
            })?),
            None => None,
        };
        let mut scoring = match &settings.annotations {
            Some(path) => Some(StreamEval::new(CocoGt::from_file(path).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ("Cannot read annotations: {}", e)
                )
            })?)),
            None => None,
        };
        if let Some(loaded) = &loaded {
            self.score_model(&mut scoring, &loaded.detector)
                .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        }
        let mut work = Work {
            loaded: None,
            last: Vec::new(),
            json,
            scoring,
            first_frame: None,
            hist: Histogram::new(),
            temperatures: Temperatures::new(gate),
            ahead: Ahead::default(),
        };
        if let Some(loaded) = loaded {
            self.activate(&mut work, loaded, 0);
        }
        self.set_flushing(false);
        *lock(&self.state) = Some(State {
            info: None,
            format: None,
            frames: 0,
            work: Some(work),
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // A load still running for this session must not land in the next one, nor
        // its thread outlive the session.
        self.stop_loading();
        let state = lock(&self.state).take();
        *lock(&self.active) = Active::default();
        if let Some(mut json) = state.and_then(|s| s.work).and_then(|w| w.json) {
            json.flush().map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::Write,
                    ("Cannot write detections: {}", e)
                )
            })?;
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        // A held frame leaves before whatever followed it.
        if event.is_serialized() && event.type_() != gst::EventType::FlushStop {
            self.drain();
        }
        match event.view() {
            gst::EventView::CustomDownstreamSticky(_) => {
                if let Some(announcement) = ModelAnnouncement::from_event(&event) {
                    self.announce(announcement);
                }
            }
            gst::EventView::FlushStart(_) => self.set_flushing(true),
            gst::EventView::FlushStop(_) => {
                self.drop_held();
                self.set_flushing(false);
            }
            // Before EOS travels on, so the application has the score and the whole
            // JSON file when it sees EOS.
            gst::EventView::Eos(_) => self.end_of_stream(),
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Sink && query.type_() == gst::QueryType::Drain {
            self.drain();
        }
        let answered = BaseTransformImplExt::parent_query(self, direction, query);
        if let (true, gst::PadDirection::Src, gst::QueryViewMut::Latency(latency)) =
            (answered, direction, query.view_mut())
        {
            self.add_frame_latency(latency);
        }
        answered
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        if !lock(&self.settings).pipelined {
            return self.parent_generate_output();
        }
        match self.take_queued_buffer() {
            Some(buffer) => self.generate_pipelined(buffer),
            None => Ok(GenerateOutputSuccess::NoOutput),
        }
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let (info, format, mut work, _) = self.take_work()?;
        let result = self.frame(buf, &info, format, &settings, &mut work, None);
        self.put_work(work);
        result
    }
}

impl ThermalDetect {
    /// The streaming thread's `Work` out of the state for a frame, with the caps and
    /// the number of frames seen so far.
    pub(super) fn take_work(
        &self,
    ) -> Result<(gst_video::VideoInfo, PixelFormat, Work, u64), gst::FlowError> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let (Some(info), Some(format)) = (state.info.clone(), state.format) else {
            return Err(gst::FlowError::NotNegotiated);
        };
        // Only the streaming thread takes it, and puts it back before returning.
        let work = state.work.take().ok_or(gst::FlowError::Flushing)?;
        Ok((info, format, work, state.frames))
    }

    /// Puts back what [`Self::take_work`] took (unless the element stopped meanwhile).
    pub(super) fn put_work(&self, work: Work) {
        if let Some(state) = lock(&self.state).as_mut() {
            state.work = Some(work);
        }
    }

    /// One frame, with the state lock released: the model, detection (every
    /// `interval` frames; from `prepared`, the tensor made ahead, if it has one),
    /// drawing and the outputs.
    pub(super) fn frame(
        &self,
        buf: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        format: PixelFormat,
        settings: &Settings,
        work: &mut Work,
        prepared: Option<&Prepared>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let running = work.loaded.as_ref().map(|l| l.name.as_str());
        let model = self.model_for_frame(running, settings.wait_for_model)?;
        let index = {
            let mut guard = lock(&self.state);
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            state.frames += 1;
            state.frames - 1
        };
        match model {
            ForFrame::Pass => {
                gst::log!(
                    CAT,
                    imp = self,
                    "frame {index} passes: the model is loading"
                );
                return Ok(gst::FlowSuccess::Ok);
            }
            ForFrame::Run(Some(loaded)) => {
                self.score_model(&mut work.scoring, &loaded.detector)
                    .map_err(|e| {
                        gst::element_imp_error!(self, gst::LibraryError::Settings, ("{}", e));
                        gst::FlowError::Error
                    })?;
                self.activate(work, *loaded, index)
            }
            ForFrame::Run(None) => {}
        }
        let Work {
            loaded: Some(loaded),
            last,
            json,
            scoring,
            first_frame,
            hist,
            temperatures,
            ahead: _,
        } = work
        else {
            // model_for_frame returns Run only with a model running or to activate.
            return Err(gst::FlowError::Error);
        };
        first_frame.get_or_insert_with(Instant::now);

        // Detection every `interval` frames; the scene's temperatures every frame, before
        // `output-agc` replaces the counts.
        let detect = index % settings.interval as u64 == 0;
        let radiometry = settings.radiometry();
        let scene = if detect || radiometry.is_some() {
            self.with_input(buf, info, format, settings.input_layout, |input| {
                if detect {
                    *last = self.detect(
                        input,
                        settings,
                        &mut loaded.detector,
                        &temperatures.gate,
                        scoring,
                        prepared,
                    )?;
                }
                Ok(radiometry.and_then(|r| temperatures.scene(self, input, r)))
            })?
        } else {
            None
        };
        let result = FrameResult {
            detections: last,
            scene,
        };
        gst::log!(
            CAT,
            imp = self,
            "frame {index}: {} detections",
            result.detections.len()
        );
        self.draw(buf, info, format, settings, &result, hist)?;

        outputs::attach_roi_metas(buf, result.detections);
        let pts = buf.pts();
        if settings.post_messages {
            self.post_detections(index, pts, &result);
        }
        self.score_frame(scoring, index, result.detections);
        self.write_json_line(json, index, pts, &loaded.name, &result)?;
        Ok(gst::FlowSuccess::Ok)
    }

    /// Runs `f` on the streaming thread's `Work` without the state lock (EOS); `None`
    /// when the element is stopped.
    pub(super) fn with_work<R>(&self, f: impl FnOnce(&mut Work) -> R) -> Option<R> {
        let mut work = lock(&self.state).as_mut()?.work.take()?;
        let result = f(&mut work);
        self.put_work(work);
        Some(result)
    }

    /// A stream-error for a frame whose planes cannot be written where the buffer says.
    fn frame_error(&self, why: &dyn std::fmt::Display) -> gst::FlowError {
        gst::element_imp_error!(
            self,
            gst::StreamError::Failed,
            ("Cannot map the frame: {}", why)
        );
        gst::FlowError::Error
    }

    /// Runs `f` on what detection reads in a frame: the whole frame, or a P2 Pro
    /// frame's lower-half counts (`thermal-bottom-half`).
    fn with_input<R>(
        &self,
        buf: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        format: PixelFormat,
        layout: InputLayout,
        f: impl FnOnce(&FrameRef) -> Result<R, gst::FlowError>,
    ) -> Result<R, gst::FlowError> {
        read_input(buf, info, format, layout, f).map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
            gst::FlowError::Error
        })?
    }

    /// Runs the detector on a frame with the current thresholds, AGC and radiometry,
    /// and times it for the score.
    fn detect(
        &self,
        input: &FrameRef,
        settings: &Settings,
        detector: &mut Detector,
        gate: &TemperatureGate,
        scoring: &mut Option<StreamEval>,
        prepared: Option<&Prepared>,
    ) -> Result<Vec<Detection>, gst::FlowError> {
        detector.set_thresholds(
            settings.conf_threshold,
            settings.iou_threshold,
            settings.max_detections as usize,
        );
        detector.set_pre(settings.agc(), settings.polarity());
        detector.set_radiometry(settings.radiometry(), gate.clone());
        let started = Instant::now();
        let detections = match prepared {
            Some(prepared) => detector.detect_prepared(input, prepared),
            None => detector.detect(input),
        };
        if let Some(eval) = scoring.as_mut() {
            eval.add_latency(started.elapsed().as_secs_f64() * 1e3);
        }
        detections.map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("Detection failed: {}", e));
            gst::FlowError::Error
        })
    }

    /// With `output-agc` on a 16-bit frame, replaces it by the detector's AGC view; with
    /// `draw`, draws the boxes, with `draw-hotspot` the spot meter (on the upper half for
    /// `thermal-bottom-half`, at the counts' coordinates).
    fn draw(
        &self,
        buf: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        format: PixelFormat,
        settings: &Settings,
        result: &FrameResult,
        hist: &mut Histogram,
    ) -> Result<(), gst::FlowError> {
        let detections = result.detections;
        let output_agc = settings.output_agc && format.is_16bit();
        let boxes = settings.draw && !detections.is_empty();
        let hotspot = result.scene.as_ref().filter(|_| settings.draw_hotspot);
        if !output_agc && !boxes && hotspot.is_none() {
            return Ok(());
        }
        let layout = plane_layout(buf, info).map_err(|e| self.frame_error(&e))?;
        let mut map = buf
            .map_writable()
            .map_err(|_| self.frame_error(&"the buffer cannot be written to"))?;
        let frame = Frame::in_buffer_mut(
            format,
            info.width() as usize,
            info.height() as usize,
            &mut map,
            &layout,
        )
        .map_err(|e| self.frame_error(&e))?;
        let mut frame = match settings.input_layout {
            InputLayout::Full => frame,
            InputLayout::ThermalBottomHalf => upper_half_image(frame).map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
                gst::FlowError::Error
            })?,
        };
        if output_agc {
            agc::apply_in_place(&mut frame, &settings.output_agc(), hist);
        }
        if settings.draw {
            let style = Style {
                thickness: settings.box_thickness as usize,
                labels: settings.draw_labels,
                confidence: true,
                temperature: settings.draw_temperature,
            };
            draw_detections(&mut frame, detections, &style);
        }
        if let Some(scene) = hotspot {
            draw_hotspot(&mut frame, scene);
        }
        Ok(())
    }
}

/// Runs `f` on what detection reads in a frame: the whole frame, or a P2 Pro frame's
/// lower-half counts (`thermal-bottom-half`); the error message when the frame cannot be
/// read so. Posts nothing: the pipelined helper reads frames too.
pub(super) fn read_input<R>(
    buf: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    format: PixelFormat,
    layout: InputLayout,
    f: impl FnOnce(&FrameRef) -> R,
) -> Result<R, String> {
    let cannot_map = |why: &dyn std::fmt::Display| format!("Cannot map the frame: {why}");
    let planes = plane_layout(buf, info).map_err(|e| cannot_map(&e))?;
    let map = buf
        .map_readable()
        .map_err(|_| cannot_map(&"the buffer cannot be read"))?;
    let frame = Frame::in_buffer(
        format,
        info.width() as usize,
        info.height() as usize,
        &map,
        &planes,
    )
    .map_err(|e| cannot_map(&e))?;
    match layout {
        InputLayout::Full => Ok(f(&frame)),
        InputLayout::ThermalBottomHalf => {
            let counts = lower_half_counts(&frame).map_err(|e| e.to_string())?;
            Ok(f(&counts))
        }
    }
}

impl VideoFilterImpl for ThermalDetect {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let format = pixel_format(in_info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "Unsupported caps {}", incaps))?;
        let mut guard = lock(&self.state);
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "Caps set before start"))?;
        gst::debug!(CAT, imp = self, "caps {incaps}");
        state.info = Some(in_info.clone());
        state.format = Some(format);
        Ok(())
    }
}
