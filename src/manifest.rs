//! The model manifest: everything the pipeline needs to know about a detector besides its weights.
//!
//! Pre-processing, output decoding, labels and default thresholds live here rather than in code, so the
//! embedded model and a user's own export travel the same path. The format is TOML; `model/README.md`
//! documents every key.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

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
    pub decoder: DecoderSpec,
    #[serde(default)]
    pub defaults: Defaults,
    /// One label per class index of the model's class dimension.
    pub labels: Vec<String>,
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

/// A model output, by its ONNX name or its position.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OutputRef {
    Index(usize),
    Name(String),
}

impl std::fmt::Display for OutputRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputRef::Index(i) => write!(f, "output #{i}"),
            OutputRef::Name(n) => write!(f, "output `{n}`"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case", deny_unknown_fields)]
pub enum DecoderSpec {
    /// Generalized Focal Loss heads (NanoDet, PP-PicoDet): per level, class scores `[1, N, C]` (sigmoid
    /// applied) and box distributions `[1, N, 4 * (reg_max + 1)]` decoded by Distribution Focal Loss.
    /// Or one output `[1, sum of cells, C + 4 * (reg_max + 1)]` over every level, class scores first
    /// (the NanoDet-Plus export).
    Gfl {
        strides: Vec<u32>,
        reg_max: u32,
        /// Class-score outputs, one per stride, in stride order.
        #[serde(default)]
        cls: Vec<OutputRef>,
        /// Box-distribution outputs, one per stride, in stride order.
        #[serde(default)]
        reg: Vec<OutputRef>,
        /// The single combined output, instead of `cls` and `reg`.
        #[serde(default)]
        output: Option<OutputRef>,
        /// Cell centres sit at `(col + cell_offset) * stride`: 0.5 for NanoDet legacy and PicoDet, 0 for
        /// NanoDet-Plus.
        #[serde(default = "half")]
        cell_offset: f32,
        /// Locations kept per level, by best class score, before NMS.
        #[serde(default = "default_top_k")]
        top_k_per_level: usize,
    },
    /// YOLOX: one output `[1, N, 5 + C]` over all levels' grid cells (row-major, strides in order); per
    /// row a box, an objectness and C class scores (sigmoid applied). Score = objectness x class score.
    Yolox {
        #[serde(default = "first_output")]
        output: OutputRef,
        #[serde(default = "yolo_strides")]
        strides: Vec<u32>,
        /// How the export writes boxes (see [`YoloxBoxes`]).
        #[serde(default)]
        boxes: YoloxBoxes,
        /// Candidates kept, by score, before NMS.
        #[serde(default = "default_top_k")]
        top_k: usize,
    },
    /// Ultralytics YOLOv8 / YOLO11: one output `[1, 4 + C, N]` (or its transpose `[1, N, 4 + C]`), per
    /// anchor `cx, cy, w, h` in input pixels and C class scores; no objectness.
    Yolov8 {
        #[serde(default = "first_output")]
        output: OutputRef,
        /// Candidates kept, by score, before NMS.
        #[serde(default = "default_top_k")]
        top_k: usize,
    },
    /// Already-decoded detections with NMS done in the graph (TF Object Detection API / SSD exports as
    /// TensorFlow Serving returns them, ONNX `NonMaxSuppression` exports): boxes `[1, N, 4]`, scores
    /// `[1, N]`, classes `[1, N]` and optionally a count of valid rows.
    BoxesScores {
        boxes: OutputRef,
        scores: OutputRef,
        classes: OutputRef,
        /// Number of valid rows (TF's `num_detections`); without it every row is a detection.
        #[serde(default)]
        count: Option<OutputRef>,
        /// Order of the four box values.
        #[serde(default)]
        box_order: BoxOrder,
        /// Whether boxes are fractions of the input size or input pixels.
        coordinates: Coordinates,
        /// Subtracted from a class value to get its label index (1 for TF's 1-based COCO ids).
        #[serde(default)]
        class_offset: i64,
    },
}

impl DecoderSpec {
    /// The `family` key, as written in the manifest.
    pub fn family(&self) -> &'static str {
        match self {
            DecoderSpec::Gfl { .. } => "gfl",
            DecoderSpec::Yolox { .. } => "yolox",
            DecoderSpec::Yolov8 { .. } => "yolov8",
            DecoderSpec::BoxesScores { .. } => "boxes_scores",
        }
    }
}

/// YOLOX box encoding.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum YoloxBoxes {
    /// The default export: `cx = (o0 + col) * s`, `cy = (o1 + row) * s`, `w = exp(o2) * s`, `h = exp(o3) * s`.
    #[default]
    Grid,
    /// Exports with `--decode_in_inference`: `cx, cy, w, h` already in input pixels.
    Decoded,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BoxOrder {
    /// `y_min, x_min, y_max, x_max` (TensorFlow).
    #[default]
    Yxyx,
    /// `x_min, y_min, x_max, y_max`.
    Xyxy,
    /// `cx, cy, w, h`.
    Cxcywh,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Coordinates {
    /// 0..1 fractions of the model input's width and height.
    Normalized,
    /// Model-input pixels.
    Pixels,
}

fn half() -> f32 {
    0.5
}

fn first_output() -> OutputRef {
    OutputRef::Index(0)
}

fn yolo_strides() -> Vec<u32> {
    vec![8, 16, 32]
}

fn default_top_k() -> usize {
    1000
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
            toml::from_str(text).map_err(|e| Error::InvalidModel(format!("manifest: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what can be checked without the model; shapes are checked against the model at load.
    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidModel(format!("manifest: {msg}")));
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
        let d = &self.defaults;
        if !(0.0..=1.0).contains(&d.score_threshold) || !(0.0..=1.0).contains(&d.iou_threshold) {
            return bad("defaults: thresholds must be within 0..=1".into());
        }
        if d.max_detections == 0 {
            return bad("defaults.max_detections must be at least 1".into());
        }
        let top_k_ok = |k: usize| {
            if k == 0 {
                bad("decoder: top_k must be at least 1".into())
            } else {
                Ok(())
            }
        };
        let strides_ok = |strides: &[u32]| {
            if strides.is_empty() || strides.contains(&0) {
                bad("decoder.strides must be non-empty and positive".into())
            } else {
                Ok(())
            }
        };
        match &self.decoder {
            DecoderSpec::Gfl {
                strides,
                reg_max,
                cls,
                reg,
                output,
                cell_offset,
                top_k_per_level,
            } => {
                strides_ok(strides)?;
                if output.is_some() {
                    if !cls.is_empty() || !reg.is_empty() {
                        return bad(
                            "decoder: give either `output` (one combined output) or `cls` and `reg`"
                                .into(),
                        );
                    }
                } else if cls.len() != strides.len() || reg.len() != strides.len() {
                    return bad(format!(
                        "decoder: {} strides need as many cls and reg outputs (got {} and {})",
                        strides.len(),
                        cls.len(),
                        reg.len()
                    ));
                }
                if *reg_max == 0 || *reg_max > 64 {
                    return bad(format!(
                        "decoder.reg_max must be within 1..=64, got {reg_max}"
                    ));
                }
                if !(0.0..=1.0).contains(cell_offset) {
                    return bad(format!(
                        "decoder.cell_offset must be within 0..=1, got {cell_offset}"
                    ));
                }
                top_k_ok(*top_k_per_level)?;
            }
            DecoderSpec::Yolox { strides, top_k, .. } => {
                strides_ok(strides)?;
                top_k_ok(*top_k)?;
            }
            DecoderSpec::Yolov8 { top_k, .. } => top_k_ok(*top_k)?,
            DecoderSpec::BoxesScores { .. } => {}
        }
        Ok(())
    }

    /// Index of a label, as used by the class filter.
    pub fn class_id(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMBEDDED: &str = include_str!("../model/nanodet-g-416.toml");

    #[test]
    fn embedded_manifest_parses() {
        let m = Manifest::from_toml(EMBEDDED).unwrap();
        assert_eq!(m.labels.len(), 80);
        assert_eq!(m.class_id("person"), Some(0));
        assert_eq!(m.class_id("toothbrush"), Some(79));
        assert_eq!((m.input.width, m.input.height), (416, 416));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_the_reason() {
        let typo = EMBEDDED.replacen("reg_max", "regmax", 1);
        let err = Manifest::from_toml(&typo).unwrap_err().to_string();
        assert!(err.contains("regmax"), "{err}");

        let bad_std = EMBEDDED.replacen("std = [57.375", "std = [0.0", 1);
        let err = Manifest::from_toml(&bad_std).unwrap_err().to_string();
        assert!(err.contains("std"), "{err}");

        let both = EMBEDDED.replacen("reg_max = 10", "reg_max = 10\noutput = 0", 1);
        let err = Manifest::from_toml(&both).unwrap_err().to_string();
        assert!(err.contains("either `output`"), "{err}");

        let offset = EMBEDDED.replacen("reg_max = 10", "reg_max = 10\ncell_offset = 2.0", 1);
        let err = Manifest::from_toml(&offset).unwrap_err().to_string();
        assert!(err.contains("cell_offset"), "{err}");

        let mismatched = EMBEDDED.replacen("strides = [8, 16, 32]", "strides = [8, 16]", 1);
        let err = Manifest::from_toml(&mismatched).unwrap_err().to_string();
        assert!(err.contains("2 strides"), "{err}");
    }
}
