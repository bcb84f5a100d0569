//! COCO dataset and results files: the one definition of the format in the engine, used
//! by `eval` to read ground truth and by `synth` to write it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::EvalError;

/// A COCO detection dataset (`images`, `annotations`, `categories`); other keys of a COCO
/// file (`info`, `licenses`, segmentations) are accepted and ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoGt {
    pub images: Vec<ImageInfo>,
    pub annotations: Vec<GtAnnotation>,
    pub categories: Vec<Category>,
}

/// One image of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub id: i64,
    #[serde(default)]
    pub file_name: String,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

/// One ground-truth object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GtAnnotation {
    pub id: i64,
    pub image_id: i64,
    pub category_id: i64,
    /// `[x, y, width, height]` in pixels, origin at the top-left corner of the image.
    pub bbox: [f64; 4],
    /// Area used for COCO's area ranges; pycocotools reads this field, not the box, so
    /// it is kept as written. When a file lacks it the box area stands in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<f64>,
    /// 1 marks an ignore region (a crowd); detections inside it are neither right nor wrong.
    #[serde(default)]
    pub iscrowd: u8,
    /// Not COCO (pycocotools ignores it): the object's true surface temperature, which
    /// `zsq synth` knows, to check the temperatures a radiometric detector reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<GtTemperature>,
}

/// An object's true temperature in °C: its hottest visible pixel and their median.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GtTemperature {
    pub max: f32,
    pub median: f32,
}

impl GtAnnotation {
    /// The area COCO's area ranges are tested against.
    pub fn area(&self) -> f64 {
        self.area.unwrap_or(self.bbox[2] * self.bbox[3])
    }
}

/// A category (class) of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: i64,
    pub name: String,
}

/// One detection in COCO results format.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub image_id: i64,
    pub category_id: i64,
    /// `[x, y, width, height]` in pixels of the original image.
    pub bbox: [f64; 4],
    pub score: f64,
}

impl Detection {
    /// A detector's box (corners in frame pixels) as a COCO result on `image_id`.
    pub fn from_box(image_id: i64, category_id: i64, d: &crate::detect::Detection) -> Self {
        let [x0, y0, x1, y1] = d.bbox.map(f64::from);
        Detection {
            image_id,
            category_id,
            bbox: [x0, y0, x1 - x0, y1 - y0],
            score: d.confidence as f64,
        }
    }
}

impl CocoGt {
    /// Parses a COCO dataset from JSON text.
    pub fn from_json(text: &str) -> Result<Self, EvalError> {
        serde_json::from_str(text).map_err(|e| EvalError(format!("not a COCO dataset: {e}")))
    }

    /// Reads a COCO dataset file.
    pub fn from_file(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EvalError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| EvalError(format!("{}: {}", path.display(), e.0)))
    }

    /// Serialises the dataset as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a CocoGt always serialises")
    }

    /// Categories sorted by id (the order pycocotools evaluates and we report in), one
    /// per id.
    pub fn sorted_categories(&self) -> Vec<Category> {
        let mut cats = self.categories.clone();
        cats.sort_by_key(|c| c.id);
        cats.dedup_by_key(|c| c.id);
        cats
    }

    /// The image with this file name, for evaluating detections of images read from disk.
    pub fn image_by_file_name(&self, file_name: &str) -> Option<&ImageInfo> {
        self.images.iter().find(|i| i.file_name == file_name)
    }
}

/// Parses detections in COCO results format (a JSON array).
pub fn parse_detections(text: &str) -> Result<Vec<Detection>, EvalError> {
    serde_json::from_str(text).map_err(|e| {
        EvalError(format!(
            "not a COCO results array [{{image_id, category_id, bbox, score}}]: {e}"
        ))
    })
}

/// Reads a COCO results file.
pub fn load_detections(path: &Path) -> Result<Vec<Detection>, EvalError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EvalError(format!("cannot read {}: {e}", path.display())))?;
    parse_detections(&text).map_err(|e| EvalError(format!("{}: {}", path.display(), e.0)))
}
