//! YOLO output tensors → candidate boxes.
//!
//! Two layouts cover the detectors people export: YOLOv8/YOLO11 `(1, 4+nc, A)`
//! (channels first, class scores already sigmoid) and YOLOv5 `(1, A, 5+nc)` (anchors
//! first, with an objectness score). Boxes are centre/size in model-input pixels.

use super::DetectError;

/// How a detector lays out its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// YOLOv8/v11: `(1, 4+classes, anchors)`.
    Yolov8 { classes: usize, anchors: usize },
    /// YOLOv5: `(1, anchors, 5+classes)`.
    Yolov5 { classes: usize, anchors: usize },
}

impl OutputLayout {
    /// Recognises the layout from an output's dimensions. With `classes` known (from
    /// the labels) the class count must fit too, which settles square-ish shapes.
    pub fn detect(dims: &[i64], classes: Option<usize>) -> Option<Self> {
        let [1, a, b] = *dims else { return None };
        let (a, b) = (usize::try_from(a).ok()?, usize::try_from(b).ok()?);
        let v8 = (a > 4).then(|| OutputLayout::Yolov8 {
            classes: a - 4,
            anchors: b,
        });
        let v5 = (b > 5).then(|| OutputLayout::Yolov5 {
            classes: b - 5,
            anchors: a,
        });
        match classes {
            Some(nc) => [v8, v5].into_iter().flatten().find(|l| l.classes() == nc),
            // Without labels: there are far more anchors than classes.
            None if a < b => v8,
            None => v5,
        }
    }

    pub fn classes(&self) -> usize {
        match *self {
            OutputLayout::Yolov8 { classes, .. } | OutputLayout::Yolov5 { classes, .. } => classes,
        }
    }

    fn len(&self) -> usize {
        match *self {
            OutputLayout::Yolov8 { classes, anchors } => (4 + classes) * anchors,
            OutputLayout::Yolov5 { classes, anchors } => (5 + classes) * anchors,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OutputLayout::Yolov8 { .. } => "YOLOv8 (1, 4+nc, A)",
            OutputLayout::Yolov5 { .. } => "YOLOv5 (1, A, 5+nc)",
        }
    }
}

/// A box before NMS, corners in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub class_id: usize,
    pub score: f32,
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Candidate {
    fn from_xywh(class_id: usize, score: f32, cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Candidate {
            class_id,
            score,
            x0: cx - w / 2.0,
            y0: cy - h / 2.0,
            x1: cx + w / 2.0,
            y1: cy + h / 2.0,
        }
    }

    pub fn area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }

    pub fn iou(&self, o: &Candidate) -> f32 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        let inter = w * h;
        let union = self.area() + o.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// Appends to `out` every anchor whose best class scores at least `conf` (one box per
/// anchor, its best class).
pub fn decode(
    layout: OutputLayout,
    data: &[f32],
    conf: f32,
    out: &mut Vec<Candidate>,
) -> Result<(), DetectError> {
    if data.len() != layout.len() {
        return Err(DetectError::new(format!(
            "{} output holds {} values, expected {}",
            layout.name(),
            data.len(),
            layout.len()
        )));
    }
    let best = |scores: &mut dyn Iterator<Item = f32>| {
        scores.enumerate().fold(
            (0, f32::NEG_INFINITY),
            |b, (i, s)| if s > b.1 { (i, s) } else { b },
        )
    };
    match layout {
        OutputLayout::Yolov8 {
            classes,
            anchors: n,
        } => {
            let row = |r: usize| &data[r * n..(r + 1) * n];
            let (cx, cy, w, h) = (row(0), row(1), row(2), row(3));
            for a in 0..n {
                let (class_id, score) = best(&mut (0..classes).map(|c| data[(4 + c) * n + a]));
                if score >= conf {
                    out.push(Candidate::from_xywh(
                        class_id, score, cx[a], cy[a], w[a], h[a],
                    ));
                }
            }
        }
        OutputLayout::Yolov5 {
            classes,
            anchors: _,
        } => {
            for p in data.chunks_exact(5 + classes) {
                if p[4] < conf {
                    continue;
                }
                let (class_id, cls) = best(&mut p[5..].iter().copied());
                let score = p[4] * cls;
                if score >= conf {
                    out.push(Candidate::from_xywh(
                        class_id, score, p[0], p[1], p[2], p[3],
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Class-aware greedy non-maximum suppression: keeps the best-scoring boxes, drops a box
/// that overlaps a kept box of the same class by more than `iou`, returns at most
/// `max_det` boxes, best first.
pub fn nms(mut cands: Vec<Candidate>, iou: f32, max_det: usize) -> Vec<Candidate> {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in cands {
        if kept.len() >= max_det {
            break;
        }
        if kept
            .iter()
            .all(|k| k.class_id != c.class_id || k.iou(&c) <= iou)
        {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_recognised_from_shapes() {
        assert_eq!(
            OutputLayout::detect(&[1, 7, 2100], None),
            Some(OutputLayout::Yolov8 {
                classes: 3,
                anchors: 2100
            })
        );
        assert_eq!(
            OutputLayout::detect(&[1, 6300, 8], None),
            Some(OutputLayout::Yolov5 {
                classes: 3,
                anchors: 6300
            })
        );
        assert_eq!(
            OutputLayout::detect(&[1, 84, 8400], Some(80)),
            Some(OutputLayout::Yolov8 {
                classes: 80,
                anchors: 8400
            })
        );
        // square-ish: the label count decides
        assert_eq!(
            OutputLayout::detect(&[1, 10, 9], Some(4)),
            Some(OutputLayout::Yolov5 {
                classes: 4,
                anchors: 10
            })
        );
        assert_eq!(OutputLayout::detect(&[1, 10, 9], Some(7)), None);
        assert_eq!(OutputLayout::detect(&[1, 1000], None), None);
        assert_eq!(OutputLayout::detect(&[2, 7, 2100], None), None);
        assert_eq!(OutputLayout::detect(&[1, 3, 4], None), None);
    }

    #[test]
    fn yolov8_tensor_decodes_to_best_class_per_anchor() {
        // 3 anchors, 2 classes; rows: cx, cy, w, h, cls0, cls1
        #[rustfmt::skip]
        let data = [
            10.0, 50.0, 90.0,
            20.0, 60.0, 90.0,
            4.0, 10.0, 2.0,
            8.0, 20.0, 2.0,
            0.9, 0.1, 0.2,
            0.3, 0.6, 0.1,
        ];
        let layout = OutputLayout::Yolov8 {
            classes: 2,
            anchors: 3,
        };
        let mut out = Vec::new();
        decode(layout, &data, 0.25, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Candidate {
                    class_id: 0,
                    score: 0.9,
                    x0: 8.0,
                    y0: 16.0,
                    x1: 12.0,
                    y1: 24.0
                },
                Candidate {
                    class_id: 1,
                    score: 0.6,
                    x0: 45.0,
                    y0: 50.0,
                    x1: 55.0,
                    y1: 70.0
                },
            ]
        );
        assert!(decode(layout, &data[..17], 0.25, &mut out).is_err());
    }

    #[test]
    fn yolov5_tensor_multiplies_objectness() {
        // 2 anchors, 2 classes; per anchor: cx, cy, w, h, obj, cls0, cls1
        #[rustfmt::skip]
        let data = [
            10.0, 10.0, 4.0, 4.0, 0.8, 0.5, 0.9,
            30.0, 30.0, 4.0, 4.0, 0.2, 0.9, 0.9,
        ];
        let layout = OutputLayout::Yolov5 {
            classes: 2,
            anchors: 2,
        };
        let mut out = Vec::new();
        decode(layout, &data, 0.25, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 1);
        assert!((out[0].score - 0.72).abs() < 1e-6);
        assert_eq!((out[0].x0, out[0].y1), (8.0, 12.0));
    }

    #[test]
    fn nms_is_class_aware_and_capped() {
        let b = |class_id, score, x0: f32| Candidate {
            class_id,
            score,
            x0,
            y0: 0.0,
            x1: x0 + 10.0,
            y1: 10.0,
        };
        let cands = vec![
            b(0, 0.5, 1.0), // overlaps the 0.9 box of class 0 (IoU 0.82): dropped
            b(0, 0.9, 0.0),
            b(1, 0.8, 0.0),  // same place, other class: kept
            b(0, 0.7, 20.0), // elsewhere: kept
            b(0, 0.6, 8.0),  // IoU 2/18 with the 0.9 box: kept
        ];
        let kept = nms(cands.clone(), 0.45, 100);
        let scores: Vec<f32> = kept.iter().map(|c| c.score).collect();
        assert_eq!(scores, vec![0.9, 0.8, 0.7, 0.6]);
        assert_eq!(nms(cands, 0.45, 2).len(), 2);
        let a = b(0, 1.0, 0.0);
        assert!((a.iou(&b(0, 1.0, 5.0)) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&b(0, 1.0, 30.0)), 0.0);
    }
}
