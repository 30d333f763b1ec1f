//! Ultralytics YOLOv8 / YOLO11 heads: per anchor a box `cx, cy, w, h` in input pixels and the class
//! scores; no objectness.

use serde::Deserialize;
use tract_onnx::prelude::TValue;

use super::shared::{
    best_class, check_top_k, default_top_k, first_output, from_centre, RowCandidates,
};
use super::{values, Candidate, Family, Head, ModelFacts, Params};
use crate::core::engine::OutputRef;
use crate::core::error::Result;

/// `family = "yolov8"`: one output `[1, 4 + C, N]` (or its transpose `[1, N, 4 + C]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Yolov8Spec {
    #[serde(default = "first_output")]
    output: OutputRef,
    /// Candidates kept, by score, before NMS.
    #[serde(default = "default_top_k")]
    top_k: usize,
}

impl Family for Yolov8Spec {
    fn check(&self) -> std::result::Result<(), String> {
        check_top_k(self.top_k)
    }

    fn resolve(&self, model: &ModelFacts<'_>) -> Result<Box<dyn Head>> {
        let (facts, classes) = (model.outputs, model.classes);
        let i = facts.index(&self.output)?;
        facts.require_f32(i)?;
        let channels = 4 + classes;
        let (anchors, channels_first) = match facts.fixed_shape(i)?.as_slice() {
            [1, c, n] if *c == channels => (*n, true),
            [1, n, c] if *c == channels => (*n, false),
            _ => {
                return Err(facts.mismatch(i, format!(
                    "YOLOv8 needs [1, {channels}, anchors] (or [1, anchors, {channels}]): 4 box values + {classes} classes, one per label"
                )))
            }
        };
        Ok(Box::new(Yolov8 {
            output: i,
            classes,
            anchors,
            channels_first,
            top_k: self.top_k,
        }))
    }
}

#[derive(Debug, Clone)]
struct Yolov8 {
    output: usize,
    classes: usize,
    anchors: usize,
    channels_first: bool,
    top_k: usize,
}

impl Head for Yolov8 {
    fn candidates(&self, outputs: &[TValue], p: &Params<'_>) -> Result<Vec<Candidate>> {
        let data = values(outputs, self.output)?;
        Ok(decode(
            &data,
            self.classes,
            self.anchors,
            self.channels_first,
            self.top_k,
            p,
        ))
    }
}

/// Decodes an Ultralytics YOLOv8/YOLO11 output of `anchors` columns, each `cx, cy, w, h` (input pixels)
/// and `num_classes` scores. `channels_first` is the export's `[4 + C, N]`; otherwise rows are anchors
/// (`[N, 4 + C]`). Per anchor the best wanted class is taken, as Ultralytics' NMS does by default.
fn decode(
    data: &[f32],
    num_classes: usize,
    anchors: usize,
    channels_first: bool,
    top_k: usize,
    p: &Params<'_>,
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
    use crate::core::heads::shared::params;

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
            let out = decode(&data, 2, 2, channels_first, 100, &params(0.5));
            assert_eq!(out.len(), 2);
            assert_eq!((out[0].class_id, out[0].score), (1, 0.8));
            assert_eq!(out[0].bbox, [12.0, 6.0, 20.0, 10.0]);
            // The wide box is clipped to the input.
            assert_eq!((out[1].class_id, out[1].bbox), (0, [0.0, 0.0, 32.0, 8.0]));
        }
        // A class mask picks the best wanted class, not the best overall.
        let mask = [true, false];
        let p = Params {
            class_mask: Some(&mask),
            ..params(0.2)
        };
        let out = decode(&anchor.concat(), 2, 2, false, 100, &p);
        assert!(out.iter().all(|c| c.class_id == 0));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn non_finite_model_values_never_become_detections() {
        // A NaN score after a real one: without the NaN filter the NaN would win the anchor (every
        // comparison with it is false) and the real class would be lost with it.
        let nan_second = [16.0, 16.0, 4.0, 4.0, 0.5, f32::NAN];
        let out = decode(&nan_second, 2, 1, false, 10, &params(0.1));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].class_id, out[0].score), (0, 0.5));
        // A box with a value that is not finite is dropped, whatever its score.
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let bad_box = [bad, 16.0, 4.0, 4.0, 0.9, 0.1];
            assert!(
                decode(&bad_box, 2, 1, false, 10, &params(0.1)).is_empty(),
                "{bad}"
            );
        }
    }
}
