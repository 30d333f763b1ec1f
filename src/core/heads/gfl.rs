//! Generalized Focal Loss heads (NanoDet, NanoDet-Plus, PP-PicoDet): per grid cell, class scores
//! (sigmoid applied) and four box sides as distributions over `reg_max + 1` bins, decoded by
//! Distribution Focal Loss.

use serde::Deserialize;
use tract_onnx::prelude::TValue;

use super::shared::{check_strides, check_top_k, clip_box, default_top_k, keep_best, GridLevel};
use super::{values, Candidate, Family, Head, ModelFacts, Params};
use crate::core::engine::OutputRef;
use crate::core::error::Result;

/// `family = "gfl"`: per level, class scores `[1, N, C]` and box distributions
/// `[1, N, 4 * (reg_max + 1)]`; or one output `[1, sum of cells, C + 4 * (reg_max + 1)]` over every
/// level, class scores first (the NanoDet-Plus export).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GflSpec {
    strides: Vec<u32>,
    reg_max: u32,
    /// Class-score outputs, one per stride, in stride order.
    #[serde(default)]
    cls: Vec<OutputRef>,
    /// Box-distribution outputs, one per stride, in stride order.
    #[serde(default)]
    reg: Vec<OutputRef>,
    /// The single combined output, instead of `cls` and `reg`.
    #[serde(default)]
    output: Option<OutputRef>,
    /// Cell centres sit at `(col + cell_offset) * stride`: 0.5 for NanoDet legacy and PicoDet, 0 for
    /// NanoDet-Plus.
    #[serde(default = "half")]
    cell_offset: f32,
    /// Locations kept per level, by best class score, before NMS.
    #[serde(default = "default_top_k")]
    top_k_per_level: usize,
}

fn half() -> f32 {
    0.5
}

impl Family for GflSpec {
    fn check(&self) -> std::result::Result<(), String> {
        check_strides(&self.strides)?;
        if self.output.is_some() {
            if !self.cls.is_empty() || !self.reg.is_empty() {
                return Err(
                    "decoder: give either `output` (one combined output) or `cls` and `reg`".into(),
                );
            }
        } else if self.cls.len() != self.strides.len() || self.reg.len() != self.strides.len() {
            return Err(format!(
                "decoder: {} strides need as many cls and reg outputs (got {} and {})",
                self.strides.len(),
                self.cls.len(),
                self.reg.len()
            ));
        }
        if self.reg_max == 0 || self.reg_max > 64 {
            return Err(format!(
                "decoder.reg_max must be within 1..=64, got {}",
                self.reg_max
            ));
        }
        if !(0.0..=1.0).contains(&self.cell_offset) {
            return Err(format!(
                "decoder.cell_offset must be within 0..=1, got {}",
                self.cell_offset
            ));
        }
        check_top_k(self.top_k_per_level)
    }

    fn resolve(&self, model: &ModelFacts<'_>) -> Result<Box<dyn Head>> {
        let ModelFacts {
            outputs: facts,
            classes,
            input_width: width,
            input_height: height,
        } = *model;
        let strides = &self.strides;
        let bins = 4 * (self.reg_max as usize + 1);
        let grids = GridLevel::for_input(strides, width, height);
        let outputs = match &self.output {
            Some(combined) => {
                let i = facts.index(combined)?;
                facts.require_f32(i)?;
                let cells: usize = grids.iter().map(GridLevel::cells).sum();
                if facts.fixed_shape(i)? != [1, cells, classes + bins] {
                    return Err(facts.mismatch(i, format!(
                        "strides {strides:?} on a {width}x{height} input need [1, {cells}, {}]: {cells} grid cells x ({classes} classes, one per label, + 4 x (reg_max + 1) bins)",
                        classes + bins
                    )));
                }
                GflOutputs::Combined(i, grids)
            }
            None => {
                let mut levels = Vec::new();
                for ((grid, c), r) in grids.iter().zip(&self.cls).zip(&self.reg) {
                    let (ci, ri) = (facts.index(c)?, facts.index(r)?);
                    let (stride, cells) = (grid.stride, grid.cells());
                    for (i, want, what) in [
                        (ci, classes, "classes (one per label)"),
                        (ri, bins, "4 x (reg_max + 1) bins"),
                    ] {
                        facts.require_f32(i)?;
                        if facts.fixed_shape(i)? != [1, cells, want] {
                            return Err(facts.mismatch(i, format!(
                                "stride {stride} on a {width}x{height} input needs [1, {cells}, {want}]: {cells} grid cells x {want} {what}"
                            )));
                        }
                    }
                    levels.push((stride, ci, ri));
                }
                GflOutputs::Separate(levels)
            }
        };
        Ok(Box::new(Gfl {
            outputs,
            classes,
            reg_max: self.reg_max as usize,
            cell_offset: self.cell_offset,
            top_k: self.top_k_per_level,
        }))
    }
}

/// Where a GFL head's tensors are: per level `(stride, cls, reg)` outputs, or one combined output.
#[derive(Debug, Clone)]
enum GflOutputs {
    Separate(Vec<(u32, usize, usize)>),
    Combined(usize, Vec<GridLevel>),
}

#[derive(Debug, Clone)]
struct Gfl {
    outputs: GflOutputs,
    classes: usize,
    reg_max: usize,
    cell_offset: f32,
    top_k: usize,
}

impl Head for Gfl {
    fn candidates(&self, outputs: &[TValue], p: &Params<'_>) -> Result<Vec<Candidate>> {
        let (classes, bins) = (self.classes, self.reg_max + 1);
        let decode_levels = |views: &[GflLevel]| {
            decode(
                views,
                classes,
                self.reg_max,
                self.cell_offset,
                self.top_k,
                p,
            )
        };
        Ok(match &self.outputs {
            GflOutputs::Separate(levels) => {
                let mut data = Vec::with_capacity(levels.len());
                for &(stride, cls, reg) in levels {
                    data.push((stride, values(outputs, cls)?, values(outputs, reg)?));
                }
                let views: Vec<GflLevel> = data
                    .iter()
                    .map(|(stride, cls, reg)| GflLevel::separate(*stride, classes, bins, cls, reg))
                    .collect();
                decode_levels(&views)
            }
            GflOutputs::Combined(output, levels) => {
                let data = values(outputs, *output)?;
                decode_levels(&GflLevel::combined(&data, levels, classes, bins))
            }
        })
    }
}

/// Expected value of a Distribution Focal Loss side: `sum_j j * softmax(bins)_j`, in bins.
fn dfl_expectation(bins: &[f32]) -> f32 {
    let max = bins.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut num, mut den) = (0f32, 0f32);
    for (j, &b) in bins.iter().enumerate() {
        let e = (b - max).exp();
        num += j as f32 * e;
        den += e;
    }
    if den > 0.0 && num.is_finite() {
        num / den
    } else {
        0.0
    }
}

/// One GFL level over a grid `ceil(input / stride)` wide, row-major: per cell, class scores (sigmoid
/// applied) and `4 * (reg_max + 1)` box-distribution logits. Rows may be separate tensors (`[n, C]` and
/// `[n, 4 * bins]`, NanoDet legacy and PicoDet) or one interleaved tensor (`[n, C + 4 * bins]`, the
/// NanoDet-Plus export): `row_stride` is the distance between two cells' rows in each slice.
struct GflLevel<'a> {
    stride: u32,
    cells: usize,
    cls: &'a [f32],
    cls_row_stride: usize,
    reg: &'a [f32],
    reg_row_stride: usize,
}

impl<'a> GflLevel<'a> {
    /// A level from separate class and box tensors.
    fn separate(
        stride: u32,
        num_classes: usize,
        bins: usize,
        cls: &'a [f32],
        reg: &'a [f32],
    ) -> Self {
        GflLevel {
            stride,
            cells: cls.len() / num_classes.max(1),
            cls,
            cls_row_stride: num_classes,
            reg,
            reg_row_stride: 4 * bins,
        }
    }

    /// The levels of one `[N, C + 4 * bins]` tensor holding every level's cells in stride order.
    fn combined(
        data: &'a [f32],
        levels: &[GridLevel],
        num_classes: usize,
        bins: usize,
    ) -> Vec<Self> {
        let width = num_classes + 4 * bins;
        let mut start = 0;
        levels
            .iter()
            .map(|l| {
                let rows = &data[(start * width).min(data.len())..];
                start += l.cells();
                GflLevel {
                    stride: l.stride,
                    cells: l.cells(),
                    cls: rows,
                    cls_row_stride: width,
                    reg: rows.get(num_classes..).unwrap_or(&[]),
                    reg_row_stride: width,
                }
            })
            .collect()
    }
}

/// Decodes GFL heads (NanoDet, NanoDet-Plus, PP-PicoDet). Cell centres sit at `(col + cell_offset) *
/// stride` (0.5 for NanoDet legacy and PicoDet, 0 for NanoDet-Plus). Per level, the `top_k` cells by
/// best class score are considered; every class scoring at least the threshold at a cell yields a
/// candidate.
fn decode(
    levels: &[GflLevel<'_>],
    num_classes: usize,
    reg_max: usize,
    cell_offset: f32,
    top_k: usize,
    p: &Params<'_>,
) -> Vec<Candidate> {
    let bins = reg_max + 1;
    let mut out = Vec::new();
    for level in levels {
        let s = level.stride;
        let grid_w = p.input_width.div_ceil(s) as usize;
        let scores = |i: usize| {
            let start = i * level.cls_row_stride;
            &level.cls[start..start + num_classes]
        };
        // A level whose tensors are shorter than its grid (never after the load-time shape checks)
        // contributes only the cells it holds.
        let held = |len: usize, row: usize, width: usize| {
            if len < width {
                0
            } else {
                (len - width) / row + 1
            }
        };
        let n = level
            .cells
            .min(held(level.cls.len(), level.cls_row_stride, num_classes))
            .min(held(level.reg.len(), level.reg_row_stride, 4 * bins));
        let best = |i: usize| -> f32 {
            scores(i)
                .iter()
                .enumerate()
                .filter(|(c, _)| p.wants(*c))
                .map(|(_, &v)| v)
                .fold(f32::NEG_INFINITY, f32::max)
        };
        let mut locations: Vec<(usize, f32)> = (0..n)
            .map(|i| (i, best(i)))
            .filter(|&(_, b)| p.passes(b))
            .collect();
        keep_best(&mut locations, top_k, |&b| b);
        for (i, _) in locations {
            let (row, col) = (i / grid_w, i % grid_w);
            let (cx, cy) = (
                (col as f32 + cell_offset) * s as f32,
                (row as f32 + cell_offset) * s as f32,
            );
            let start = i * level.reg_row_stride;
            let reg = &level.reg[start..start + 4 * bins];
            let d = [0, 1, 2, 3]
                .map(|side| dfl_expectation(&reg[side * bins..(side + 1) * bins]) * s as f32);
            let Some(bbox) = clip_box([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], p) else {
                continue;
            };
            for (class_id, &score) in scores(i).iter().enumerate() {
                if p.passes(score) && p.wants(class_id) {
                    out.push(Candidate {
                        class_id,
                        score,
                        bbox,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dfl_expectation_is_the_softmax_mean() {
        // One dominant bin gives that bin.
        let mut bins = [-100f32; 11];
        bins[4] = 50.0;
        assert!((dfl_expectation(&bins) - 4.0).abs() < 1e-4);
        // Equal logits give the mean of 0..=10.
        assert!((dfl_expectation(&[3.0; 11]) - 5.0).abs() < 1e-5);
        // Two equal peaks at 2 and 6 give 4.
        let mut bins = [-100f32; 11];
        bins[2] = 1.0;
        bins[6] = 1.0;
        assert!((dfl_expectation(&bins) - 4.0).abs() < 1e-4);
        // Huge logits do not overflow.
        assert!((dfl_expectation(&[1e30, 0.0, 0.0]) - 0.0).abs() < 1e-6);
    }

    /// A 2-level, 2-class head on a 16x16 input with reg_max 3: strides 8 (2x2 grid) and 16 (1x1).
    #[test]
    fn gfl_decodes_centres_distances_and_classes() {
        let bins = 4;
        let peak = |d: usize| -> Vec<f32> {
            (0..bins)
                .map(|j| if j == d { 30.0 } else { -30.0 })
                .collect()
        };
        let mut cls8 = vec![0.0f32; 4 * 2];
        let mut reg8 = vec![0.0f32; 4 * 4 * bins];
        // Location 3 (row 1, col 1): centre (12, 12); class 1 at 0.9, class 0 at 0.5.
        cls8[3 * 2] = 0.5;
        cls8[3 * 2 + 1] = 0.9;
        let sides = [1, 2, 3, 0].map(peak).concat(); // distances 1,2,3,0 bins of 8 px
        reg8[3 * 4 * bins..4 * 4 * bins].copy_from_slice(&sides);
        let cls16 = vec![0.2f32, 0.1];
        let reg16 = [0, 0, 0, 0].map(peak).concat();
        let levels = [
            GflLevel::separate(8, 2, bins, &cls8, &reg8),
            GflLevel::separate(16, 2, bins, &cls16, &reg16),
        ];
        let p = Params {
            score_threshold: 0.3,
            class_mask: None,
            input_width: 16,
            input_height: 16,
        };
        let out = decode(&levels, 2, 3, 0.5, 1000, &p);
        // Box: (12-8, 12-16, 12+24, 12+0) clipped to the 16x16 input.
        let bbox = [4.0, 0.0, 16.0, 12.0];
        assert_eq!(out.len(), 2);
        for (c, score) in [(0, 0.5), (1, 0.9)] {
            let got = out.iter().find(|d| d.class_id == c).unwrap();
            assert_eq!(got.score, score);
            for (g, e) in got.bbox.iter().zip(bbox) {
                assert!((g - e).abs() < 1e-3, "{:?}", got.bbox);
            }
        }
        // The class mask removes class 1 and its location still yields class 0.
        let mask = [true, false];
        let p = Params {
            class_mask: Some(&mask),
            ..p
        };
        let out = decode(&levels, 2, 3, 0.5, 1000, &p);
        assert_eq!(out.iter().map(|d| d.class_id).collect::<Vec<_>>(), vec![0]);
        // A threshold under the stride-16 score admits its centre box (8, 8) with zero size.
        let p = Params {
            score_threshold: 0.15,
            class_mask: None,
            input_width: 16,
            input_height: 16,
        };
        let out = decode(&levels, 2, 3, 0.5, 1000, &p);
        assert!(out
            .iter()
            .any(|d| d.score == 0.2 && d.bbox == [8.0, 8.0, 8.0, 8.0]));
    }

    #[test]
    fn gfl_top_k_keeps_the_best_locations_per_level() {
        let bins = 2;
        let cls: Vec<f32> = (0..4).map(|i| 0.5 + i as f32 / 10.0).collect(); // 1 class, 4 locations
        let reg = vec![0.0f32; 4 * 4 * bins];
        let levels = [GflLevel::separate(8, 1, bins, &cls, &reg)];
        let p = Params {
            score_threshold: 0.3,
            class_mask: None,
            input_width: 16,
            input_height: 16,
        };
        let out = decode(&levels, 1, 1, 0.5, 2, &p);
        let mut scores: Vec<f32> = out.iter().map(|c| c.score).collect();
        scores.sort_by(f32::total_cmp);
        assert_eq!(scores, vec![0.7, 0.8]);
    }
}
