//! Already-decoded detections with NMS in the graph (TF Object Detection API / SSD exports as
//! TensorFlow Serving returns them, ONNX `NonMaxSuppression` exports): boxes, scores, classes and
//! optionally a count of valid rows.

use serde::Deserialize;
use tract_onnx::prelude::TValue;

use super::shared::{clip_box, from_centre};
use super::{values, Candidate, Family, Head, ModelFacts, Params};
use crate::core::engine::{OutputFacts, OutputRef};
use crate::core::error::{Error, Result};

/// `family = "boxes_scores"`: boxes `[1, N, 4]`, scores `[1, N]`, classes `[1, N]` and optionally a
/// count of valid rows; N may depend on the data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxesScoresSpec {
    boxes: OutputRef,
    scores: OutputRef,
    classes: OutputRef,
    /// Number of valid rows (TF's `num_detections`); without it every row is a detection.
    #[serde(default)]
    count: Option<OutputRef>,
    /// Order of the four box values.
    #[serde(default)]
    box_order: BoxOrder,
    /// Whether boxes are fractions of the input size or input pixels.
    coordinates: Coordinates,
    /// Subtracted from a class value to get its label index (1 for TF's 1-based COCO ids).
    #[serde(default)]
    class_offset: i64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BoxOrder {
    /// `y_min, x_min, y_max, x_max` (TensorFlow).
    #[default]
    Yxyx,
    /// `x_min, y_min, x_max, y_max`.
    Xyxy,
    /// `cx, cy, w, h`.
    Cxcywh,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Coordinates {
    /// 0..1 fractions of the model input's width and height.
    Normalized,
    /// Model-input pixels.
    Pixels,
}

/// The row count of output `i`, `None` when the data decides it: `[1, rows, per_row]` (or
/// `[rows, per_row]`) for boxes, `[1, rows]` (or `[rows]`) when `per_row` is `None`. The batch, if any,
/// must be one image.
fn rows(facts: &OutputFacts, i: usize, per_row: Option<usize>) -> Result<Option<usize>> {
    let shape = facts.shapes[i].as_slice();
    let rank = 1 + usize::from(per_row.is_some());
    let body = match shape.first() {
        Some(Some(1)) if shape.len() == rank + 1 => &shape[1..],
        _ if shape.len() == rank => shape,
        _ => &[][..],
    };
    match (body, per_row) {
        ([n], None) => Ok(*n),
        ([n, Some(k)], Some(want)) if *k == want => Ok(*n),
        _ => Err(facts.mismatch(
            i,
            match per_row {
                Some(k) => format!("boxes must be [1, rows, {k}]"),
                None => "scores and classes must be [1, rows]".to_string(),
            },
        )),
    }
}

impl Family for BoxesScoresSpec {
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    fn resolve(&self, model: &ModelFacts<'_>) -> Result<Box<dyn Head>> {
        let facts = model.outputs;
        let b = facts.index(&self.boxes)?;
        let s = facts.index(&self.scores)?;
        let c = facts.index(&self.classes)?;
        facts.require_f32(b)?;
        facts.require_f32(s)?;
        facts.require_number(c)?;
        let n = [
            rows(facts, b, Some(4))?,
            rows(facts, s, None)?,
            rows(facts, c, None)?,
        ];
        let known: Vec<usize> = n.iter().flatten().copied().collect();
        if known.windows(2).any(|w| w[0] != w[1]) {
            return Err(Error::invalid_model(format!(
                "boxes, scores and classes have different row counts: {}, {}, {}",
                facts.describe(b),
                facts.describe(s),
                facts.describe(c)
            )));
        }
        let count = match &self.count {
            Some(r) => {
                let i = facts.index(r)?;
                facts.require_number(i)?;
                if facts.shapes[i].iter().any(|d| *d != Some(1)) {
                    return Err(facts.mismatch(i, "a count must hold one value"));
                }
                Some(i)
            }
            None => None,
        };
        Ok(Box::new(BoxesScores {
            boxes: b,
            scores: s,
            classes: c,
            count,
            format: BoxesFormat {
                order: self.box_order,
                normalized: self.coordinates == Coordinates::Normalized,
                class_offset: self.class_offset,
                num_labels: model.classes,
            },
        }))
    }
}

#[derive(Debug, Clone)]
struct BoxesScores {
    boxes: usize,
    scores: usize,
    classes: usize,
    count: Option<usize>,
    format: BoxesFormat,
}

impl Head for BoxesScores {
    fn candidates(&self, outputs: &[TValue], p: &Params<'_>) -> Result<Vec<Candidate>> {
        let count = match self.count {
            // A count is a small non-negative integer; anything else counts as zero rows.
            Some(i) => Some(values(outputs, i)?.first().map_or(0, |&c| {
                if c.is_finite() && c > 0.0 {
                    c as usize
                } else {
                    0
                }
            })),
            None => None,
        };
        Ok(decode(
            &values(outputs, self.boxes)?,
            &values(outputs, self.scores)?,
            &values(outputs, self.classes)?,
            count,
            &self.format,
            p,
        ))
    }
}

/// How an already-decoded model writes its boxes and classes.
#[derive(Debug, Clone, Copy)]
struct BoxesFormat {
    order: BoxOrder,
    normalized: bool,
    /// Subtracted from a class value to get the label index.
    class_offset: i64,
    num_labels: usize,
}

/// Reads already-decoded detections (NMS done in the graph): `boxes` 4 values per row, one score and
/// one class value per row; only the first `count` rows when the model reports a count. Rows whose
/// class falls outside the labels are dropped.
fn decode(
    boxes: &[f32],
    scores: &[f32],
    classes: &[f32],
    count: Option<usize>,
    f: &BoxesFormat,
    p: &Params<'_>,
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
    use crate::core::heads::shared::params;

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
        let out = decode(&boxes, &scores, &classes, Some(3), &f, &params(0.5));
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
        let out = decode(
            &[8.0, 8.0, 4.0, 2.0],
            &[0.7],
            &[1.0],
            None,
            &f,
            &params(0.5),
        );
        assert_eq!((out[0].class_id, out[0].bbox), (1, [6.0, 7.0, 10.0, 9.0]));
    }

    #[test]
    fn non_finite_model_values_never_become_detections() {
        let f = BoxesFormat {
            order: BoxOrder::Xyxy,
            normalized: false,
            class_offset: 0,
            num_labels: 1,
        };
        let inf = [0.0, 0.0, f32::INFINITY, 1.0];
        assert!(decode(&inf, &[0.9], &[0.0], None, &f, &params(0.1)).is_empty());
        assert!(decode(&[0.0; 4], &[0.9], &[f32::NAN], None, &f, &params(0.1)).is_empty());
    }
}
