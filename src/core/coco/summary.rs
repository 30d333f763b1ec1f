//! The figures the field reports, from an [`Evaluation`]: pycocotools' twelve `stats` and the AP of
//! each category.

use serde::Serialize;

use super::evaluate::{iou_thresholds, IOU_STEPS, RECALL_STEPS};
use super::{Evaluation, AREA_RANGES, MAX_DETECTIONS};

/// pycocotools' `stats`, in its order; `None` where nothing defines the figure (pycocotools prints -1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// AP at IoU 0.50:0.95, all areas, 100 detections: "mAP".
    pub map: Option<f64>,
    pub map_50: Option<f64>,
    pub map_75: Option<f64>,
    pub map_small: Option<f64>,
    pub map_medium: Option<f64>,
    pub map_large: Option<f64>,
    /// Average recall at IoU 0.50:0.95, all areas, at most 1, 10 and 100 detections.
    pub mar_1: Option<f64>,
    pub mar_10: Option<f64>,
    pub mar_100: Option<f64>,
    pub mar_small: Option<f64>,
    pub mar_medium: Option<f64>,
    pub mar_large: Option<f64>,
}

/// One category's AP at IoU 0.50:0.95, all areas, 100 detections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassAp {
    pub category_id: u64,
    /// `None` when the category has no counted ground truth in the set.
    pub ap: Option<f64>,
}

/// Which IoU thresholds a figure averages over.
#[derive(Clone, Copy)]
enum Iou {
    All,
    At(f64),
}

const ALL_AREAS: usize = 0;
const MOST_DETECTIONS: usize = MAX_DETECTIONS.len() - 1;

/// The mean of the defined values (those above -1); `None` when there are none.
fn mean_defined(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .filter(|&v| v > -1.0)
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

impl Evaluation {
    fn thresholds(iou: Iou) -> Vec<usize> {
        match iou {
            Iou::All => (0..IOU_STEPS).collect(),
            Iou::At(x) => iou_thresholds()
                .iter()
                .position(|&t| t == x)
                .into_iter()
                .collect(),
        }
    }

    /// Mean precision over the chosen thresholds, every recall point and every category in `ks`.
    fn average_precision(&self, iou: Iou, ks: &[usize], a: usize, m: usize) -> Option<f64> {
        let ts = Self::thresholds(iou);
        mean_defined(ts.iter().flat_map(|&t| {
            (0..RECALL_STEPS)
                .flat_map(move |r| ks.iter().map(move |&k| self.precision(t, r, k, a, m)))
        }))
    }

    fn average_recall(&self, a: usize, m: usize) -> Option<f64> {
        let ks = 0..self.categories.len();
        mean_defined((0..IOU_STEPS).flat_map(|t| ks.clone().map(move |k| self.recall(t, k, a, m))))
    }

    /// pycocotools' twelve figures.
    pub fn summary(&self) -> Summary {
        let every: Vec<usize> = (0..self.categories.len()).collect();
        let ap = |iou, a| self.average_precision(iou, &every, a, MOST_DETECTIONS);
        Summary {
            map: ap(Iou::All, ALL_AREAS),
            map_50: ap(Iou::At(0.5), ALL_AREAS),
            map_75: ap(Iou::At(0.75), ALL_AREAS),
            map_small: ap(Iou::All, 1),
            map_medium: ap(Iou::All, 2),
            map_large: ap(Iou::All, 3),
            mar_1: self.average_recall(ALL_AREAS, 0),
            mar_10: self.average_recall(ALL_AREAS, 1),
            mar_100: self.average_recall(ALL_AREAS, MOST_DETECTIONS),
            mar_small: self.average_recall(1, MOST_DETECTIONS),
            mar_medium: self.average_recall(2, MOST_DETECTIONS),
            mar_large: self.average_recall(3, MOST_DETECTIONS),
        }
    }

    /// Each category's AP, in ascending category id.
    pub fn per_class(&self) -> Vec<ClassAp> {
        self.categories
            .iter()
            .enumerate()
            .map(|(k, &category_id)| ClassAp {
                category_id,
                ap: self.average_precision(Iou::All, &[k], ALL_AREAS, MOST_DETECTIONS),
            })
            .collect()
    }
}

impl Summary {
    /// The figures with pycocotools' own wording, one per line (`-1.000` where undefined), as its
    /// `summarize()` prints them.
    pub fn lines(&self) -> Vec<String> {
        let row = |ap: bool, iou: &str, area: &str, dets: usize, v: Option<f64>| {
            let (title, kind) = if ap {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            format!(
                " {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6} | maxDets={dets:>3} ] = {:.3}",
                v.unwrap_or(-1.0)
            )
        };
        let [_, _, most] = MAX_DETECTIONS;
        vec![
            row(true, "0.50:0.95", "all", most, self.map),
            row(true, "0.50", "all", most, self.map_50),
            row(true, "0.75", "all", most, self.map_75),
            row(true, "0.50:0.95", "small", most, self.map_small),
            row(true, "0.50:0.95", "medium", most, self.map_medium),
            row(true, "0.50:0.95", "large", most, self.map_large),
            row(false, "0.50:0.95", "all", MAX_DETECTIONS[0], self.mar_1),
            row(false, "0.50:0.95", "all", MAX_DETECTIONS[1], self.mar_10),
            row(false, "0.50:0.95", "all", most, self.mar_100),
            row(false, "0.50:0.95", "small", most, self.mar_small),
            row(false, "0.50:0.95", "medium", most, self.mar_medium),
            row(false, "0.50:0.95", "large", most, self.mar_large),
        ]
    }
}

const _: () = assert!(AREA_RANGES.len() == 4, "summary names four area ranges");
