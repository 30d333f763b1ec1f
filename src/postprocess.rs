//! Raw model outputs to ranked detections: head decoding, per-class non-maximum suppression, top-k.
//!
//! Everything here works in model-input pixels; mapping to image pixels happens after NMS, as upstream
//! NanoDet does, so suppression does not depend on the image's size.

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

/// One GFL level: class scores `[n, num_classes]` (sigmoid applied) and box distributions
/// `[n, 4 * (reg_max + 1)]`, row-major over a grid `ceil(input / stride)` wide.
pub struct GflLevel<'a> {
    pub stride: u32,
    pub cls: &'a [f32],
    pub reg: &'a [f32],
}

/// Decodes GFL heads (NanoDet, PP-PicoDet). Per level, the `top_k` locations by best class score are
/// considered; every class scoring at least the threshold at a location yields a candidate.
pub fn decode_gfl(
    levels: &[GflLevel<'_>],
    num_classes: usize,
    reg_max: usize,
    top_k: usize,
    p: &DecodeParams<'_>,
) -> Vec<Candidate> {
    let bins = reg_max + 1;
    let (in_w, in_h) = (p.input_width as f32, p.input_height as f32);
    let mut out = Vec::new();
    for level in levels {
        let s = level.stride;
        let grid_w = p.input_width.div_ceil(s) as usize;
        let n = level.cls.len() / num_classes;
        let best = |i: usize| -> f32 {
            level.cls[i * num_classes..(i + 1) * num_classes]
                .iter()
                .enumerate()
                .filter(|(c, _)| p.wants(*c))
                .map(|(_, &v)| v)
                .fold(f32::NEG_INFINITY, f32::max)
        };
        let mut locations: Vec<(usize, f32)> = (0..n)
            .map(|i| (i, best(i)))
            .filter(|&(_, b)| b >= p.score_threshold)
            .collect();
        if locations.len() > top_k {
            locations.select_nth_unstable_by(top_k, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            locations.truncate(top_k);
        }
        locations.sort_unstable_by_key(|&(i, _)| i);
        for (i, _) in locations {
            let (row, col) = (i / grid_w, i % grid_w);
            let (cx, cy) = ((col as f32 + 0.5) * s as f32, (row as f32 + 0.5) * s as f32);
            let reg = &level.reg[i * 4 * bins..(i + 1) * 4 * bins];
            let d = [0, 1, 2, 3]
                .map(|side| dfl_expectation(&reg[side * bins..(side + 1) * bins]) * s as f32);
            let bbox = [
                (cx - d[0]).clamp(0.0, in_w),
                (cy - d[1]).clamp(0.0, in_h),
                (cx + d[2]).clamp(0.0, in_w),
                (cy + d[3]).clamp(0.0, in_h),
            ];
            for (class_id, &score) in level.cls[i * num_classes..(i + 1) * num_classes]
                .iter()
                .enumerate()
            {
                if score >= p.score_threshold && p.wants(class_id) {
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
            GflLevel {
                stride: 8,
                cls: &cls8,
                reg: &reg8,
            },
            GflLevel {
                stride: 16,
                cls: &cls16,
                reg: &reg16,
            },
        ];
        let p = DecodeParams {
            score_threshold: 0.3,
            class_mask: None,
            input_width: 16,
            input_height: 16,
        };
        let out = decode_gfl(&levels, 2, 3, 1000, &p);
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
        let out = decode_gfl(&levels, 2, 3, 1000, &p);
        assert_eq!(out.iter().map(|d| d.class_id).collect::<Vec<_>>(), vec![0]);
        // A threshold under the stride-16 score admits its centre box (8, 8) with zero size.
        let p = DecodeParams {
            score_threshold: 0.15,
            class_mask: None,
            input_width: 16,
            input_height: 16,
        };
        let out = decode_gfl(&levels, 2, 3, 1000, &p);
        assert!(out
            .iter()
            .any(|d| d.score == 0.2 && d.bbox == [8.0, 8.0, 8.0, 8.0]));
    }

    #[test]
    fn gfl_top_k_keeps_the_best_locations_per_level() {
        let bins = 2;
        let cls: Vec<f32> = (0..4).map(|i| 0.5 + i as f32 / 10.0).collect(); // 1 class, 4 locations
        let reg = vec![0.0f32; 4 * 4 * bins];
        let levels = [GflLevel {
            stride: 8,
            cls: &cls,
            reg: &reg,
        }];
        let p = DecodeParams {
            score_threshold: 0.3,
            class_mask: None,
            input_width: 16,
            input_height: 16,
        };
        let out = decode_gfl(&levels, 1, 1, 2, &p);
        let mut scores: Vec<f32> = out.iter().map(|c| c.score).collect();
        scores.sort_by(f32::total_cmp);
        assert_eq!(scores, vec![0.7, 0.8]);
    }
}
