//! Where detections go besides the drawn boxes: a region-of-interest meta per box, an
//! element message per frame, a JSON line per frame, and with `annotations` a score of
//! the whole stream posted at EOS (pycocotools' full summary, per class, latency).
//! Classes score as the annotations' categories by `CategoryMap`, the rule `zsq eval`
//! follows: by name, or for a model without names by order with a warning that states
//! the mapping; a model whose classes cannot be mapped is an element error when it
//! starts to run (at start, or at the first frame for an announced model), because a
//! score is what `annotations` asks for and it would be a silent 0.
//! With radiometry, detections carry their temperatures and messages and JSON lines
//! the frame's, in °C to 0.01 (a camera resolves about 0.05 K).

use gst::prelude::*;
use gst::structure::Builder;
use gst::subclass::prelude::*;
use thermalzsq::detect::report::{FrameRecord, hundredths};
use thermalzsq::detect::{Detection, Detector};
use thermalzsq::eval::{CategoryMap, SUMMARY, StreamEval};
use thermalzsq::imaging::radiometry::SceneTemperature;

use super::imp::{CAT, ThermalDetect};
use crate::jsonlines::JsonLines;
use crate::sync::lock;

/// One frame's results: the detections (of the last frame detection ran on) and, with
/// radiometry and a frame with counts, the scene's temperatures.
pub(super) struct FrameResult<'a> {
    pub(super) detections: &'a [Detection],
    pub(super) scene: Option<SceneTemperature>,
}

/// A `detection` structure's fields for the box's temperatures, when it has them:
/// `temperature-max`, `temperature-median`, `temperature-p90` (°C).
fn with_temperature(b: Builder, d: &Detection) -> Builder {
    let t = d.temperature;
    b.field_if_some("temperature-max", t.map(|t| hundredths(t.max)))
        .field_if_some("temperature-median", t.map(|t| hundredths(t.median)))
        .field_if_some("temperature-p90", t.map(|t| hundredths(t.p90)))
}

/// Attaches a `GstVideoRegionOfInterestMeta` with a `detection` structure per box.
pub(super) fn attach_roi_metas(buf: &mut gst::BufferRef, detections: &[Detection]) {
    for d in detections {
        let [x0, y0, x1, y1] = d.bbox.map(|v| v.round() as u32);
        let mut meta =
            gst_video::VideoRegionOfInterestMeta::add(buf, &d.label, (x0, y0, x1 - x0, y1 - y0));
        let params = gst::Structure::builder("detection")
            .field("label", d.label.as_str())
            .field("class-id", d.class_id as i32)
            .field("confidence", d.confidence as f64);
        meta.add_param(with_temperature(params, d).build());
    }
}

impl ThermalDetect {
    /// Posts the `thermaldetect` element message with a frame's detections and, with
    /// radiometry, its scene temperatures (`scene-temperature-min`, `-max`, `-mean` in
    /// °C, the hottest pixel at `hotspot-x`, `hotspot-y`).
    pub(super) fn post_detections(
        &self,
        index: u64,
        pts: Option<gst::ClockTime>,
        result: &FrameResult,
    ) {
        let list = gst::List::new(result.detections.iter().map(|d| {
            let s = gst::Structure::builder("detection")
                .field("label", d.label.as_str())
                .field("class-id", d.class_id as i32)
                .field("confidence", d.confidence as f64)
                .field("x", d.bbox[0] as f64)
                .field("y", d.bbox[1] as f64)
                .field("width", d.width() as f64)
                .field("height", d.height() as f64);
            with_temperature(s, d).build()
        }));
        let scene = result.scene;
        let s = gst::Structure::builder("thermaldetect")
            .field("frame", index)
            .field("pts", pts.map_or(u64::MAX, |t| t.nseconds()))
            .field("detections", list)
            .field_if_some("scene-temperature-min", scene.map(|s| hundredths(s.min)))
            .field_if_some("scene-temperature-max", scene.map(|s| hundredths(s.max)))
            .field_if_some("scene-temperature-mean", scene.map(|s| hundredths(s.mean)))
            .field_if_some("hotspot-x", scene.map(|s| s.hottest[0] as u32))
            .field_if_some("hotspot-y", scene.map(|s| s.hottest[1] as u32))
            .build();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    /// With `annotations`: maps the classes of `detector`, about to run, to the
    /// annotations' categories, and when that map is a guess by order (the model has no
    /// names) says so in a warning, once per new map. An error when they cannot be
    /// mapped.
    pub(super) fn score_model(
        &self,
        scoring: &mut Option<StreamEval>,
        detector: &Detector,
    ) -> Result<(), String> {
        let Some(eval) = scoring.as_mut() else {
            return Ok(());
        };
        let map = CategoryMap::for_detector(detector, eval.ground_truth())
            .map_err(|e| format!("Cannot score against the annotations: {e}"))?;
        if eval.categories() != Some(&map)
            && let Some(warning) = map.warning()
        {
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{}", warning));
        }
        eval.set_categories(map);
        Ok(())
    }

    /// With `annotations`: adds a frame's detections to the score; a frame that cannot
    /// be scored warns and ends the scoring, not the stream.
    pub(super) fn score_frame(
        &self,
        scoring: &mut Option<StreamEval>,
        index: u64,
        detections: &[Detection],
    ) {
        if let Some(eval) = scoring.as_mut()
            && let Err(e) = eval.add_frame(index, detections)
        {
            gst::element_imp_warning!(self, gst::StreamError::Failed, ("Not scored: {}", e));
            *scoring = None;
        }
    }

    /// With `json-location`: writes a frame's JSON line (to disk in batches).
    pub(super) fn write_json_line(
        &self,
        json: &mut Option<JsonLines>,
        index: u64,
        pts: Option<gst::ClockTime>,
        model: &str,
        result: &FrameResult,
    ) -> Result<(), gst::FlowError> {
        let Some(json) = json.as_mut() else {
            return Ok(());
        };
        let line = FrameRecord::new(index, pts.map(|t| t.nseconds()), model, result.detections)
            .with_scene(result.scene)
            .to_json_line();
        json.write_line(&line).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ("Cannot write detections: {}", e)
            );
            gst::FlowError::Error
        })
    }

    /// At EOS: every JSON line to disk, and with `annotations` the score of the frames
    /// seen (`thermaldetect-eval`). Without the state lock: scoring a long stream takes
    /// a while.
    pub(super) fn end_of_stream(&self) {
        let conf = lock(&self.settings).conf_threshold;
        let ended = self.with_work(|work| {
            let written = work.json.as_mut().map_or(Ok(()), |json| json.flush());
            let seconds = work.first_frame.map_or(0.0, |t| t.elapsed().as_secs_f64());
            (written, work.scoring.take().map(|s| (s.finish(), seconds)))
        });
        let Some((written, scored)) = ended else {
            return;
        };
        if let Err(e) = written {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ("Cannot write detections: {}", e)
            );
        }
        let (report, seconds) = match scored {
            None => return,
            Some((Ok(report), seconds)) => (report, seconds),
            Some((Err(e), _)) => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    ("Cannot score the stream: {}", e)
                );
                return;
            }
        };
        self.post_score(&report, seconds, conf);
    }

    fn post_score(&self, report: &thermalzsq::eval::StreamReport, seconds: f64, conf: f32) {
        let classes = gst::List::new(report.result.per_class.iter().map(|c| {
            gst::Structure::builder("class")
                .field("name", &c.name)
                .field("ap", c.ap.unwrap_or(-1.0))
                .field("ap50", c.ap50.unwrap_or(-1.0))
                .build()
        }));
        // pycocotools' twelve summary numbers: `map`, `map50`, `map75`, `map-small`, ...,
        // `ar-large` (the `zsq eval --json` keys with `-` for `_`), -1 where undefined.
        let summary = SUMMARY.iter().zip(report.result.summary()).fold(
            gst::Structure::builder("thermaldetect-eval"),
            |b, (line, v)| b.field(line.key.replace('_', "-"), v.unwrap_or(-1.0)),
        );
        let s = summary
            .field("frames", report.frames as u64)
            .field("per-class", classes)
            .field("latency-p50", report.latency_p50_ms)
            .field("latency-p95", report.latency_p95_ms)
            .field(
                "fps",
                if seconds > 0.0 {
                    report.frames as f64 / seconds
                } else {
                    0.0
                },
            )
            .field("conf-threshold", conf as f64)
            .build();
        gst::info!(CAT, imp = self, "score: {s}");
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }
}
