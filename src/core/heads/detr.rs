//! DETR-style set-prediction heads (D-FINE, DEIM, RT-DETR, RF-DETR): a fixed number of queries, each
//! with class logits and one box `cx, cy, w, h` as fractions of the input; no anchors, no grid, and no
//! duplicates to suppress.

use serde::Deserialize;
use tract_onnx::prelude::TValue;

use super::shared::{check_top_k, from_centre, RowCandidates};
use super::{values, Candidate, Family, Head, ModelFacts, Params};
use crate::core::engine::OutputRef;
use crate::core::error::Result;

/// What the class outputs hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassActivation {
    /// Logits; the score is their sigmoid (every family above).
    Sigmoid,
    /// Scores already (an export that ends in its own sigmoid).
    None,
}

fn sigmoid() -> ClassActivation {
    ClassActivation::Sigmoid
}

/// As the families' reference post-processing: the 300 best query-class pairs.
fn default_top_k() -> usize {
    300
}

/// `family = "detr"`: `logits` `[1, Q, C]`, one column per label, and `boxes` `[1, Q, 4]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetrSpec {
    logits: OutputRef,
    boxes: OutputRef,
    #[serde(default = "sigmoid")]
    activation: ClassActivation,
    /// Query-class pairs kept, by score.
    #[serde(default = "default_top_k")]
    top_k: usize,
}

impl Family for DetrSpec {
    fn check(&self) -> std::result::Result<(), String> {
        check_top_k(self.top_k)
    }

    fn resolve(&self, model: &ModelFacts<'_>) -> Result<Box<dyn Head>> {
        let (facts, classes) = (model.outputs, model.classes);
        let logits = facts.index(&self.logits)?;
        let boxes = facts.index(&self.boxes)?;
        facts.require_f32(logits)?;
        facts.require_f32(boxes)?;
        let queries = match facts.fixed_shape(logits)?.as_slice() {
            [1, q, c] if *c == classes => *q,
            _ => {
                return Err(facts.mismatch(
                    logits,
                    format!("DETR logits need [1, queries, {classes}]: one column per label"),
                ))
            }
        };
        match facts.fixed_shape(boxes)?.as_slice() {
            [1, q, 4] if *q == queries => {}
            _ => {
                return Err(facts.mismatch(
                    boxes,
                    format!("DETR boxes need [1, {queries}, 4] (cx, cy, w, h), one row per query"),
                ))
            }
        }
        Ok(Box::new(Detr {
            logits,
            boxes,
            classes,
            queries,
            activation: self.activation,
            top_k: self.top_k,
        }))
    }
}

#[derive(Debug, Clone)]
struct Detr {
    logits: usize,
    boxes: usize,
    classes: usize,
    queries: usize,
    activation: ClassActivation,
    top_k: usize,
}

impl Head for Detr {
    fn candidates(&self, outputs: &[TValue], p: &Params<'_>) -> Result<Vec<Candidate>> {
        let logits = values(outputs, self.logits)?;
        let boxes = values(outputs, self.boxes)?;
        Ok(decode(
            &logits,
            &boxes,
            self.classes,
            self.queries,
            self.activation,
            self.top_k,
            p,
        ))
    }

    fn predicts_a_set(&self) -> bool {
        true
    }
}

/// Every wanted query-class pair at or above the threshold is a candidate (one query may answer for two
/// classes), its box the query's, scaled from fractions of the input to input pixels; the `top_k` best.
fn decode(
    logits: &[f32],
    boxes: &[f32],
    classes: usize,
    queries: usize,
    activation: ClassActivation,
    top_k: usize,
    p: &Params<'_>,
) -> Vec<Candidate> {
    let (w, h) = (p.input_width as f32, p.input_height as f32);
    let mut out = RowCandidates::default();
    for q in 0..queries {
        let row = &logits[q * classes..(q + 1) * classes];
        let b = &boxes[q * 4..q * 4 + 4];
        for (c, &v) in row.iter().enumerate() {
            let score = match activation {
                ClassActivation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                ClassActivation::None => v,
            };
            if p.passes(score) && p.wants(c) {
                let corners = from_centre(b[0] * w, b[1] * h, b[2] * w, b[3] * h);
                out.push(q * classes + c, c, score, corners, p);
            }
        }
    }
    out.top_k(top_k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::heads::shared::params;

    /// Two queries, three classes, on the 32x32 input of `params`.
    const BOXES: [f32; 8] = [0.5, 0.5, 0.25, 0.5, 0.25, 0.5, 2.0, 0.25];

    fn logit(p: f32) -> f32 {
        (p / (1.0 - p)).ln()
    }

    #[test]
    fn every_query_class_pair_above_the_threshold_is_a_candidate_with_the_querys_box() {
        let logits = [
            logit(0.9),
            logit(0.2),
            logit(0.6),
            logit(0.1),
            logit(0.7),
            logit(0.3),
        ];
        let out = decode(
            &logits,
            &BOXES,
            3,
            2,
            ClassActivation::Sigmoid,
            300,
            &params(0.5),
        );
        let got: Vec<(usize, f32)> = out.iter().map(|c| (c.class_id, c.score)).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        // Query 0 answers for classes 0 and 2, with the same box in input pixels.
        assert_eq!((out[0].class_id, out[1].class_id), (0, 2));
        assert!((out[0].score - 0.9).abs() < 1e-6 && (out[1].score - 0.6).abs() < 1e-6);
        assert_eq!(out[0].bbox, [12.0, 8.0, 20.0, 24.0]);
        assert_eq!(out[1].bbox, out[0].bbox);
        // Query 1's box is twice the input's width: clipped.
        assert_eq!((out[2].class_id, out[2].bbox), (1, [0.0, 12.0, 32.0, 20.0]));
    }

    #[test]
    fn scores_already_activated_top_k_and_class_mask() {
        let scores = [0.9, 0.2, 0.6, 0.1, 0.7, 0.3];
        let out = decode(
            &scores,
            &BOXES,
            3,
            2,
            ClassActivation::None,
            2,
            &params(0.5),
        );
        let got: Vec<(usize, f32)> = out.iter().map(|c| (c.class_id, c.score)).collect();
        assert_eq!(got, [(0, 0.9), (1, 0.7)]);
        let mask = [false, true, true];
        let p = Params {
            class_mask: Some(&mask),
            ..params(0.5)
        };
        let out = decode(&scores, &BOXES, 3, 2, ClassActivation::None, 300, &p);
        let got: Vec<(usize, f32)> = out.iter().map(|c| (c.class_id, c.score)).collect();
        assert_eq!(got, [(2, 0.6), (1, 0.7)]);
    }

    #[test]
    fn non_finite_values_never_become_detections() {
        let logits = [
            f32::NAN,
            logit(0.9),
            logit(0.9),
            logit(0.9),
            logit(0.1),
            logit(0.1),
        ];
        let boxes = [0.5, 0.5, 0.25, 0.5, f32::NAN, 0.5, 0.5, 0.5];
        let out = decode(
            &logits,
            &boxes,
            3,
            2,
            ClassActivation::Sigmoid,
            300,
            &params(0.5),
        );
        let got: Vec<usize> = out.iter().map(|c| c.class_id).collect();
        assert_eq!(got, [1, 2]);
    }
}
