//! The model manifest: everything the pipeline needs to know about a detector besides its weights.
//!
//! Pre-processing, output decoding, labels and default thresholds live here rather than in code, so the
//! embedded model and a user's own export travel the same path. The format is TOML; `model/README.md`
//! documents every key.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::core::error::{Error, Result};
use crate::core::heads::HeadSpec;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Reported in every response as `model.name`.
    pub name: String,
    /// Reported in every response as `model.version`.
    pub version: String,
    /// The ONNX file, relative to the manifest; used when the manifest is embedded at build time.
    #[serde(default)]
    pub file: Option<String>,
    pub input: InputSpec,
    /// The model's detection head: the `[decoder]` table.
    #[serde(rename = "decoder")]
    pub head: HeadSpec,
    #[serde(default)]
    pub defaults: Defaults,
    /// One label per class index of the model's class dimension.
    pub labels: Vec<String>,
    /// The COCO category id of each label, in label order (COCO's 1..=90 with gaps for its 80 classes):
    /// what COCO-format outputs and `detect eval` write. Absent for a model trained on other classes;
    /// its labels then meet an annotation file's categories by name.
    #[serde(default)]
    pub category_ids: Option<Vec<u64>>,
    /// Free-form provenance (source, licence, sha256...), reported by `GET /model`.
    #[serde(default)]
    pub provenance: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The ONNX input to feed; defaults to the model's first input.
    #[serde(default)]
    pub name: Option<String>,
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub layout: Layout,
    /// Channel order the model expects.
    pub color: ColorOrder,
    /// Multiplier applied to 0..255 pixel values before mean and std (1/255 for 0..1 models).
    #[serde(default = "one")]
    pub scale: f32,
    /// Per input channel, in the model's channel order: `v = (pixel * scale - mean) / std`.
    #[serde(default)]
    pub mean: [f32; 3],
    #[serde(default = "ones")]
    pub std: [f32; 3],
    pub resize: ResizeMode,
    /// Value (0..255, before normalisation) of the letterbox padding.
    #[serde(default)]
    pub pad_value: u8,
    #[serde(default)]
    pub filter: Filter,
}

fn one() -> f32 {
    1.0
}

fn ones() -> [f32; 3] {
    [1.0; 3]
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Keep the aspect ratio, centre the image, pad both sides (NanoDet).
    LetterboxCenter,
    /// Keep the aspect ratio, paste at the top-left corner, pad right and bottom (YOLOX).
    LetterboxTopLeft,
    /// Scale each axis independently to the input size (PicoDet).
    Stretch,
}

/// Resampling filter. Downscaling filters are area-aware (anti-aliased), as PIL's are.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    Nearest,
    #[default]
    Bilinear,
    Bicubic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub score_threshold: f32,
    pub iou_threshold: f32,
    pub max_detections: usize,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            score_threshold: 0.35,
            iou_threshold: 0.6,
            max_detections: 100,
        }
    }
}

impl Manifest {
    pub fn from_toml(text: &str) -> Result<Self> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| Error::invalid_model("manifest").caused_by(e))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what can be checked without the model; shapes are checked against the model at load.
    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid_model(format!("manifest: {msg}")));
        let i = &self.input;
        if !(1..=4096).contains(&i.width) || !(1..=4096).contains(&i.height) {
            return bad(format!(
                "input size {}x{} is outside 1..=4096",
                i.width, i.height
            ));
        }
        if !i.scale.is_finite() || i.scale <= 0.0 {
            return bad(format!("input.scale must be positive, got {}", i.scale));
        }
        if i.mean.iter().any(|m| !m.is_finite())
            || i.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
        {
            return bad("input.mean must be finite and input.std positive".into());
        }
        if self.labels.is_empty() {
            return bad("labels is empty".into());
        }
        if let Some(ids) = &self.category_ids {
            check_category_ids(ids, self.labels.len()).or_else(bad)?;
        }
        let d = &self.defaults;
        if !(0.0..=1.0).contains(&d.score_threshold) || !(0.0..=1.0).contains(&d.iou_threshold) {
            return bad("defaults: thresholds must be within 0..=1".into());
        }
        if d.max_detections == 0 {
            return bad("defaults.max_detections must be at least 1".into());
        }
        self.head.check().or_else(bad)
    }

    /// The COCO category id of class `class_id`, when the manifest gives them.
    pub fn category_id(&self, class_id: usize) -> Option<u64> {
        self.category_ids.as_ref()?.get(class_id).copied()
    }

    /// Index of a label, as used by the class filter.
    pub fn class_id(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }
}

/// One positive id per label, none twice.
fn check_category_ids(ids: &[u64], labels: usize) -> std::result::Result<(), String> {
    if ids.len() != labels {
        return Err(format!(
            "category_ids has {} ids for {labels} labels; give one per label",
            ids.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, &id) in ids.iter().enumerate() {
        if id == 0 {
            return Err(format!("category_ids[{i}] is 0; category ids start at 1"));
        }
        if !seen.insert(id) {
            return Err(format!("category_ids gives {id} to two labels"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NANODET_G: &str = include_str!("../../model/nanodet-g-416.toml");

    #[test]
    fn nanodet_g_manifest_parses() {
        let m = Manifest::from_toml(NANODET_G).unwrap();
        assert_eq!(m.labels.len(), 80);
        assert_eq!(m.class_id("person"), Some(0));
        assert_eq!(m.class_id("toothbrush"), Some(79));
        assert_eq!((m.category_id(0), m.category_id(11)), (Some(1), Some(13)));
        assert_eq!(m.category_id(79), Some(90));
        assert_eq!((m.input.width, m.input.height), (416, 416));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_the_reason() {
        // What is reported: the error with its cause (the TOML parser's words).
        use crate::core::error::chain;
        let typo = NANODET_G.replacen("reg_max", "regmax", 1);
        let err = chain(&Manifest::from_toml(&typo).unwrap_err());
        assert!(err.contains("regmax"), "{err}");

        let bad_std = NANODET_G.replacen("std = [57.375", "std = [0.0", 1);
        let err = chain(&Manifest::from_toml(&bad_std).unwrap_err());
        assert!(err.contains("std"), "{err}");

        let both = NANODET_G.replacen("reg_max = 10", "reg_max = 10\noutput = 0", 1);
        let err = chain(&Manifest::from_toml(&both).unwrap_err());
        assert!(err.contains("either `output`"), "{err}");

        let offset = NANODET_G.replacen("reg_max = 10", "reg_max = 10\ncell_offset = 2.0", 1);
        let err = chain(&Manifest::from_toml(&offset).unwrap_err());
        assert!(err.contains("cell_offset"), "{err}");

        let short = NANODET_G.replacen("1, 2, 3, 4,", "2, 3, 4,", 1);
        let err = chain(&Manifest::from_toml(&short).unwrap_err());
        assert!(err.contains("79 ids for 80 labels"), "{err}");
        let twice = NANODET_G.replacen("1, 2, 3, 4,", "1, 1, 3, 4,", 1);
        let err = chain(&Manifest::from_toml(&twice).unwrap_err());
        assert!(err.contains("gives 1 to two labels"), "{err}");
        let zero = NANODET_G.replacen("1, 2, 3, 4,", "0, 2, 3, 4,", 1);
        let err = chain(&Manifest::from_toml(&zero).unwrap_err());
        assert!(err.contains("category_ids[0] is 0"), "{err}");
        let start = NANODET_G.find("category_ids = [").unwrap();
        let end = start + NANODET_G[start..].find("]\n").unwrap() + 2;
        let without = format!("{}{}", &NANODET_G[..start], &NANODET_G[end..]);
        let m = Manifest::from_toml(&without).expect("category_ids is optional");
        assert_eq!(m.category_id(0), None);

        let mismatched = NANODET_G.replacen("strides = [8, 16, 32]", "strides = [8, 16]", 1);
        let err = chain(&Manifest::from_toml(&mismatched).unwrap_err());
        assert!(err.contains("2 strides"), "{err}");
    }
}
