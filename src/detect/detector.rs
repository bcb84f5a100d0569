//! A YOLO detector on ONNX Runtime: model in, frames in, detections out.

use std::path::Path;
use std::sync::Arc;

use ort::value::TensorRef;

use super::decode::{Candidate, LayoutHints, OutputLayout, decode, nms, select};
use super::dfl::{DflRewrite, rewrite_dfl};
use super::labels::{ModelMetadata, label_of};
use super::resize::{HeadResize, set_input_size};
use super::silu::{SiluRewrite, rewrite_silu};
use super::temperature::{TemperatureGate, measure};
use super::{DetectError, Detection};
use crate::imaging::agc::Agc;
use crate::imaging::frame::FrameRef;
use crate::imaging::preprocess::{Letterbox, Polarity, PreSettings, Prepared, Preprocess};
use crate::imaging::radiometry::Radiometry;
use crate::onnx::{InputSize, Model};
use crate::runtime::{
    ModelInfo, Provider, ProviderOptions, SharedSession, load_session_with_config, shared_session,
};

/// Everything about detection that is not the model itself.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    pub conf_threshold: f32,
    pub iou_threshold: f32,
    pub max_detections: usize,
    pub agc: Agc,
    pub polarity: Polarity,
    /// Class names; `None` takes the model's `names` metadata, else "class N".
    pub labels: Option<Vec<String>>,
    pub provider: ProviderOptions,
    /// How the camera's 16-bit counts map to kelvin; `None`: not radiometric (no
    /// temperatures).
    pub radiometry: Option<Radiometry>,
    /// Drops detections whose temperature is implausible for their class (needs
    /// `radiometry`).
    pub gate: TemperatureGate,
    /// The size to run the model at: a symbolic input height and width is fixed to it
    /// ([`Model::fix_input_size`]); a YOLOv8-family head exported at another fixed size
    /// is rewritten for it ([`super::resize::resize_head`]: e.g. a 320×320 detector at
    /// a 640×512 camera's own size, where small objects stay big enough to find).
    /// `None`: the model's own.
    pub input_size: Option<InputSize>,
    /// More sizes to run the model at on every frame, each like `input_size`; the boxes
    /// of every size are merged by one class-aware NMS in frame pixels. A detector
    /// trained at 320×320 run at a 640×512 camera's size finds the small objects but
    /// loses the large ones it never saw that big; adding 320×320 brings them back
    /// (README, "Input size"). Empty: one size.
    pub extra_input_sizes: Vec<InputSize>,
    /// Run on the process's shared session of this model and these provider options
    /// ([`crate::runtime::shared_session`]): detectors of several streams then hold the
    /// model once and take turns on one thread pool. `false`: a session of its own,
    /// whose runs never wait for another detector's.
    pub share_session: bool,
    /// Rewrites the model's DFL box decoding to reduce over the bins in place
    /// ([`rewrite_dfl`]) before the session is made: the same boxes to ~5e-6 relative
    /// and the same scores, without the transposed Softmax (about a tenth of a 320×320
    /// detector's run). `false`: the model runs exactly as exported.
    pub rewrite_dfl: bool,
    /// Runs an int8 model's SiLUs that feed convolutions as one pass each, with
    /// thermalzsq's CPU operator ([`rewrite_silu`]), when the session certainly runs on
    /// the CPU (provider `cpu`, or `auto` with no GPU provider in this ONNX Runtime):
    /// the same outputs, 5–11 % less time on the bundled detector. TensorRT and CUDA
    /// sessions, and fp32 models, always get the model as it is. `false`: never.
    pub rewrite_silu: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            conf_threshold: 0.25,
            iou_threshold: 0.45,
            max_detections: 100,
            agc: Agc::default(),
            polarity: Polarity::default(),
            labels: None,
            provider: ProviderOptions::default(),
            radiometry: None,
            gate: TemperatureGate::default(),
            input_size: None,
            extra_input_sizes: Vec::new(),
            share_session: false,
            rewrite_dfl: true,
            rewrite_silu: true,
        }
    }
}

/// A loaded detector, ready for frames.
pub struct Detector {
    session: Arc<SharedSession>,
    input_name: String,
    input_shape: [usize; 4],
    output_index: usize,
    layout: OutputLayout,
    labels: Vec<String>,
    metadata: ModelMetadata,
    pre: Preprocess,
    input: Vec<f32>,
    candidates: Vec<Candidate>,
    config: DetectorConfig,
    rewrites: Rewrites,
    /// The same model at `extra_input_sizes`, one detector each.
    extra: Vec<Detector>,
}

/// What the load-time rewrites did to the model.
#[derive(Default)]
struct Rewrites {
    resize: HeadResize,
    dfl: DflRewrite,
    silu: SiluRewrite,
}

impl Detector {
    /// Loads an ONNX detector (fp32 or int8 QDQ) from a file.
    pub fn load(model: &Path, config: DetectorConfig) -> Result<Self, DetectError> {
        Self::at_every_size(config, |config, spinning| {
            Self::load_one(model, config, spinning)
        })
    }

    /// Loads an ONNX detector held in memory.
    pub fn from_bytes(model: &[u8], config: DetectorConfig) -> Result<Self, DetectError> {
        Self::at_every_size(config, |config, spinning| {
            Self::from_bytes_one(model, config, spinning)
        })
    }

    /// The detector `one` makes at `config.input_size`, holding those it makes at each
    /// of `config.extra_input_sizes`; thread spinning only for a single size (see
    /// [`open`]).
    fn at_every_size(
        config: DetectorConfig,
        one: impl Fn(DetectorConfig, bool) -> Result<Self, DetectError>,
    ) -> Result<Self, DetectError> {
        let sizes = config.extra_input_sizes.clone();
        let mut detector = one(config, sizes.is_empty())?;
        detector.extra = sizes
            .iter()
            .map(|&size| one(at_size(&detector.config, size), false))
            .collect::<Result<_, _>>()?;
        Ok(detector)
    }

    /// [`Detector::load`] at `config.input_size` only; `spinning`: see [`open`].
    fn load_one(model: &Path, config: DetectorConfig, spinning: bool) -> Result<Self, DetectError> {
        let in_file = |e: DetectError| DetectError::new(format!("model {}: {e}", model.display()));
        let (bytes, rewrites) = if edits(&config) {
            let mut onnx = Model::load(model).map_err(|e| DetectError::new(e.to_string()))?;
            onnx.inline_external_data()
                .map_err(|e| DetectError::new(e.to_string()))?;
            prepare(onnx, &config).map_err(in_file)?
        } else {
            let bytes = std::fs::read(model).map_err(|e| {
                DetectError::new(format!("cannot read model {}: {e}", model.display()))
            })?;
            (bytes, Rewrites::default())
        };
        let session = open(&bytes, &config, spinning).map_err(in_file)?;
        Self::new(session, config, rewrites).map_err(in_file)
    }

    /// [`Detector::from_bytes`] at `config.input_size` only; `spinning`: see [`open`].
    fn from_bytes_one(
        model: &[u8],
        config: DetectorConfig,
        spinning: bool,
    ) -> Result<Self, DetectError> {
        if !edits(&config) {
            let session = open(model, &config, spinning)?;
            return Self::new(session, config, Rewrites::default());
        }
        let onnx = Model::from_bytes(model).map_err(|e| DetectError::new(e.to_string()))?;
        let (bytes, rewrites) = prepare(onnx, &config)?;
        Self::new(open(&bytes, &config, spinning)?, config, rewrites)
    }

    fn new(
        session: Arc<SharedSession>,
        config: DetectorConfig,
        rewrites: Rewrites,
    ) -> Result<Self, DetectError> {
        let info = session.info().clone();
        let (input_name, input_shape) = image_input(&info)?;
        let [_, channels, height, width] = input_shape;
        let colour = info
            .metadata
            .get("modality")
            .is_some_and(|m| m.eq_ignore_ascii_case("rgb"));
        let mut pre = Preprocess::new(width, height, channels, colour);
        pre.agc = config.agc;
        pre.polarity = config.polarity;
        let mut entries = info.metadata.clone();
        if config.labels.is_some() {
            // The user's names replace the model's, readable or not.
            entries.remove("names");
        }
        let metadata = ModelMetadata::read(&entries)?;
        let labels = config.labels.clone().or_else(|| metadata.names.clone());
        let mut detector = Detector {
            session,
            input_name,
            input_shape,
            output_index: 0,
            layout: OutputLayout::Yolov8 {
                classes: 0,
                anchors: 0,
            },
            labels: Vec::new(),
            metadata,
            input: vec![0.0; pre.tensor_len()],
            pre,
            candidates: Vec::new(),
            config,
            rewrites,
            extra: Vec::new(),
        };
        // Shapes by execution: symbolic output dims resolve, and the first real frame
        // does not pay for ONNX Runtime's lazy initialisation.
        let shapes = detector.output_shapes()?;
        let hints = LayoutHints {
            classes: labels.as_ref().map(Vec::len),
            end2end: detector.metadata.end2end,
            input: Some([height, width]),
        };
        let (index, layout) = find_layout(&info, &shapes, &hints)?;
        let resized = detector.rewrites.resize.anchors.1;
        if let (Some(from), OutputLayout::Yolov8 { anchors, .. }) =
            (detector.rewrites.resize.from, layout)
            && anchors != resized
        {
            return Err(DetectError::new(format!(
                "the model exported at {from} gives {anchors} anchors at {height}x{width}, not the {resized} its head's grid has: its size is baked in where it cannot be changed; re-export it at {width}x{height}"
            )));
        }
        detector.output_index = index;
        detector.layout = layout;
        detector.labels = labels.unwrap_or_default();
        Ok(detector)
    }

    fn output_shapes(&mut self) -> Result<Vec<Vec<i64>>, DetectError> {
        let input = TensorRef::from_array_view((self.input_shape, self.input.as_slice()))?;
        let mut session = self.session.lock();
        let outputs = session.run(ort::inputs![self.input_name.as_str() => input])?;
        Ok(outputs
            .values()
            .map(|v| v.shape().iter().copied().collect())
            .collect())
    }

    /// Detects objects in one frame; with `radiometry` and a 16-bit frame each gets its
    /// temperature, and the gate drops the implausible ones.
    pub fn detect(&mut self, frame: &FrameRef) -> Result<Vec<Detection>, DetectError> {
        if !self.extra.is_empty() {
            return self.detect_sizes(frame, None);
        }
        let mut input = std::mem::take(&mut self.input);
        let lb = self.pre.run(frame, &mut input);
        let result = self.detect_input(&input, &lb);
        self.input = input;
        Ok(self.with_temperatures(frame, result?))
    }

    /// With `extra_input_sizes`: every size's candidates in frame pixels, one NMS over
    /// all of them. `prepared`: this size's tensor, made ahead.
    fn detect_sizes(
        &mut self,
        frame: &FrameRef,
        prepared: Option<&Prepared>,
    ) -> Result<Vec<Detection>, DetectError> {
        let mut all = Vec::new();
        match prepared {
            Some(p) => self.frame_candidates(&p.input, &p.letterbox, &mut all)?,
            None => self.candidates_of(frame, &mut all)?,
        }
        for extra in &mut self.extra {
            extra.candidates_of(frame, &mut all)?;
        }
        let kept = nms(all, self.config.iou_threshold, self.config.max_detections);
        let detections = kept.iter().map(|c| self.detection(c, c.bbox())).collect();
        Ok(self.with_temperatures(frame, detections))
    }

    /// Pre-processes `frame` for this size and appends its candidates, in frame pixels,
    /// to `out`.
    fn candidates_of(
        &mut self,
        frame: &FrameRef,
        out: &mut Vec<Candidate>,
    ) -> Result<(), DetectError> {
        let mut input = std::mem::take(&mut self.input);
        let lb = self.pre.run(frame, &mut input);
        let result = self.frame_candidates(&input, &lb, out);
        self.input = input;
        result
    }

    /// Runs the model on `input` and appends its candidates, in frame pixels and
    /// clipped to the frame, to `out`.
    fn frame_candidates(
        &mut self,
        input: &[f32],
        letterbox: &Letterbox,
        out: &mut Vec<Candidate>,
    ) -> Result<(), DetectError> {
        self.run_and_decode(input)?;
        out.extend(self.candidates.drain(..).filter_map(|c| {
            let bbox = frame_box(&c, letterbox)?;
            Some(Candidate::with_box(&c, bbox))
        }));
        Ok(())
    }

    /// [`Detector::detect`] with the frame's input tensor made ahead of time (by
    /// [`Preprocess::prepare`] with [`Detector::pre_settings`], on another thread while
    /// this detector ran on the frame before): the same detections, without the
    /// pre-processing. A tensor made with other settings than the detector has now (the
    /// AGC, polarity or model changed in between) is not used: the frame is
    /// pre-processed again.
    pub fn detect_prepared(
        &mut self,
        frame: &FrameRef,
        prepared: &Prepared,
    ) -> Result<Vec<Detection>, DetectError> {
        if prepared.settings != self.pre.settings() {
            return self.detect(frame);
        }
        if !self.extra.is_empty() {
            return self.detect_sizes(frame, Some(prepared));
        }
        let detections = self.detect_input(&prepared.input, &prepared.letterbox)?;
        Ok(self.with_temperatures(frame, detections))
    }

    /// With `radiometry` and a 16-bit frame, each detection's temperature; the gate
    /// drops the implausible ones.
    fn with_temperatures(
        &self,
        frame: &FrameRef,
        mut detections: Vec<Detection>,
    ) -> Vec<Detection> {
        if let Some(radiometry) = self.config.radiometry {
            measure(frame, radiometry, &mut detections);
            self.config.gate.retain(&mut detections);
        }
        detections
    }

    /// Detects objects in an input tensor that is already pre-processed for this model
    /// (what [`Preprocess::run`] makes of a frame; `letterbox` maps boxes back to the
    /// frame). For callers that run many models on the same frames: pre-processing is
    /// then done once, not once per model. One tensor is one size: `extra_input_sizes`
    /// are not run here (they need the frame).
    pub fn detect_input(
        &mut self,
        input: &[f32],
        letterbox: &Letterbox,
    ) -> Result<Vec<Detection>, DetectError> {
        if input.len() != self.pre.tensor_len() {
            return Err(DetectError::new(format!(
                "input tensor of {} values; the model takes {:?} ({} values)",
                input.len(),
                self.input_shape,
                self.pre.tensor_len()
            )));
        }
        self.run_and_decode(input)?;
        let kept = select(
            self.layout,
            std::mem::take(&mut self.candidates),
            self.config.iou_threshold,
            self.config.max_detections,
        );
        Ok(kept
            .iter()
            .filter_map(|c| self.to_detection(c, letterbox))
            .collect())
    }

    /// Runs the session on `input` (checked by the caller) and decodes its output into
    /// `self.candidates`, in model-input pixels.
    fn run_and_decode(&mut self, input: &[f32]) -> Result<(), DetectError> {
        self.candidates.clear();
        let input = TensorRef::from_array_view((self.input_shape, input))?;
        // Held through decoding: the outputs borrow the session. Decoding is a small
        // part of a run, and pre-processing (the larger one) runs unlocked.
        let mut session = self.session.lock();
        let outputs = session.run(ort::inputs![self.input_name.as_str() => input])?;
        let (_, data) = outputs[self.output_index].try_extract_tensor::<f32>()?;
        decode(
            self.layout,
            data,
            self.config.conf_threshold,
            &mut self.candidates,
        )?;
        Ok(())
    }

    /// The detection of candidate `c` whose box in frame pixels is `bbox`.
    fn detection(&self, c: &Candidate, bbox: [f32; 4]) -> Detection {
        Detection {
            class_id: c.class_id,
            label: label_of(&self.labels, c.class_id),
            confidence: c.score,
            bbox,
            temperature: None,
        }
    }

    /// A candidate in frame pixels, clipped; `None` if nothing of it is inside the frame.
    fn to_detection(&self, c: &Candidate, lb: &Letterbox) -> Option<Detection> {
        frame_box(c, lb).map(|bbox| self.detection(c, bbox))
    }

    /// Changes the thresholds for the next frames.
    pub fn set_thresholds(&mut self, conf: f32, iou: f32, max_detections: usize) {
        self.config.conf_threshold = conf;
        self.config.iou_threshold = iou;
        self.config.max_detections = max_detections;
        for extra in &mut self.extra {
            extra.set_thresholds(conf, iou, max_detections);
        }
    }

    /// Changes the radiometry and the temperature gate for the next frames.
    pub fn set_radiometry(&mut self, radiometry: Option<Radiometry>, gate: TemperatureGate) {
        self.config.radiometry = radiometry;
        self.config.gate = gate;
    }

    /// Changes the AGC and polarity for the next frames.
    pub fn set_pre(&mut self, agc: Agc, polarity: Polarity) {
        self.config.agc = agc;
        self.config.polarity = polarity;
        self.pre.agc = agc;
        self.pre.polarity = polarity;
        for extra in &mut self.extra {
            extra.set_pre(agc, polarity);
        }
    }

    /// The provider the session really runs on.
    pub fn provider(&self) -> Provider {
        self.session.provider()
    }

    /// Why `auto` passed over better providers (empty if it did not).
    pub fn fallbacks(&self) -> &[String] {
        self.session.fallbacks()
    }

    /// The session this detector runs on (shared with other detectors, or its own: see
    /// [`DetectorConfig::share_session`]).
    pub fn session(&self) -> &Arc<SharedSession> {
        &self.session
    }

    /// Whether `other` runs on the same session as this detector.
    pub fn shares_session_with(&self, other: &Detector) -> bool {
        Arc::ptr_eq(&self.session, &other.session)
    }

    pub fn layout(&self) -> OutputLayout {
        self.layout
    }

    /// Class names (empty when neither the user nor the model named them).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// What the model's metadata says of it: names, export size, stride, task.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// A pre-processing with this detector's settings (input size, channels, colour,
    /// AGC, polarity), for [`Detector::detect_input`].
    pub fn preprocess(&self) -> Preprocess {
        Preprocess::with_settings(self.pre_settings())
    }

    /// This detector's pre-processing settings (input size, channels, colour, AGC,
    /// polarity): a tensor for [`Detector::detect_prepared`] is made with these.
    pub fn pre_settings(&self) -> PreSettings {
        self.pre.settings()
    }

    /// Input tensor shape `[1, channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 4] {
        self.input_shape
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// What [`DetectorConfig::input_size`] changed in a model exported at another fixed
    /// size (nothing otherwise).
    pub fn head_resize(&self) -> &HeadResize {
        &self.rewrites.resize
    }

    /// What [`DetectorConfig::rewrite_dfl`] did to the model (nothing when off).
    pub fn dfl_rewrite(&self) -> &DflRewrite {
        &self.rewrites.dfl
    }

    /// What [`DetectorConfig::rewrite_silu`] did to the model (nothing when off or
    /// not on the CPU).
    pub fn silu_rewrite(&self) -> &SiluRewrite {
        &self.rewrites.silu
    }
}

/// `config` for the detector of one of its `extra_input_sizes`.
fn at_size(config: &DetectorConfig, size: InputSize) -> DetectorConfig {
    DetectorConfig {
        input_size: Some(size),
        extra_input_sizes: Vec::new(),
        ..config.clone()
    }
}

/// Candidate `c` (model-input pixels) in frame pixels, clipped to the frame; `None` if
/// nothing of it is inside the frame.
fn frame_box(c: &Candidate, lb: &Letterbox) -> Option<[f32; 4]> {
    let (fw, fh) = (lb.frame_width as f32, lb.frame_height as f32);
    let (x0, y0) = lb.to_frame(c.x0, c.y0);
    let (x1, y1) = lb.to_frame(c.x1, c.y1);
    let bbox = [
        x0.clamp(0.0, fw),
        y0.clamp(0.0, fh),
        x1.clamp(0.0, fw),
        y1.clamp(0.0, fh),
    ];
    (bbox[2] > bbox[0] && bbox[3] > bbox[1]).then_some(bbox)
}

/// The session of `model` (bytes as they will run): the shared one of the process, or
/// one of its own, as `config.share_session` says.
///
/// `spinning` leaves ONNX Runtime's intra-op threads spinning between parallel sections
/// (its default), which a session alone on its cores runs faster with (int8, 2 threads:
/// 6.0 vs 7.1 ms a frame here). Sessions that take turns on the same cores, a model at
/// several sizes, get it off: the idle session's threads spin while the other runs (two
/// sizes, 2 threads: 41 ms a frame spinning, 27 ms not).
fn open(
    model: &[u8],
    config: &DetectorConfig,
    spinning: bool,
) -> Result<Arc<SharedSession>, DetectError> {
    let entries: &[(&str, &str)] = if spinning { &[] } else { &NO_SPINNING };
    Ok(if config.share_session {
        shared_session(model, &config.provider, entries)?
    } else {
        SharedSession::private(load_session_with_config(model, &config.provider, entries)?)
    })
}

/// The session config entry that stops idle intra-op threads from spinning.
const NO_SPINNING: [(&str, &str); 1] = [("session.intra_op.allow_spinning", "0")];

/// Whether the model is edited before its session is made (a size to fix, the DFL or
/// the SiLUs to rewrite), so it must be decoded rather than handed to ONNX Runtime as
/// it is.
fn edits(config: &DetectorConfig) -> bool {
    config.input_size.is_some() || config.rewrite_dfl || config.rewrite_silu
}

/// The bytes of `model` as it will run: its input height and width fixed to
/// `config.input_size`, its DFL rewritten if `config.rewrite_dfl`, its SiLUs if
/// `config.rewrite_silu` and the session runs on the CPU.
fn prepare(mut model: Model, config: &DetectorConfig) -> Result<(Vec<u8>, Rewrites), DetectError> {
    let mut rewrites = Rewrites::default();
    if let Some(size) = config.input_size {
        rewrites.resize = set_input_size(&mut model, size)?;
    }
    if config.rewrite_dfl {
        rewrites.dfl = rewrite_dfl(&mut model);
    }
    if config.rewrite_silu && config.provider.provider.certainly_cpu()? {
        rewrites.silu = rewrite_silu(&mut model);
    }
    Ok((model.to_bytes(), rewrites))
}

/// The image input: rank 4, float, 1 or 3 channels, fixed height and width.
fn image_input(info: &ModelInfo) -> Result<(String, [usize; 4]), DetectError> {
    let input = match info.inputs.as_slice() {
        [one] => one,
        [] => return Err(DetectError::new("the model has no input")),
        many => {
            return Err(DetectError::new(format!(
                "the model has {} inputs ({}); a detector takes one image",
                many.len(),
                many.iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let not_image = || {
        DetectError::new(format!(
            "input `{}` has shape {:?}; expected an image batch [1, 1|3, height, width] with fixed height and width",
            input.name, input.dims
        ))
    };
    let [n, c, h, w] = *input.dims.as_slice() else {
        return Err(not_image());
    };
    if !(n == 1 || n < 0) {
        return Err(not_image());
    }
    if !(c == 1 || c == 3) {
        return Err(DetectError::new(format!(
            "input `{}` has shape {:?}: not an image with {c} channels; a detector here takes 1 \
             (thermal grey) or 3 (grey replicated, or RGB with metadata modality=rgb): re-export the \
             model with one of those",
            input.name, input.dims
        )));
    }
    if h <= 0 || w <= 0 {
        return Err(DetectError::new(format!(
            "input `{}` has shape {:?}: its height and width are symbolic; give the size to run it \
             at (thermaldetect input-size=WxH, zsq quantize --size WxH), a multiple of the model's stride",
            input.name, input.dims
        )));
    }
    Ok((input.name.clone(), [1, c as usize, h as usize, w as usize]))
}

/// The first output in a detector layout; an error naming every output shape otherwise
/// (or the one error of an output whose layout [`OutputLayout::detect`] cannot settle).
fn find_layout(
    info: &ModelInfo,
    shapes: &[Vec<i64>],
    hints: &LayoutHints,
) -> Result<(usize, OutputLayout), DetectError> {
    for (i, s) in shapes.iter().enumerate() {
        if let Some(layout) = OutputLayout::detect(s, hints)? {
            return Ok((i, layout));
        }
    }
    let found: Vec<String> = info
        .outputs
        .iter()
        .zip(shapes)
        .map(|(o, s)| format!("`{}` {:?}", o.name, s))
        .collect();
    let unlabelled = LayoutHints {
        classes: None,
        ..*hints
    };
    let fits_without_labels = shapes
        .iter()
        .find_map(|s| OutputLayout::detect(s, &unlabelled).ok().flatten());
    Err(DetectError::new(
        match (hints.classes, fits_without_labels) {
            (Some(n), Some(l)) => format!(
                "{n} class names given but the model's output {} has {} classes",
                l.name(),
                l.classes()
            ),
            _ => format!(
                "no output in a known detector layout (YOLOv8 (1, 4+nc, A), YOLOv5 (1, A, 5+nc) or end-to-end (1, K, 6)); found {}",
                found.join(", ")
            ),
        },
    ))
}
