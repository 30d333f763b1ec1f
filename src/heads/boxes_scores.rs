//! Already-decoded detections with NMS in the graph (TF Object Detection API / SSD, ONNX
//! `NonMaxSuppression` exports).

use super::shared::{clip_box, from_centre};
use super::{Candidate, DecodeParams};
use crate::manifest::BoxOrder;

/// How an already-decoded model writes its boxes and classes.
#[derive(Debug, Clone, Copy)]
pub struct BoxesFormat {
    pub order: BoxOrder,
    pub normalized: bool,
    /// Subtracted from a class value to get the label index.
    pub class_offset: i64,
    pub num_labels: usize,
}

/// Reads already-decoded detections (NMS done in the graph): `boxes` 4 values per row, one score and
/// one class value per row; only the first `count` rows when the model reports a count. Rows whose
/// class falls outside the labels are dropped.
pub fn decode_boxes_scores(
    boxes: &[f32],
    scores: &[f32],
    classes: &[f32],
    count: Option<usize>,
    f: &BoxesFormat,
    p: &DecodeParams<'_>,
) -> Vec<Candidate> {
    let rows = (boxes.len() / 4).min(scores.len()).min(classes.len());
    let rows = count.map_or(rows, |c| c.min(rows));
    let (sx, sy) = if f.normalized {
        (p.input_width as f32, p.input_height as f32)
    } else {
        (1.0, 1.0)
    };
    let mut out = Vec::new();
    for i in 0..rows {
        let score = scores[i];
        if !p.passes(score) || !classes[i].is_finite() {
            continue;
        }
        let class = classes[i].round() as i64 - f.class_offset;
        let Some(class_id) = usize::try_from(class).ok().filter(|&c| c < f.num_labels) else {
            continue;
        };
        if !p.wants(class_id) {
            continue;
        }
        let b = &boxes[i * 4..i * 4 + 4];
        let corners = match f.order {
            BoxOrder::Xyxy => [b[0], b[1], b[2], b[3]],
            BoxOrder::Yxyx => [b[1], b[0], b[3], b[2]],
            BoxOrder::Cxcywh => from_centre(b[0], b[1], b[2], b[3]),
        };
        let scaled = [
            corners[0] * sx,
            corners[1] * sy,
            corners[2] * sx,
            corners[3] * sy,
        ];
        if let Some(bbox) = clip_box(scaled, p) {
            out.push(Candidate {
                class_id,
                score,
                bbox,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heads::shared::params;

    #[test]
    fn boxes_scores_honours_order_coordinates_offset_and_count() {
        let f = BoxesFormat {
            order: BoxOrder::Yxyx,
            normalized: true,
            class_offset: 1,
            num_labels: 2,
        };
        let boxes = [
            0.25, 0.5, 0.75, 1.0, // y_min x_min y_max x_max
            0.0, 0.0, 0.5, 0.5, //
            0.0, 0.0, 1.0, 1.0, // class 3 - 1 = 2: no such label
            0.0, 0.0, 1.0, 1.0, // beyond the count
        ];
        let scores = [0.9, 0.8, 0.95, 0.99];
        let classes = [1.0, 2.0, 3.0, 1.0];
        let out = decode_boxes_scores(&boxes, &scores, &classes, Some(3), &f, &params(0.5));
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].class_id, out[0].bbox), (0, [16.0, 8.0, 32.0, 24.0]));
        assert_eq!((out[1].class_id, out[1].bbox), (1, [0.0, 0.0, 16.0, 16.0]));
        // Pixels, centre-size boxes, no count: every row counts.
        let f = BoxesFormat {
            order: BoxOrder::Cxcywh,
            normalized: false,
            class_offset: 0,
            num_labels: 2,
        };
        let out = decode_boxes_scores(
            &[8.0, 8.0, 4.0, 2.0],
            &[0.7],
            &[1.0],
            None,
            &f,
            &params(0.5),
        );
        assert_eq!((out[0].class_id, out[0].bbox), (1, [6.0, 7.0, 10.0, 9.0]));
    }
}
