//! Box overlap, computed with the operations of pycocotools' `bbIou` (C, double) so that
//! values sitting exactly on an IoU threshold compare the same way.

/// IoU of two `[x, y, w, h]` boxes. With `crowd` the union is the detection's own area
/// (COCO's rule for ignore regions). Boxes that do not overlap by a positive width and
/// height have IoU 0, which also covers zero-size and negative-size boxes.
pub fn box_iou(det: &[f64; 4], gt: &[f64; 4], crowd: bool) -> f64 {
    let w = (det[2] + det[0]).min(gt[2] + gt[0]) - det[0].max(gt[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (det[3] + det[1]).min(gt[3] + gt[1]) - det[1].max(gt[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let det_area = det[2] * det[3];
    let union = if crowd {
        det_area
    } else {
        det_area + gt[2] * gt[3] - inter
    };
    inter / union
}

#[cfg(test)]
mod tests {
    use super::box_iou;

    #[test]
    fn identical_boxes_have_iou_one() {
        let b = [10.0, 20.0, 30.0, 40.0];
        assert_eq!(box_iou(&b, &b, false), 1.0);
    }

    #[test]
    fn half_overlap() {
        // 10x10 boxes shifted by 5 px: intersection 50, union 150.
        let iou = box_iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 10.0, 10.0], false);
        assert!((iou - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn touching_and_disjoint_boxes_have_zero_iou() {
        assert_eq!(
            box_iou(&[0.0, 0.0, 10.0, 10.0], &[10.0, 0.0, 5.0, 5.0], false),
            0.0
        );
        assert_eq!(
            box_iou(&[0.0, 0.0, 10.0, 10.0], &[50.0, 50.0, 5.0, 5.0], false),
            0.0
        );
    }

    #[test]
    fn zero_size_boxes_have_zero_iou() {
        assert_eq!(
            box_iou(&[5.0, 5.0, 0.0, 0.0], &[0.0, 0.0, 10.0, 10.0], false),
            0.0
        );
        assert_eq!(
            box_iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 5.0, 0.0, 3.0], false),
            0.0
        );
        assert_eq!(
            box_iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0], true),
            0.0
        );
    }

    #[test]
    fn crowd_iou_is_intersection_over_detection_area() {
        // A detection inside a big crowd region: IoU 1 although the crowd box is larger.
        assert_eq!(
            box_iou(&[10.0, 10.0, 5.0, 5.0], &[0.0, 0.0, 100.0, 100.0], true),
            1.0
        );
        let iou = box_iou(&[90.0, 0.0, 20.0, 10.0], &[0.0, 0.0, 100.0, 100.0], true);
        assert!((iou - 0.5).abs() < 1e-12);
    }
}
