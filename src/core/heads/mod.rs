//! Detection heads: a model's raw outputs to scored candidate boxes. One file per family owns all of
//! it: the family's `[decoder]` keys in the manifest, what it checks before the model is loaded, the
//! shape checks against the loaded model's outputs, and the decoding itself. Adding a family is one file
//! and one arm in [`HeadSpec`].
//!
//! Everything here works in model-input pixels; mapping to image pixels happens after NMS, as upstream
//! NanoDet does, so suppression does not depend on the image's size.

use std::borrow::Cow;

use serde::Deserialize;
use tract_onnx::prelude::TValue;

use crate::core::engine::{f32_values, OutputFacts};
use crate::core::error::{Error, Result};

mod boxes_scores;
mod detr;
mod gfl;
mod shared;
mod yolov8;
mod yolox;

pub use shared::GridLevel;

/// The manifest's `[decoder]` table: which head family the model has, and that family's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum HeadSpec {
    Gfl(gfl::GflSpec),
    Yolox(yolox::YoloxSpec),
    Yolov8(yolov8::Yolov8Spec),
    BoxesScores(boxes_scores::BoxesScoresSpec),
    Detr(detr::DetrSpec),
}

impl HeadSpec {
    /// The `family` key, as written in the manifest.
    pub fn family(&self) -> &'static str {
        match self {
            HeadSpec::Gfl(_) => "gfl",
            HeadSpec::Yolox(_) => "yolox",
            HeadSpec::Yolov8(_) => "yolov8",
            HeadSpec::BoxesScores(_) => "boxes_scores",
            HeadSpec::Detr(_) => "detr",
        }
    }

    fn spec(&self) -> &dyn Family {
        match self {
            HeadSpec::Gfl(s) => s,
            HeadSpec::Yolox(s) => s,
            HeadSpec::Yolov8(s) => s,
            HeadSpec::BoxesScores(s) => s,
            HeadSpec::Detr(s) => s,
        }
    }

    /// What can be checked without the model; the message names the offending key.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.spec().check()
    }

    /// Resolves output references and checks every shape the decoding relies on, so a wrong model or
    /// manifest fails at start-up instead of on a request.
    pub fn resolve(&self, model: &ModelFacts<'_>) -> Result<Box<dyn Head>> {
        self.spec().resolve(model)
    }
}

/// What a head is resolved against.
#[derive(Debug, Clone, Copy)]
pub struct ModelFacts<'a> {
    pub outputs: &'a OutputFacts,
    /// One per label.
    pub classes: usize,
    pub input_width: u32,
    pub input_height: u32,
}

/// A family's manifest keys.
trait Family {
    fn check(&self) -> std::result::Result<(), String>;
    fn resolve(&self, model: &ModelFacts<'_>) -> Result<Box<dyn Head>>;
}

/// A head resolved against a loaded model: output positions known, shapes checked.
pub trait Head: std::fmt::Debug + Send + Sync {
    /// Scored boxes for the classes `p` wants, at or above its threshold, before NMS.
    fn candidates(&self, outputs: &[TValue], p: &Params<'_>) -> Result<Vec<Candidate>>;

    /// True for a head that predicts a set (DETR: one query per object, trained without duplicates):
    /// its candidates go out as they are, best first, without suppression.
    fn predicts_a_set(&self) -> bool {
        false
    }
}

/// One scored box for one class, in model-input pixels (`[x_min, y_min, x_max, y_max]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub class_id: usize,
    pub score: f32,
    pub bbox: [f32; 4],
}

/// What the heads need besides the tensors.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    pub score_threshold: f32,
    /// `class_mask[c]` is false for classes the caller filtered out; `None` keeps all.
    pub class_mask: Option<&'a [bool]>,
    pub input_width: u32,
    pub input_height: u32,
}

impl Params<'_> {
    /// At or above the threshold; never true for NaN.
    fn passes(&self, score: f32) -> bool {
        score >= self.score_threshold
    }

    fn wants(&self, class_id: usize) -> bool {
        self.class_mask
            .is_none_or(|m| m.get(class_id).copied().unwrap_or(false))
    }
}

/// Output `i`'s values as f32 (see [`f32_values`]).
fn values(outputs: &[TValue], i: usize) -> Result<Cow<'_, [f32]>> {
    let t = outputs
        .get(i)
        .ok_or_else(|| Error::inference(format!("output #{i} is missing")))?;
    f32_values(t).map_err(|e| Error::inference(format!("output #{i}")).caused_by(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `family()` names each variant as the manifest spells it.
    #[test]
    fn family_names_are_the_manifest_keys() {
        for (family, keys) in [
            ("gfl", "strides = [8]\nreg_max = 7\noutput = 0"),
            ("yolox", ""),
            ("yolov8", ""),
            (
                "boxes_scores",
                "boxes = 0\nscores = 1\nclasses = 2\ncoordinates = \"pixels\"",
            ),
            ("detr", "logits = 0\nboxes = 1"),
        ] {
            let spec: HeadSpec = toml::from_str(&format!("family = \"{family}\"\n{keys}")).unwrap();
            assert_eq!(spec.family(), family);
        }
    }
}
