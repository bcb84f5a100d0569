//! Detections as JSON lines: one object per frame, the element's `json-location`
//! output and what tools read back.
//!
//! With a radiometric camera a detection carries `"temperature_c"` and a frame
//! `"scene_c"`; without one both keys are left out, so lines of 8-bit streams (and
//! every line written before temperatures existed) keep their exact shape.

use serde::{Deserialize, Serialize};

use super::Detection;
use crate::imaging::radiometry::{BoxTemperature, SceneTemperature};

/// One frame's results, as written on one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    pub frame: u64,
    /// Presentation timestamp in nanoseconds, when the frame had one.
    pub pts: Option<u64>,
    pub model: String,
    pub detections: Vec<DetectionRecord>,
    /// The frame's temperatures, with a radiometric camera.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene_c: Option<SceneRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionRecord {
    pub label: String,
    pub class_id: usize,
    pub confidence: f32,
    /// `[x0, y0, x1, y1]` in input-frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// The box's temperature, with a radiometric camera.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<TemperatureRecord>,
}

/// A box's temperature in °C (0.01 °C steps): hottest inner pixel, median, 90th
/// percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TemperatureRecord {
    pub max: f32,
    pub median: f32,
    pub p90: f32,
}

/// A frame's temperatures in °C (0.01 °C steps) and where its hottest pixel is
/// (`[x, y]`, input-frame pixels).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SceneRecord {
    pub min: f32,
    pub max: f32,
    pub mean: f32,
    pub hotspot: [usize; 2],
}

/// A temperature to 0.01 °C, as every output gives it: more digits than a camera
/// resolves (a Lepton's NETD is 0.05 K) only make the lines longer.
pub fn hundredths(t: f32) -> f64 {
    (t as f64 * 100.0).round() / 100.0
}

fn centi(t: f32) -> f32 {
    hundredths(t) as f32
}

impl From<BoxTemperature> for TemperatureRecord {
    fn from(t: BoxTemperature) -> Self {
        TemperatureRecord {
            max: centi(t.max),
            median: centi(t.median),
            p90: centi(t.p90),
        }
    }
}

impl From<SceneTemperature> for SceneRecord {
    fn from(s: SceneTemperature) -> Self {
        SceneRecord {
            min: centi(s.min),
            max: centi(s.max),
            mean: centi(s.mean),
            hotspot: s.hottest,
        }
    }
}

impl FrameRecord {
    pub fn new(frame: u64, pts: Option<u64>, model: &str, detections: &[Detection]) -> Self {
        FrameRecord {
            frame,
            pts,
            model: model.to_string(),
            detections: detections
                .iter()
                .map(|d| DetectionRecord {
                    label: d.label.clone(),
                    class_id: d.class_id,
                    confidence: d.confidence,
                    bbox: d.bbox,
                    temperature_c: d.temperature.map(TemperatureRecord::from),
                })
                .collect(),
            scene_c: None,
        }
    }

    /// The record with the frame's temperatures (`None`: not radiometric).
    pub fn with_scene(mut self, scene: Option<SceneTemperature>) -> Self {
        self.scene_c = scene.map(SceneRecord::from);
        self
    }

    /// The JSON line, without the newline.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(temperature: Option<BoxTemperature>) -> Detection {
        Detection {
            class_id: 0,
            label: "person".into(),
            confidence: 0.91,
            bbox: [1.0, 2.0, 30.5, 40.0],
            temperature,
        }
    }

    #[test]
    fn json_line_has_the_documented_shape() {
        let line = FrameRecord::new(7, Some(233_333_333), "m.onnx", &[person(None)])
            .with_scene(None)
            .to_json_line();
        assert_eq!(
            line,
            r#"{"frame":7,"pts":233333333,"model":"m.onnx","detections":[{"label":"person","class_id":0,"confidence":0.91,"box":[1.0,2.0,30.5,40.0]}]}"#
        );
        let back: FrameRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back.detections[0].bbox, [1.0, 2.0, 30.5, 40.0]);
        assert_eq!(
            (back.detections[0].temperature_c, back.scene_c),
            (None, None)
        );
    }

    #[test]
    fn temperatures_are_written_in_hundredths_of_a_degree_and_read_back() {
        let t = BoxTemperature {
            max: 35.8734,
            median: 24.1,
            p90: -3.004_999,
        };
        let scene = SceneTemperature {
            min: -12.345,
            max: 36.2,
            mean: 18.499_99,
            hottest: [120, 64],
        };
        let record =
            FrameRecord::new(7, None, "m.onnx", &[person(Some(t))]).with_scene(Some(scene));
        let line = record.to_json_line();
        assert_eq!(
            line,
            r#"{"frame":7,"pts":null,"model":"m.onnx","detections":[{"label":"person","class_id":0,"confidence":0.91,"box":[1.0,2.0,30.5,40.0],"temperature_c":{"max":35.87,"median":24.1,"p90":-3.0}}],"scene_c":{"min":-12.35,"max":36.2,"mean":18.5,"hotspot":[120,64]}}"#
        );
        let back: FrameRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, record);
    }
}
