//! Raw model outputs to ranked detections: head decoding, per-class non-maximum suppression, top-k.
//!
//! Everything here works in model-input pixels; mapping to image pixels happens after NMS, as upstream
//! NanoDet does, so suppression does not depend on the image's size.

use crate::manifest::BoxOrder;

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

/// Intersection over union; 0 for degenerate boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Per-class greedy NMS: within a class, a box is dropped when its IoU with a better-scored kept box
/// exceeds `iou_threshold`. Returns at most `max_detections`, best first; ties keep a stable order.
pub fn nms(
    mut candidates: Vec<Candidate>,
    iou_threshold: f32,
    max_detections: usize,
) -> Vec<Candidate> {
    candidates.sort_by(|a, b| {
        a.class_id
            .cmp(&b.class_id)
            .then(b.score.total_cmp(&a.score))
    });
    let mut kept: Vec<Candidate> = Vec::new();
    for class in candidates.chunk_by(|a, b| a.class_id == b.class_id) {
        let first_kept = kept.len();
        for c in class {
            // A class never contributes more than max_detections to the final list: stop there, which
            // also bounds the work when a low threshold admits thousands of candidates.
            if kept.len() - first_kept == max_detections {
                break;
            }
            if kept[first_kept..]
                .iter()
                .all(|k| iou(&k.bbox, &c.bbox) <= iou_threshold)
            {
                kept.push(*c);
            }
        }
    }
    kept.sort_by(|a, b| b.score.total_cmp(&a.score));
    kept.truncate(max_detections);
    kept
}

/// Expected value of a Distribution Focal Loss side: `sum_j j * softmax(bins)_j`, in bins.
pub fn dfl_expectation(bins: &[f32]) -> f32 {
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
pub struct GflLevel<'a> {
    pub stride: u32,
    pub cells: usize,
    pub cls: &'a [f32],
    pub cls_row_stride: usize,
    pub reg: &'a [f32],
    pub reg_row_stride: usize,
}

impl<'a> GflLevel<'a> {
    /// A level from separate class and box tensors.
    pub fn separate(
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
    pub fn combined(
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
pub fn decode_gfl(
    levels: &[GflLevel<'_>],
    num_classes: usize,
    reg_max: usize,
    cell_offset: f32,
    top_k: usize,
    p: &DecodeParams<'_>,
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

/// The best-scoring class of a row among the classes the caller wants: `(class_id, score)`.
fn best_class(scores: impl Iterator<Item = f32>, p: &DecodeParams<'_>) -> Option<(usize, f32)> {
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
fn clip_box(b: [f32; 4], p: &DecodeParams<'_>) -> Option<[f32; 4]> {
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
fn from_centre(cx: f32, cy: f32, w: f32, h: f32) -> [f32; 4] {
    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
}

/// Candidates of the anchor-per-row decoders (YOLOX, YOLOv8), each with its row: boxes that survive
/// [`clip_box`] are kept, then the `top_k` best (ties by row), in row order.
#[derive(Default)]
struct RowCandidates(Vec<(usize, Candidate)>);

impl RowCandidates {
    fn push(
        &mut self,
        row: usize,
        class_id: usize,
        score: f32,
        corners: [f32; 4],
        p: &DecodeParams<'_>,
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

    fn top_k(mut self, k: usize) -> Vec<Candidate> {
        keep_best(&mut self.0, k, |c| c.score);
        self.0.into_iter().map(|(_, c)| c).collect()
    }
}

/// Keeps the `k` best items by `score` (ties go to the lower position), then orders them by position.
fn keep_best<T>(items: &mut Vec<(usize, T)>, k: usize, score: impl Fn(&T) -> f32) {
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

/// Decodes a YOLOX output `[N, 5 + num_classes]`, rows over `levels` in order, each row-major. Per row
/// the best wanted class is taken, as YOLOX's own postprocess does; its score is objectness x class
/// score. `decoded` says the export already wrote `cx, cy, w, h` in input pixels.
pub fn decode_yolox(
    data: &[f32],
    num_classes: usize,
    levels: &[GridLevel],
    decoded: bool,
    top_k: usize,
    p: &DecodeParams<'_>,
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

    fn cand(class_id: usize, score: f32, bbox: [f32; 4]) -> Candidate {
        Candidate {
            class_id,
            score,
            bbox,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[10.0, 0.0, 20.0, 10.0]), 0.0);
        // 5x10 overlap of two 10x10 boxes: 50 / 150.
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn nms_suppresses_within_a_class_only_and_sorts_best_first() {
        let a = cand(0, 0.9, [0.0, 0.0, 10.0, 10.0]);
        let a_dup = cand(0, 0.8, [1.0, 0.0, 11.0, 10.0]); // IoU 0.82 with a
        let a_far = cand(0, 0.5, [50.0, 50.0, 60.0, 60.0]);
        let b_same_place = cand(1, 0.85, [1.0, 0.0, 11.0, 10.0]);
        let out = nms(vec![a_far, a_dup, b_same_place, a], 0.6, 100);
        assert_eq!(out, vec![a, b_same_place, a_far]);
        // A looser IoU threshold keeps the duplicate.
        assert_eq!(nms(vec![a, a_dup], 0.9, 100), vec![a, a_dup]);
        // Exactly at the threshold is kept (suppression needs IoU above it).
        let half = cand(0, 0.7, [5.0, 0.0, 15.0, 10.0]); // IoU 1/3 with a
        assert_eq!(nms(vec![a, half], 1.0 / 3.0, 100).len(), 2);
    }

    #[test]
    fn nms_keeps_max_detections_best() {
        let boxes: Vec<_> = (0..50)
            .map(|i| {
                cand(
                    i % 3,
                    i as f32 / 100.0,
                    [i as f32 * 20.0, 0.0, i as f32 * 20.0 + 10.0, 10.0],
                )
            })
            .collect();
        let out = nms(boxes, 0.5, 7);
        assert_eq!(out.len(), 7);
        let scores: Vec<f32> = out.iter().map(|c| c.score).collect();
        assert_eq!(scores, vec![0.49, 0.48, 0.47, 0.46, 0.45, 0.44, 0.43]);
    }

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
        let p = DecodeParams {
            score_threshold: 0.3,
            class_mask: None,
            input_width: 16,
            input_height: 16,
        };
        let out = decode_gfl(&levels, 2, 3, 0.5, 1000, &p);
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
        let p = DecodeParams {
            class_mask: Some(&mask),
            ..p
        };
        let out = decode_gfl(&levels, 2, 3, 0.5, 1000, &p);
        assert_eq!(out.iter().map(|d| d.class_id).collect::<Vec<_>>(), vec![0]);
        // A threshold under the stride-16 score admits its centre box (8, 8) with zero size.
        let p = DecodeParams {
            score_threshold: 0.15,
            class_mask: None,
            input_width: 16,
            input_height: 16,
        };
        let out = decode_gfl(&levels, 2, 3, 0.5, 1000, &p);
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
        let p = DecodeParams {
            score_threshold: 0.3,
            class_mask: None,
            input_width: 16,
            input_height: 16,
        };
        let out = decode_gfl(&levels, 1, 1, 0.5, 2, &p);
        let mut scores: Vec<f32> = out.iter().map(|c| c.score).collect();
        scores.sort_by(f32::total_cmp);
        assert_eq!(scores, vec![0.7, 0.8]);
    }

    fn params(threshold: f32) -> DecodeParams<'static> {
        DecodeParams {
            score_threshold: threshold,
            class_mask: None,
            input_width: 32,
            input_height: 32,
        }
    }

    /// Two levels on a 32x32 input: stride 16 (2x2 cells) then stride 32 (1 cell), 2 classes.
    #[test]
    fn yolox_grid_decode_uses_each_levels_cell_and_stride() {
        let levels = GridLevel::for_input(&[16, 32], 32, 32);
        let mut data = vec![0f32; 5 * 7];
        // Row 3: level 16, cell (row 1, col 1); offsets 0.5, box exp(0) * 16 = 16 px; obj 0.8, cls 0.5/0.9.
        data[3 * 7..4 * 7].copy_from_slice(&[0.5, 0.5, 0.0, 0.0, 0.8, 0.5, 0.9]);
        // Row 4: level 32, cell (0, 0); log size ln 0.5 gives 16 px; obj 0.9, class 0 at 1.0.
        data[4 * 7..5 * 7].copy_from_slice(&[0.5, 0.5, 0.5f32.ln(), 0.5f32.ln(), 0.9, 1.0, 0.0]);
        let out = decode_yolox(&data, 2, &levels, false, 100, &params(0.5));
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
        let out = decode_yolox(&decoded, 2, &levels, true, 1, &params(0.5));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].class_id, out[0].bbox),
            (1, [18.0, 18.0, 22.0, 22.0])
        );
    }

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
