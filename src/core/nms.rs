//! Per-class non-maximum suppression of scored boxes, best first.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::core::heads::Candidate;

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
/// exceeds `iou_threshold`. Returns at most `max_detections`, best first; equal scores by class id, then
/// in input order.
///
/// Candidates are taken best first across all classes: a box's fate depends only on the better boxes of
/// its class, all taken before it, so this is per-class NMS; and once `max_detections` are kept, every
/// box left would rank after them. So a low threshold's tens of thousands of candidates cost a heap
/// and as many pops as it takes to keep `max_detections`, not a sort and a pass over each class.
pub fn nms(
    candidates: Vec<Candidate>,
    iou_threshold: f32,
    max_detections: usize,
) -> Vec<Candidate> {
    select(candidates, Some(iou_threshold), max_detections)
}

/// The candidates of a head that predicts a set (one query per object, no duplicates to suppress):
/// [`nms`]'s ranking and cap without the suppression.
pub fn best_first(candidates: Vec<Candidate>, max_detections: usize) -> Vec<Candidate> {
    select(candidates, None, max_detections)
}

/// Takes candidates best first until `max_detections` are kept, each dropped when `suppress` is given
/// and its IoU with a kept box of its class exceeds it.
fn select(
    candidates: Vec<Candidate>,
    suppress: Option<f32>,
    max_detections: usize,
) -> Vec<Candidate> {
    let mut best_first: BinaryHeap<Ranked> = candidates
        .into_iter()
        .enumerate()
        .map(|(index, candidate)| Ranked { index, candidate })
        .collect();
    let mut kept: Vec<Candidate> = Vec::new();
    let mut kept_boxes: HashMap<usize, Vec<[f32; 4]>> = HashMap::new();
    while kept.len() < max_detections {
        let Some(Ranked { candidate: c, .. }) = best_first.pop() else {
            break;
        };
        if let Some(iou_threshold) = suppress {
            let boxes = kept_boxes.entry(c.class_id).or_default();
            if boxes.iter().any(|k| iou(k, &c.bbox) > iou_threshold) {
                continue;
            }
            boxes.push(c.bbox);
        }
        kept.push(c);
    }
    kept
}

/// A candidate in the order NMS takes them: higher score first, then lower class id, then earlier.
struct Ranked {
    index: usize,
    candidate: Candidate,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.candidate
            .score
            .total_cmp(&other.candidate.score)
            .then(other.candidate.class_id.cmp(&self.candidate.class_id))
            .then(other.index.cmp(&self.index))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

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

    /// Per-class NMS written the plain way: each class's boxes best first, then the kept boxes of
    /// every class sorted best first (stable) and cut.
    fn per_class_reference(
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
            let first = kept.len();
            for c in class {
                if kept[first..]
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

    #[test]
    fn the_same_answer_as_per_class_nms_on_crowded_random_candidates() {
        // A fixed pseudo-random stream: crowded boxes in 5 classes, scores on a coarse grid so that
        // equal scores (within and across classes) are common.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..200 {
            let count = 1 + next(300) as usize;
            let candidates: Vec<Candidate> = (0..count)
                .map(|_| {
                    let (x, y) = (next(100) as f32, next(100) as f32);
                    let (w, h) = (1.0 + next(40) as f32, 1.0 + next(40) as f32);
                    cand(
                        next(5) as usize,
                        next(20) as f32 / 20.0,
                        [x, y, x + w, y + h],
                    )
                })
                .collect();
            for (iou_threshold, max_detections) in [(0.5, 100), (0.3, 7), (0.9, 1), (0.0, 1000)] {
                assert_eq!(
                    nms(candidates.clone(), iou_threshold, max_detections),
                    per_class_reference(candidates.clone(), iou_threshold, max_detections),
                    "round {round}, IoU {iou_threshold}, at most {max_detections}"
                );
            }
        }
    }

    #[test]
    fn a_set_is_ranked_and_capped_but_not_suppressed() {
        let a = cand(0, 0.6, [0.0, 0.0, 10.0, 10.0]);
        let same = cand(0, 0.9, [0.0, 0.0, 10.0, 10.0]);
        let other = cand(1, 0.7, [0.0, 0.0, 10.0, 10.0]);
        assert_eq!(best_first(vec![a, same, other], 100), vec![same, other, a]);
        assert_eq!(best_first(vec![a, same, other], 2), vec![same, other]);
        assert_eq!(nms(vec![a, same, other], 0.5, 100), vec![same, other]);
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
}
