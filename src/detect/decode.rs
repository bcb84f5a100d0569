//! YOLO output tensors → candidate boxes.
//!
//! Three layouts cover the detectors people export: YOLOv8/YOLO11 `(1, 4+nc, A)`
//! (channels first, class scores already sigmoid) and YOLOv5 `(1, A, 5+nc)` (anchors
//! first, with an objectness score), both centre/size in model-input pixels and in need
//! of NMS; and the end-to-end heads of YOLOv10 (and of ultralytics' `nms=True` exports)
//! `(1, K, 6)`: K final detections, corners in model-input pixels, score, class id.
//!
//! A YOLOv5 with one class also has 6 columns, so the end-to-end layout is told apart
//! by what the model says (ultralytics writes `end2end` into the metadata), then by its
//! class names (6 columns and any class count but one can only be end-to-end), then by
//! the row count (an end-to-end head has a few hundred rows; a YOLOv5 head has one per
//! anchor of the input size); a shape none of these settle is an error, not a guess.

use super::DetectError;

/// How a detector lays out its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// YOLOv8/v11: `(1, 4+classes, anchors)`.
    Yolov8 { classes: usize, anchors: usize },
    /// YOLOv5: `(1, anchors, 5+classes)`.
    Yolov5 { classes: usize, anchors: usize },
    /// End-to-end (YOLOv10): `(1, detections, 6)`, rows `x0, y0, x1, y1, score, class`,
    /// already one box per object (no NMS). `classes`: from the class names; 0 when the
    /// model names none (the head itself does not say).
    EndToEnd { classes: usize, detections: usize },
}

/// What, besides an output's shape, tells the layouts apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayoutHints {
    /// The number of class names (labels file or metadata).
    pub classes: Option<usize>,
    /// The model's `end2end` metadata.
    pub end2end: Option<bool>,
    /// The model's input `[height, width]`.
    pub input: Option<[usize; 2]>,
}

/// Strides of YOLO heads, P2 to P7: a YOLOv5 output has one row per anchor of the
/// levels from P2 or P3 to P5, P6 or P7 (1 or 3 anchors per cell).
const STRIDES: [usize; 6] = [4, 8, 16, 32, 64, 128];

/// The most rows an end-to-end head is taken to have without the metadata saying so
/// (ultralytics' `max_det` is 300 by default).
const MAX_END_TO_END_ROWS: usize = 1000;

/// Whether `rows` is the anchor count of a YOLO head on a `height` x `width` input:
/// 1 or 3 anchors per cell of the levels from P2 or P3 to P5, P6 or P7.
fn is_anchor_count(rows: usize, [height, width]: [usize; 2]) -> bool {
    let cells: Vec<usize> = STRIDES
        .iter()
        .map(|s| height.div_ceil(*s) * width.div_ceil(*s))
        .collect();
    (0..=1).any(|first| {
        (3..cells.len()).any(|last| {
            let sum: usize = cells[first..=last].iter().sum();
            sum == rows || 3 * sum == rows
        })
    })
}

impl OutputLayout {
    /// Recognises the layout from an output's dimensions and `hints` (see the module
    /// docs); `Ok(None)` when no layout fits, an error when the model says it is
    /// end-to-end and the output is not, or when nothing settles between YOLOv5 with
    /// one class and end-to-end.
    pub fn detect(dims: &[i64], hints: &LayoutHints) -> Result<Option<Self>, DetectError> {
        let [1, a, b] = *dims else { return Ok(None) };
        let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b)) else {
            return Ok(None);
        };
        let end_to_end = OutputLayout::EndToEnd {
            classes: hints.classes.unwrap_or(0),
            detections: a,
        };
        match hints.end2end {
            Some(true) if b == 6 => return Ok(Some(end_to_end)),
            Some(true) => {
                return Err(DetectError::new(format!(
                    "the model's metadata says end-to-end (end2end) but its output {dims:?} has {b} columns; an end-to-end head gives (1, K, 6): x0, y0, x1, y1, score, class"
                )));
            }
            Some(false) => return Ok(Self::detect_nms(a, b, hints.classes)),
            None => {}
        }
        if b != 6 || a <= b {
            return Ok(Self::detect_nms(a, b, hints.classes));
        }
        // (1, K, 6), K > 6: end-to-end, or YOLOv5 with one class.
        if hints.classes.is_some_and(|nc| nc != 1) {
            return Ok(Some(end_to_end));
        }
        let anchors = hints.input.is_some_and(|size| is_anchor_count(a, size));
        let few = a <= MAX_END_TO_END_ROWS;
        match (anchors, few) {
            (true, false) => Ok(Self::detect_nms(a, b, hints.classes)),
            (false, true) => Ok(Some(end_to_end)),
            _ => Err(DetectError::new(format!(
                "output {dims:?} is either YOLOv5 with one class or an end-to-end head (x0, y0, x1, y1, score, class) and nothing tells which: set the model's metadata `end2end` to True or False"
            ))),
        }
    }

    /// The layouts decoded with NMS: YOLOv8 `(1, a, b)` or YOLOv5. With `classes` known
    /// the class count must fit too, which settles square-ish shapes.
    fn detect_nms(a: usize, b: usize, classes: Option<usize>) -> Option<Self> {
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

    /// The number of classes (0: an end-to-end head of a model without class names).
    pub fn classes(&self) -> usize {
        match *self {
            OutputLayout::Yolov8 { classes, .. }
            | OutputLayout::Yolov5 { classes, .. }
            | OutputLayout::EndToEnd { classes, .. } => classes,
        }
    }

    fn len(&self) -> usize {
        match *self {
            OutputLayout::Yolov8 { classes, anchors } => (4 + classes) * anchors,
            OutputLayout::Yolov5 { classes, anchors } => (5 + classes) * anchors,
            OutputLayout::EndToEnd { detections, .. } => 6 * detections,
        }
    }

    /// Whether the boxes are final (end-to-end) rather than candidates for NMS.
    pub fn is_end_to_end(&self) -> bool {
        matches!(self, OutputLayout::EndToEnd { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            OutputLayout::Yolov8 { .. } => "YOLOv8 (1, 4+nc, A)",
            OutputLayout::Yolov5 { .. } => "YOLOv5 (1, A, 5+nc)",
            OutputLayout::EndToEnd { .. } => "end-to-end (1, K, 6)",
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

    /// `c` with the box `[x0, y0, x1, y1]`.
    pub fn with_box(c: &Candidate, [x0, y0, x1, y1]: [f32; 4]) -> Candidate {
        Candidate {
            x0,
            y0,
            x1,
            y1,
            ..*c
        }
    }

    pub fn bbox(&self) -> [f32; 4] {
        [self.x0, self.y0, self.x1, self.y1]
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
/// anchor, its best class); for an end-to-end head, every row scoring at least `conf`.
///
/// An end-to-end row above `conf` whose class id is not an integer in 0..nc (0..any
/// when the model names no classes) is an error, not a skipped row: such a value means
/// the tensor is not what the layout says (a YOLOv5 column of class probabilities read
/// as end-to-end, say) or the class names do not fit the model, and dropping those rows
/// would lose detections without a word. Rows below `conf` are not looked at (heads
/// pad with whatever they like).
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
        OutputLayout::EndToEnd { classes, .. } => {
            for (row, p) in data.chunks_exact(6).enumerate() {
                let score = p[4];
                if score.is_nan() || score < conf {
                    continue;
                }
                let id = p[5];
                let fits = id.fract() == 0.0 && id >= 0.0 && (classes == 0 || id < classes as f32);
                if !fits {
                    let range = match classes {
                        0 => "a class id (an integer, 0 or more)".to_string(),
                        n => format!("a class id in 0..{n}"),
                    };
                    return Err(DetectError::new(format!(
                        "{} output row {row} (score {score}) has class {id}, expected {range} (a YOLOv5 with one class reads so: set its metadata `end2end` to False)",
                        layout.name()
                    )));
                }
                out.push(Candidate {
                    class_id: id as usize,
                    score,
                    x0: p[0],
                    y0: p[1],
                    x1: p[2],
                    y1: p[3],
                });
            }
        }
    }
    Ok(())
}

/// The candidates of `layout` that are kept: NMS for the layouts that need it; for an
/// end-to-end head (one box per object already) the best `max_det`, with no merging.
pub fn select(
    layout: OutputLayout,
    mut cands: Vec<Candidate>,
    iou: f32,
    max_det: usize,
) -> Vec<Candidate> {
    if !layout.is_end_to_end() {
        return nms(cands, iou, max_det);
    }
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    cands.truncate(max_det);
    cands
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

    /// The layout of `dims` with `classes` names and nothing else known.
    fn shape(dims: &[i64], classes: Option<usize>) -> Option<OutputLayout> {
        let hints = LayoutHints {
            classes,
            ..LayoutHints::default()
        };
        OutputLayout::detect(dims, &hints).unwrap()
    }

    #[test]
    fn layouts_are_recognised_from_shapes() {
        assert_eq!(
            shape(&[1, 7, 2100], None),
            Some(OutputLayout::Yolov8 {
                classes: 3,
                anchors: 2100
            })
        );
        assert_eq!(
            shape(&[1, 6300, 8], None),
            Some(OutputLayout::Yolov5 {
                classes: 3,
                anchors: 6300
            })
        );
        assert_eq!(
            shape(&[1, 84, 8400], Some(80)),
            Some(OutputLayout::Yolov8 {
                classes: 80,
                anchors: 8400
            })
        );
        // square-ish: the label count decides
        assert_eq!(
            shape(&[1, 10, 9], Some(4)),
            Some(OutputLayout::Yolov5 {
                classes: 4,
                anchors: 10
            })
        );
        assert_eq!(shape(&[1, 10, 9], Some(7)), None);
        assert_eq!(shape(&[1, 1000], None), None);
        assert_eq!(shape(&[2, 7, 2100], None), None);
        assert_eq!(shape(&[1, 3, 4], None), None);
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
    fn six_columns_are_end_to_end_when_the_metadata_names_or_rows_say_so() {
        let e2e = |classes, detections| {
            Some(OutputLayout::EndToEnd {
                classes,
                detections,
            })
        };
        let v5_one = |anchors| {
            Some(OutputLayout::Yolov5 {
                classes: 1,
                anchors,
            })
        };
        let hints = |classes, end2end, input| LayoutHints {
            classes,
            end2end,
            input,
        };
        let at = |dims: &[i64], h: LayoutHints| OutputLayout::detect(dims, &h).unwrap();
        let square = Some([320, 320]);
        // The metadata decides, whatever the shape.
        assert_eq!(
            at(&[1, 100, 6], hints(Some(1), Some(true), square)),
            e2e(1, 100)
        );
        assert_eq!(
            at(&[1, 300, 6], hints(Some(1), Some(false), square)),
            v5_one(300)
        );
        // Class names: 6 columns with 2 classes cannot be YOLOv5.
        assert_eq!(at(&[1, 100, 6], hints(Some(2), None, square)), e2e(2, 100));
        // The rows: 300 is no anchor count of 320x320 (a head's max_det);
        // 6300 = 3 x (40x40 + 20x20 + 10x10), a YOLOv5 head (P3 to P5).
        assert_eq!(at(&[1, 300, 6], hints(None, None, square)), e2e(0, 300));
        assert_eq!(
            at(&[1, 6300, 6], hints(Some(1), None, square)),
            v5_one(6300)
        );
        // Either (84 = 8x8 + 4x4 + 2x2 on 64x64, and few), or neither (5000 rows).
        for (rows, input) in [(84, [64, 64]), (5000, [320, 320])] {
            let dims = [1, rows, 6];
            let err = OutputLayout::detect(&dims, &hints(None, None, Some(input))).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("{dims:?}"))
                    && text.contains("end2end")
                    && !text.contains('\n'),
                "{text}"
            );
        }
        // The metadata says end-to-end, the columns do not.
        let err = OutputLayout::detect(&[1, 300, 7], &hints(None, Some(true), square)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("[1, 300, 7]") && text.contains("7 columns"),
            "{text}"
        );
        // Wider than 6 columns or channels first: not end-to-end.
        assert_eq!(
            at(&[1, 6, 8400], hints(None, None, Some([640, 640]))),
            Some(OutputLayout::Yolov8 {
                classes: 2,
                anchors: 8400
            })
        );
    }

    #[test]
    fn end_to_end_rows_are_final_boxes_above_the_threshold() {
        let layout = OutputLayout::EndToEnd {
            classes: 2,
            detections: 4,
        };
        #[rustfmt::skip]
        let data = [
            10.0, 20.0, 50.0, 60.0, 0.9, 1.0,
            12.0, 22.0, 52.0, 62.0, 0.8, 1.0, // overlaps the first (IoU 0.82): kept
            0.0, 0.0, 0.0, 0.0, 0.1, 0.0,     // below the threshold
            100.0, 100.0, 140.0, 120.0, 0.3, 0.0,
        ];
        let mut out = Vec::new();
        decode(layout, &data, 0.25, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0],
            Candidate {
                class_id: 1,
                score: 0.9,
                x0: 10.0,
                y0: 20.0,
                x1: 50.0,
                y1: 60.0
            }
        );
        assert_eq!((out[2].class_id, out[2].x1, out[2].y1), (0, 140.0, 120.0));
        // No NMS: both overlapping boxes stay; max_det still caps, best first.
        let kept = select(layout, out.clone(), 0.45, 100);
        assert_eq!(kept.len(), 3);
        let kept = select(layout, out, 0.45, 2);
        let scores: Vec<f32> = kept.iter().map(|c| c.score).collect();
        assert_eq!(scores, vec![0.9, 0.8]);
        assert!(decode(layout, &data[..18], 0.25, &mut Vec::new()).is_err());
    }

    #[test]
    fn an_end_to_end_class_id_that_is_no_class_is_an_error() {
        let layout = OutputLayout::EndToEnd {
            classes: 2,
            detections: 1,
        };
        for id in [2.0, 0.5, -1.0, f32::NAN] {
            let row = [0.0, 0.0, 8.0, 8.0, 0.9, id];
            let err = decode(layout, &row, 0.25, &mut Vec::new()).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("0..2") && text.contains("row 0"), "{text}");
        }
        // Below the threshold the row is padding, whatever its class.
        let row = [0.0, 0.0, 8.0, 8.0, 0.1, 7.5];
        assert!(decode(layout, &row, 0.25, &mut Vec::new()).is_ok());
        // Without class names any integer is a class.
        let unnamed = OutputLayout::EndToEnd {
            classes: 0,
            detections: 1,
        };
        let mut out = Vec::new();
        decode(unnamed, &[0.0, 0.0, 8.0, 8.0, 0.9, 7.0], 0.25, &mut out).unwrap();
        assert_eq!(out[0].class_id, 7);
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
