//! Per-class non-maximum suppression of scored boxes, best first.

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
}
