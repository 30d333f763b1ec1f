//! Operating points: what a score threshold would give a user, on the same matching as the COCO
//! figures. A detection counts as found at IoU 0.50 (all areas, at most 100 per image and category,
//! crowd regions ignored); precision is the share of the detections at or above the threshold that
//! are found objects, recall the share of the objects found, F1 their harmonic mean. How a model's
//! default `score_threshold` is chosen: the threshold of best F1 on labelled photos.

use serde::Serialize;

/// Every scored detection's score and whether it matched an object at IoU 0.50, and how many
/// objects count.
#[derive(Debug, Clone, Default)]
pub struct Matches {
    pub(super) detections: Vec<(f64, bool)>,
    pub(super) objects: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperatingPoint {
    pub score_threshold: f64,
    /// 0 when no detection reaches the threshold.
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// The thresholds swept: 0.05, 0.10 ... 0.95.
pub const SWEEP: [f64; 19] = [
    0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80,
    0.85, 0.90, 0.95,
];

impl Matches {
    /// What keeping the detections scored `threshold` or more gives.
    pub fn at(&self, threshold: f64) -> OperatingPoint {
        let (mut found, mut kept) = (0usize, 0usize);
        for &(score, matched) in &self.detections {
            if score >= threshold {
                kept += 1;
                found += usize::from(matched);
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(found, kept), ratio(found, self.objects));
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        OperatingPoint {
            score_threshold: threshold,
            precision,
            recall,
            f1,
        }
    }

    /// The operating point at each threshold of [`SWEEP`].
    pub fn sweep(&self) -> Vec<OperatingPoint> {
        SWEEP.iter().map(|&t| self.at(t)).collect()
    }

    /// The swept threshold of best F1 (the lowest of equals); `None` when nothing is found at any.
    pub fn best_f1(&self) -> Option<OperatingPoint> {
        self.sweep().into_iter().filter(|p| p.f1 > 0.0).fold(
            None,
            |best: Option<OperatingPoint>, p| match best {
                Some(b) if b.f1 >= p.f1 => Some(b),
                _ => Some(p),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn precision_recall_and_f1_at_a_threshold() {
        // Two objects; a hit at 0.9, a miss at 0.6, a hit at 0.3.
        let m = Matches {
            detections: vec![(0.9, true), (0.6, false), (0.3, true)],
            objects: 2,
        };
        let p = m.at(0.5);
        assert!(
            close(p.precision, 0.5) && close(p.recall, 0.5) && close(p.f1, 0.5),
            "{p:?}"
        );
        let p = m.at(0.3);
        assert!(
            close(p.precision, 2.0 / 3.0) && close(p.recall, 1.0) && close(p.f1, 0.8),
            "{p:?}"
        );
        assert_eq!(
            m.at(0.95),
            OperatingPoint {
                score_threshold: 0.95,
                precision: 0.0,
                recall: 0.0,
                f1: 0.0
            }
        );
        // F1 0.8 from 0.05 to 0.30: the lowest of equals.
        assert_eq!(m.best_f1().map(|p| p.score_threshold), Some(0.05));
        assert_eq!(m.sweep().len(), SWEEP.len());
    }

    #[test]
    fn nothing_found_has_no_best_threshold() {
        let m = Matches {
            detections: vec![(0.9, false)],
            objects: 3,
        };
        assert_eq!(m.best_f1(), None);
        assert_eq!(Matches::default().best_f1(), None);
    }
}
