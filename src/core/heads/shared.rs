//! What more than one head family uses: best class, box clipping and conversion, top-k, grid levels,
//! and the manifest defaults and checks they share.

use super::{Candidate, Params};
use crate::core::engine::OutputRef;

/// Candidates kept by score before NMS, unless the manifest says otherwise.
pub(super) fn default_top_k() -> usize {
    1000
}

/// The output a single-output family reads, unless the manifest names another.
pub(super) fn first_output() -> OutputRef {
    OutputRef::Index(0)
}

pub(super) fn check_top_k(k: usize) -> Result<(), String> {
    if k == 0 {
        Err("decoder: top_k must be at least 1".into())
    } else {
        Ok(())
    }
}

pub(super) fn check_strides(strides: &[u32]) -> Result<(), String> {
    if strides.is_empty() || strides.contains(&0) {
        Err("decoder.strides must be non-empty and positive".into())
    } else {
        Ok(())
    }
}

/// The best-scoring class of a row among the classes the caller wants: `(class_id, score)`.
pub(super) fn best_class(
    scores: impl Iterator<Item = f32>,
    p: &Params<'_>,
) -> Option<(usize, f32)> {
    scores
        .enumerate()
        .filter(|&(c, v)| p.wants(c) && !v.is_nan())
        .fold(None, |best, (c, v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((c, v)),
        })
}

/// A box from a model, made safe: `None` when any value is not finite, corners ordered, clipped to the
/// input.
pub(super) fn clip_box(b: [f32; 4], p: &Params<'_>) -> Option<[f32; 4]> {
    if !b.iter().all(|v| v.is_finite()) {
        return None;
    }
    let (w, h) = (p.input_width as f32, p.input_height as f32);
    Some([
        b[0].min(b[2]).clamp(0.0, w),
        b[1].min(b[3]).clamp(0.0, h),
        b[0].max(b[2]).clamp(0.0, w),
        b[1].max(b[3]).clamp(0.0, h),
    ])
}

/// Corners of a box given by its centre and size.
pub(super) fn from_centre(cx: f32, cy: f32, w: f32, h: f32) -> [f32; 4] {
    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
}

/// Candidates of the anchor-per-row decoders (YOLOX, YOLOv8), each with its row: boxes that survive
/// [`clip_box`] are kept, then the `top_k` best (ties by row), in row order.
#[derive(Default)]
pub(super) struct RowCandidates(Vec<(usize, Candidate)>);

impl RowCandidates {
    pub(super) fn push(
        &mut self,
        row: usize,
        class_id: usize,
        score: f32,
        corners: [f32; 4],
        p: &Params<'_>,
    ) {
        if let Some(bbox) = clip_box(corners, p) {
            self.0.push((
                row,
                Candidate {
                    class_id,
                    score,
                    bbox,
                },
            ));
        }
    }

    pub(super) fn top_k(mut self, k: usize) -> Vec<Candidate> {
        keep_best(&mut self.0, k, |c| c.score);
        self.0.into_iter().map(|(_, c)| c).collect()
    }
}

/// Keeps the `k` best items by `score` (ties go to the lower position), then orders them by position.
pub(super) fn keep_best<T>(items: &mut Vec<(usize, T)>, k: usize, score: impl Fn(&T) -> f32) {
    if items.len() > k {
        items.select_nth_unstable_by(k, |a, b| {
            score(&b.1).total_cmp(&score(&a.1)).then(a.0.cmp(&b.0))
        });
        items.truncate(k);
    }
    items.sort_unstable_by_key(|item| item.0);
}

/// One detection-head level: its stride and grid size (`ceil(input / stride)` each way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLevel {
    pub stride: u32,
    pub width: usize,
    pub height: usize,
}

impl GridLevel {
    /// The levels of a `width x height` input: grids `ceil(size / stride)`.
    pub fn for_input(strides: &[u32], width: u32, height: u32) -> Vec<GridLevel> {
        strides
            .iter()
            .map(|&stride| GridLevel {
                stride,
                width: width.div_ceil(stride) as usize,
                height: height.div_ceil(stride) as usize,
            })
            .collect()
    }

    pub fn cells(&self) -> usize {
        self.width * self.height
    }
}

/// Parameters on a 32x32 input with no class filter, for the families' tests.
#[cfg(test)]
pub(super) fn params(threshold: f32) -> Params<'static> {
    Params {
        score_threshold: threshold,
        class_mask: None,
        input_width: 32,
        input_height: 32,
    }
}
