//! Ultralytics YOLOv8 / YOLO11 heads.

use super::shared::{best_class, from_centre, RowCandidates};
use super::{Candidate, DecodeParams};

/// Decodes an Ultralytics YOLOv8/YOLO11 output of `anchors` columns, each `cx, cy, w, h` (input pixels)
/// and `num_classes` scores. `channels_first` is the export's `[4 + C, N]`; otherwise rows are anchors
/// (`[N, 4 + C]`). Per anchor the best wanted class is taken, as Ultralytics' NMS does by default.
pub fn decode_yolov8(
    data: &[f32],
    num_classes: usize,
    anchors: usize,
    channels_first: bool,
    top_k: usize,
    p: &DecodeParams<'_>,
) -> Vec<Candidate> {
    let channels = 4 + num_classes;
    let at = |a: usize, ch: usize| {
        if channels_first {
            data[ch * anchors + a]
        } else {
            data[a * channels + ch]
        }
    };
    let mut out = RowCandidates::default();
    for a in 0..anchors {
        let Some((class_id, score)) = best_class((4..channels).map(|ch| at(a, ch)), p) else {
            continue;
        };
        if p.passes(score) {
            let corners = from_centre(at(a, 0), at(a, 1), at(a, 2), at(a, 3));
            out.push(a, class_id, score, corners, p);
        }
    }
    out.top_k(top_k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heads::shared::params;

    #[test]
    fn yolov8_reads_both_layouts_and_takes_the_best_class() {
        // Two anchors, two classes: channels first is [cx, cy, w, h, c0, c1] x anchors.
        let anchor = [
            [16.0, 8.0, 8.0, 4.0, 0.3, 0.8],
            [4.0, 4.0, 100.0, 8.0, 0.9, 0.1],
        ];
        let rows: Vec<f32> = anchor.concat();
        let cols: Vec<f32> = (0..6).flat_map(|ch| anchor.map(|a| a[ch])).collect();
        for (data, channels_first) in [(cols, true), (rows, false)] {
            let out = decode_yolov8(&data, 2, 2, channels_first, 100, &params(0.5));
            assert_eq!(out.len(), 2);
            assert_eq!((out[0].class_id, out[0].score), (1, 0.8));
            assert_eq!(out[0].bbox, [12.0, 6.0, 20.0, 10.0]);
            // The wide box is clipped to the input.
            assert_eq!((out[1].class_id, out[1].bbox), (0, [0.0, 0.0, 32.0, 8.0]));
        }
        // A class mask picks the best wanted class, not the best overall.
        let mask = [true, false];
        let p = DecodeParams {
            class_mask: Some(&mask),
            ..params(0.2)
        };
        let out = decode_yolov8(&anchor.concat(), 2, 2, false, 100, &p);
        assert!(out.iter().all(|c| c.class_id == 0));
        assert_eq!(out.len(), 2);
    }
}
