//! COCO's box evaluation, as pycocotools computes it: an annotation file ([`Dataset`]), the model's
//! classes met with its categories ([`CategoryMap`]), detections in COCO's result format ([`ScoredBox`]),
//! and the scores ([`evaluate`] -> [`Evaluation`] -> [`Summary`]), with the precision and recall a score
//! threshold would give ([`Matches`] -> [`OperatingPoint`]).
//!
//! The protocol (pycocotools' `COCOeval` with `iouType="bbox"`): per image and category, detections by
//! descending score (at most 100) are matched greedily to ground truth at each IoU threshold 0.50:0.05:0.95;
//! crowd regions are ignored and may absorb any number of detections; ground truth outside an area range
//! (all, small < 32², medium, large > 96², by the annotation's `area`) is ignored there, as are unmatched
//! detections outside it; precision is interpolated at 101 recall points. The same arithmetic in the same
//! order, so figures agree with pycocotools' to rounding (tools/check_coco_eval.py holds them to it).

mod categories;
mod dataset;
mod evaluate;
mod operating;
mod summary;

pub use categories::{supercategory, CategoryMap};
pub use dataset::{Category, Dataset, GroundTruth, ImageEntry, ScoredBox};
pub use evaluate::{evaluate, Evaluation, AREA_RANGES, MAX_DETECTIONS};
pub use operating::{Matches, OperatingPoint};
pub use summary::{ClassAp, Summary};

/// An annotation file or a class mapping that cannot be used, in words.
#[derive(Debug, thiserror::Error)]
pub enum CocoError {
    #[error("not a COCO annotation file")]
    Parse(#[source] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}
