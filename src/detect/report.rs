//! Detections as JSON lines: one object per frame, the element's `json-location`
//! output and what tools read back.

use serde::{Deserialize, Serialize};

use super::Detection;

/// One frame's results, as written on one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    pub frame: u64,
    /// Presentation timestamp in nanoseconds, when the frame had one.
    pub pts: Option<u64>,
    pub model: String,
    pub detections: Vec<DetectionRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionRecord {
    pub label: String,
    pub class_id: usize,
    pub confidence: f32,
    /// `[x0, y0, x1, y1]` in input-frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
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
                })
                .collect(),
        }
    }

    /// The JSON line, without the newline.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_the_documented_shape() {
        let d = Detection {
            class_id: 0,
            label: "person".into(),
            confidence: 0.91,
            bbox: [1.0, 2.0, 30.5, 40.0],
            temperature: None,
        };
        let line = FrameRecord::new(7, Some(233_333_333), "m.onnx", &[d]).to_json_line();
        assert_eq!(
            line,
            r#"{"frame":7,"pts":233333333,"model":"m.onnx","detections":[{"label":"person","class_id":0,"confidence":0.91,"box":[1.0,2.0,30.5,40.0]}]}"#
        );
        let back: FrameRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back.detections[0].bbox, [1.0, 2.0, 30.5, 40.0]);
    }
}
