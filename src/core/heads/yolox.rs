//! YOLOX heads: one output over every level's grid cells, per row a box, an objectness and the class
//! scores (sigmoid applied); score = objectness x class score.

use serde::Deserialize;
use tract_onnx::prelude::TValue;

use super::shared::{
    best_class, check_strides, check_top_k, default_top_k, first_output, from_centre, GridLevel,
    RowCandidates,
};
use super::{values, Candidate, Family, Head, ModelFacts, Params};
use crate::core::engine::OutputRef;
use crate::core::error::Result;

/// `family = "yolox"`: one output `[1, N, 5 + C]` over all levels' grid cells (row-major, strides in
/// order).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YoloxSpec {
    #[serde(default = "first_output")]
    output: OutputRef,
    #[serde(default = "yolo_strides")]
    strides: Vec<u32>,
    /// How the export writes boxes (see [`YoloxBoxes`]).
    #[serde(default)]
    boxes: YoloxBoxes,
    /// Candidates kept, by score, before NMS.
    #[serde(default = "default_top_k")]
    top_k: usize,
}

fn yolo_strides() -> Vec<u32> {
    vec![8, 16, 32]
}

/// YOLOX box encoding.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum YoloxBoxes {
    /// The default export: `cx = (o0 + col) * s`, `cy = (o1 + row) * s`, `w = exp(o2) * s`, `h = exp(o3) * s`.
    #[default]
    Grid,
    /// Exports with `--decode_in_inference`: `cx, cy, w, h` already in input pixels.
    Decoded,
}

impl Family for YoloxSpec {
    fn check(&self) -> std::result::Result<(), String> {
        check_strides(&self.strides)?;
        check_top_k(self.top_k)
    }

    fn resolve(&self, model: &ModelFacts<'_>) -> Result<Box<dyn Head>> {
        let ModelFacts {
            outputs: facts,
            classes,
            input_width: width,
            input_height: height,
        } = *model;
        let strides = &self.strides;
        let i = facts.index(&self.output)?;
        facts.require_f32(i)?;
        let levels = GridLevel::for_input(strides, width, height);
        let rows: usize = levels.iter().map(GridLevel::cells).sum();
        if facts.fixed_shape(i)? != [1, rows, 5 + classes] {
            return Err(facts.mismatch(i, format!(
                "strides {strides:?} on a {width}x{height} input need [1, {rows}, {}]: {rows} grid cells x (4 box + 1 objectness + {classes} classes, one per label)",
                5 + classes
            )));
        }
        Ok(Box::new(Yolox {
            output: i,
            classes,
            levels,
            decoded: self.boxes == YoloxBoxes::Decoded,
            top_k: self.top_k,
        }))
    }
}

#[derive(Debug, Clone)]
struct Yolox {
    output: usize,
    classes: usize,
    levels: Vec<GridLevel>,
    decoded: bool,
    top_k: usize,
}

impl Head for Yolox {
    fn candidates(&self, outputs: &[TValue], p: &Params<'_>) -> Result<Vec<Candidate>> {
        let data = values(outputs, self.output)?;
        Ok(decode(
            &data,
            self.classes,
            &self.levels,
            self.decoded,
            self.top_k,
            p,
        ))
    }
}

/// Decodes a YOLOX output `[N, 5 + num_classes]`, rows over `levels` in order, each row-major. Per row
/// the best wanted class is taken, as YOLOX's own postprocess does; its score is objectness x class
/// score. `decoded` says the export already wrote `cx, cy, w, h` in input pixels.
fn decode(
    data: &[f32],
    num_classes: usize,
    levels: &[GridLevel],
    decoded: bool,
    top_k: usize,
    p: &Params<'_>,
) -> Vec<Candidate> {
    let width = 5 + num_classes;
    let mut out = RowCandidates::default();
    let mut rows = data.chunks_exact(width).enumerate();
    for level in levels {
        let s = level.stride as f32;
        for (local, (i, row)) in rows.by_ref().take(level.cells()).enumerate() {
            let Some((class_id, class_score)) = best_class(row[5..].iter().copied(), p) else {
                continue;
            };
            let score = row[4] * class_score;
            if !p.passes(score) {
                continue;
            }
            let (gy, gx) = ((local / level.width) as f32, (local % level.width) as f32);
            let corners = if decoded {
                from_centre(row[0], row[1], row[2], row[3])
            } else {
                from_centre(
                    (row[0] + gx) * s,
                    (row[1] + gy) * s,
                    row[2].exp() * s,
                    row[3].exp() * s,
                )
            };
            out.push(i, class_id, score, corners, p);
        }
    }
    out.top_k(top_k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::heads::shared::params;

    /// Two levels on a 32x32 input: stride 16 (2x2 cells) then stride 32 (1 cell), 2 classes.
    #[test]
    fn yolox_grid_decode_uses_each_levels_cell_and_stride() {
        let levels = GridLevel::for_input(&[16, 32], 32, 32);
        let mut data = vec![0f32; 5 * 7];
        // Row 3: level 16, cell (row 1, col 1); offsets 0.5, box exp(0) * 16 = 16 px; obj 0.8, cls 0.5/0.9.
        data[3 * 7..4 * 7].copy_from_slice(&[0.5, 0.5, 0.0, 0.0, 0.8, 0.5, 0.9]);
        // Row 4: level 32, cell (0, 0); log size ln 0.5 gives 16 px; obj 0.9, class 0 at 1.0.
        data[4 * 7..5 * 7].copy_from_slice(&[0.5, 0.5, 0.5f32.ln(), 0.5f32.ln(), 0.9, 1.0, 0.0]);
        let out = decode(&data, 2, &levels, false, 100, &params(0.5));
        assert_eq!(out.len(), 2);
        // (1.5 * 16, 1.5 * 16) centre, 16 px: best class 1, score 0.8 * 0.9.
        assert_eq!(out[0].class_id, 1);
        assert!((out[0].score - 0.72).abs() < 1e-6);
        assert_eq!(out[0].bbox, [16.0, 16.0, 32.0, 32.0]);
        assert_eq!(out[1].class_id, 0);
        for (g, e) in out[1].bbox.iter().zip([8.0, 8.0, 24.0, 24.0]) {
            assert!((g - e).abs() < 1e-4, "{:?}", out[1].bbox);
        }
        // Exports decoded in the graph give centre and size in pixels; top_k keeps the best.
        let mut decoded = vec![0f32; 5 * 7];
        decoded[0..7].copy_from_slice(&[10.0, 10.0, 4.0, 8.0, 1.0, 0.6, 0.0]);
        decoded[7..14].copy_from_slice(&[20.0, 20.0, 4.0, 4.0, 1.0, 0.0, 0.7]);
        let out = decode(&decoded, 2, &levels, true, 1, &params(0.5));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].class_id, out[0].bbox),
            (1, [18.0, 18.0, 22.0, 22.0])
        );
    }

    #[test]
    fn non_finite_model_values_never_become_detections() {
        let levels = GridLevel::for_input(&[32], 32, 32);
        let nan_box = [f32::NAN, 0.0, 0.0, 0.0, 1.0, 1.0];
        assert!(decode(&nan_box, 1, &levels, false, 10, &params(0.1)).is_empty());
    }
}
