//! Detection heads: a model's raw outputs to scored candidate boxes, one file per family.
//!
//! Everything here works in model-input pixels; mapping to image pixels happens after NMS, as upstream
//! NanoDet does, so suppression does not depend on the image's size.

mod boxes_scores;
mod gfl;
mod shared;
mod yolov8;
mod yolox;

pub use boxes_scores::{decode_boxes_scores, BoxesFormat};
pub use gfl::{decode_gfl, dfl_expectation, GflLevel};
pub use shared::GridLevel;
pub use yolov8::decode_yolov8;
pub use yolox::decode_yolox;

/// One scored box for one class, in model-input pixels (`[x_min, y_min, x_max, y_max]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub class_id: usize,
    pub score: f32,
    pub bbox: [f32; 4],
}

/// What the decoders need besides the tensors.
#[derive(Debug, Clone)]
pub struct DecodeParams<'a> {
    pub score_threshold: f32,
    /// `class_mask[c]` is false for classes the caller filtered out; `None` keeps all.
    pub class_mask: Option<&'a [bool]>,
    pub input_width: u32,
    pub input_height: u32,
}

impl DecodeParams<'_> {
    /// At or above the threshold; never true for NaN.
    fn passes(&self, score: f32) -> bool {
        score >= self.score_threshold
    }

    fn wants(&self, class_id: usize) -> bool {
        self.class_mask
            .is_none_or(|m| m.get(class_id).copied().unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heads::shared::params;
    use crate::manifest::BoxOrder;

    #[test]
    fn non_finite_model_values_never_become_detections() {
        let levels = GridLevel::for_input(&[32], 32, 32);
        let nan_box = [f32::NAN, 0.0, 0.0, 0.0, 1.0, 1.0];
        assert!(decode_yolox(&nan_box, 1, &levels, false, 10, &params(0.1)).is_empty());
        let nan_score = [16.0, 16.0, 4.0, 4.0, f32::NAN];
        assert!(decode_yolov8(&nan_score, 1, 1, false, 10, &params(0.1)).is_empty());
        let f = BoxesFormat {
            order: BoxOrder::Xyxy,
            normalized: false,
            class_offset: 0,
            num_labels: 1,
        };
        let inf = [0.0, 0.0, f32::INFINITY, 1.0];
        assert!(decode_boxes_scores(&inf, &[0.9], &[0.0], None, &f, &params(0.1)).is_empty());
        assert!(
            decode_boxes_scores(&[0.0; 4], &[0.9], &[f32::NAN], None, &f, &params(0.1)).is_empty()
        );
    }
}
