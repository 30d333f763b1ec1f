//! Per-request options: what a caller may tune, their ranges, and their parsing from text (query strings,
//! form fields, CLI flags), so every front end validates them the same way.

use crate::core::annotate::Spec;
use crate::core::error::{quote, Error, Result};
use crate::core::manifest::Manifest;
use crate::core::response::Encoding;

/// Upper bound of `max_detections`, whatever the model's default.
pub const MAX_DETECTIONS_LIMIT: usize = 1000;

/// Most labels one `classes` option may list.
pub const MAX_CLASSES: usize = 256;

/// Most images one request may carry (TF Serving's `instances`): they run one after another on the
/// warm plan, so this bounds the work a single request asks for within Lambda's 6 MB.
pub const MAX_IMAGES_PER_REQUEST: usize = 16;

/// Defaults and ranges of the annotated image's options.
pub const ANNOTATE_MAX_SIDE_DEFAULT: u32 = 1280;
pub const ANNOTATE_MAX_SIDE_RANGE: std::ops::RangeInclusive<u32> = 64..=4096;
pub const JPEG_QUALITY_DEFAULT: u32 = 85;

/// What a response carries: the JSON detections, or the annotated picture itself in an [`Encoding`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Json,
    Picture(Encoding),
}

impl Format {
    pub const NAMES: [&'static str; 3] = ["json", "jpeg", "png"];

    pub fn from_name(name: &str) -> Option<Format> {
        match name.trim().to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            other => Encoding::from_name(other).map(Format::Picture),
        }
    }

    /// The picture's encoding, for the image formats.
    pub fn encoding(self) -> Option<Encoding> {
        match self {
            Format::Json => None,
            Format::Picture(encoding) => Some(encoding),
        }
    }
}

/// How boxes are written: pixels of the upright image (the default), or fractions of its width and
/// height.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BoxFormat {
    #[default]
    Pixels,
    Normalized,
}

impl BoxFormat {
    pub const NAMES: [&'static str; 2] = ["pixels", "normalized"];

    pub fn from_name(name: &str) -> Option<BoxFormat> {
        match name.trim().to_ascii_lowercase().as_str() {
            "pixels" => Some(BoxFormat::Pixels),
            "normalized" => Some(BoxFormat::Normalized),
            _ => None,
        }
    }
}

/// Options as the caller gave them; `None` means the model's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectOptions {
    pub score_threshold: Option<f32>,
    pub iou_threshold: Option<f32>,
    pub max_detections: Option<usize>,
    /// Labels to keep; others are never reported.
    pub classes: Option<Vec<String>>,
    /// `json` (default), or the annotated picture as the whole answer.
    pub format: Option<Format>,
    /// With JSON: add the annotated picture, base64 JPEG, as `annotated_image`.
    pub annotate: Option<bool>,
    /// The annotated picture's longer side at most.
    pub annotate_max_side: Option<u32>,
    pub jpeg_quality: Option<u32>,
    /// Boxes in pixels (default) or as fractions of the image.
    pub box_format: Option<BoxFormat>,
}

/// Options checked against a model, ready for the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub score_threshold: f32,
    pub iou_threshold: f32,
    pub max_detections: usize,
    pub class_mask: Option<Vec<bool>>,
    pub format: Format,
    /// The picture to draw: for `format` jpeg or png, or `annotate` with JSON.
    pub annotation: Option<Spec>,
    pub box_format: BoxFormat,
}

impl DetectOptions {
    /// The option names accepted by [`DetectOptions::set`], for error messages and docs.
    pub const NAMES: [&'static str; 9] = [
        "score_threshold",
        "iou_threshold",
        "max_detections",
        "classes",
        "format",
        "annotate",
        "annotate_max_side",
        "jpeg_quality",
        "box_format",
    ];

    /// Sets one option from its text form; `classes` is comma-separated.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let value = value.trim();
        match name {
            "score_threshold" => self.score_threshold = Some(parse_unit(name, value)?),
            "iou_threshold" => self.iou_threshold = Some(parse_unit(name, value)?),
            "max_detections" => self.max_detections = Some(parse_whole(name, value)?),
            "classes" => {
                let names: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
                if names.len() > MAX_CLASSES {
                    return Err(Error::parameter(
                        name,
                        format!("{} labels; at most {MAX_CLASSES}", names.len()),
                    ));
                }
                self.classes = Some(names)
            }
            "format" => {
                self.format = Some(Format::from_name(value).ok_or_else(|| {
                    Error::parameter(
                        name,
                        format!(
                            "expected one of {}, got {}",
                            Format::NAMES.join(", "),
                            quote(value)
                        ),
                    )
                })?)
            }
            "annotate" => {
                self.annotate = Some(parse_switch(value).ok_or_else(|| {
                    Error::parameter(
                        name,
                        format!("expected true or false, got {}", quote(value)),
                    )
                })?)
            }
            "annotate_max_side" => self.annotate_max_side = Some(parse_whole(name, value)?),
            "jpeg_quality" => self.jpeg_quality = Some(parse_whole(name, value)?),
            "box_format" => {
                self.box_format = Some(BoxFormat::from_name(value).ok_or_else(|| {
                    Error::parameter(
                        name,
                        format!(
                            "expected one of {}, got {}",
                            BoxFormat::NAMES.join(", "),
                            quote(value)
                        ),
                    )
                })?)
            }
            other => return Err(Self::unknown("option", other, &[])),
        }
        Ok(())
    }

    /// Sets one option from a JSON value: a string, number or boolean as [`DetectOptions::set`] reads its
    /// text; `classes` also as a list of label strings; `null` leaves it unset.
    pub fn set_json(&mut self, name: &str, value: serde_json::Value) -> Result<()> {
        use serde_json::Value;
        let text = match value {
            Value::Null => return Ok(()),
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Array(items) if name == "classes" => items
                .iter()
                .map(|i| i.as_str())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::parameter(name, "must be a list of label strings"))?
                .join(","),
            other => {
                return Err(Error::parameter(
                    name,
                    format!(
                        "expected a string, number or boolean, got {}",
                        match other {
                            Value::Array(_) => "an array",
                            _ => "an object",
                        }
                    ),
                ))
            }
        };
        self.set(name, &text)
    }

    /// The error for `name` where an option was expected in `source` (a query parameter, a JSON field, a
    /// form field), listing what is accepted there: the options, after the names in `also`.
    pub fn unknown(source: &str, name: &str, also: &[&str]) -> Error {
        let accepted: Vec<&str> = also.iter().chain(&Self::NAMES).copied().collect();
        Error::parameter(
            name,
            format!("unknown {source}; accepted: {}", accepted.join(", ")),
        )
    }

    /// Fills every option not set here from `other` (used to merge a body's options over the query's).
    pub fn or(self, other: DetectOptions) -> DetectOptions {
        DetectOptions {
            score_threshold: self.score_threshold.or(other.score_threshold),
            iou_threshold: self.iou_threshold.or(other.iou_threshold),
            max_detections: self.max_detections.or(other.max_detections),
            classes: self.classes.or(other.classes),
            format: self.format.or(other.format),
            annotate: self.annotate.or(other.annotate),
            annotate_max_side: self.annotate_max_side.or(other.annotate_max_side),
            jpeg_quality: self.jpeg_quality.or(other.jpeg_quality),
            box_format: self.box_format.or(other.box_format),
        }
    }

    pub fn resolve(&self, manifest: &Manifest) -> Result<Resolved> {
        let d = &manifest.defaults;
        let score_threshold = check_unit(
            "score_threshold",
            self.score_threshold.unwrap_or(d.score_threshold),
        )?;
        let iou_threshold = check_unit(
            "iou_threshold",
            self.iou_threshold.unwrap_or(d.iou_threshold),
        )?;
        let max_detections = self.max_detections.unwrap_or(d.max_detections);
        if !(1..=MAX_DETECTIONS_LIMIT).contains(&max_detections) {
            return Err(Error::parameter(
                "max_detections",
                format!("must be within 1..={MAX_DETECTIONS_LIMIT}, got {max_detections}"),
            ));
        }
        let class_mask = match &self.classes {
            None => None,
            Some(names) => Some(class_mask(names, &manifest.labels)?),
        };
        let format = self.format.unwrap_or_default();
        Ok(Resolved {
            score_threshold,
            iou_threshold,
            max_detections,
            class_mask,
            format,
            annotation: self.annotation(format)?,
            box_format: self.box_format.unwrap_or_default(),
        })
    }

    /// The picture to draw: for `format` jpeg or png, or `annotate` with JSON (a JPEG).
    fn annotation(&self, format: Format) -> Result<Option<Spec>> {
        let max_side = self.annotate_max_side.unwrap_or(ANNOTATE_MAX_SIDE_DEFAULT);
        if !ANNOTATE_MAX_SIDE_RANGE.contains(&max_side) {
            return Err(Error::parameter(
                "annotate_max_side",
                format!(
                    "must be within {}..={}, got {max_side}",
                    ANNOTATE_MAX_SIDE_RANGE.start(),
                    ANNOTATE_MAX_SIDE_RANGE.end()
                ),
            ));
        }
        let jpeg_quality = self.jpeg_quality.unwrap_or(JPEG_QUALITY_DEFAULT);
        if !(1..=100).contains(&jpeg_quality) {
            return Err(Error::parameter(
                "jpeg_quality",
                format!("must be within 1..=100, got {jpeg_quality}"),
            ));
        }
        let encoding = match (format.encoding(), self.annotate) {
            (Some(encoding), _) => Some(encoding),
            (None, Some(true)) => Some(Encoding::Jpeg),
            (None, _) => None,
        };
        Ok(encoding.map(|encoding| Spec {
            encoding,
            max_side,
            jpeg_quality: jpeg_quality as u8,
            max_bytes: None,
        }))
    }
}

/// The labels `names` asks for (any case, blanks ignored) as a mask over `labels`; an unknown name or
/// none at all is an error.
fn class_mask(names: &[String], labels: &[String]) -> Result<Vec<bool>> {
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err(Error::parameter(
            "classes",
            "names no label; omit it to keep every class",
        ));
    }
    let mut mask = vec![false; labels.len()];
    for name in names {
        let id = labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::parameter(
                    "classes",
                    format!(
                        "unknown label {}; see GET /model for the labels",
                        quote(name)
                    ),
                )
            })?;
        mask[id] = true;
    }
    Ok(mask)
}

/// A whole number (as text) that fits its option's type; the range is checked at resolve.
fn parse_whole<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| {
        Error::parameter(
            name,
            format!("expected a whole number, got {}", quote(value)),
        )
    })
}

fn parse_unit(name: &str, value: &str) -> Result<f32> {
    value.parse::<f32>().map_err(|_| {
        Error::parameter(
            name,
            format!("expected a number within 0..=1, got {}", quote(value)),
        )
    })
}

fn check_unit(name: &str, v: f32) -> Result<f32> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(Error::parameter(
            name,
            format!("must be within 0..=1, got {v}"),
        ))
    }
}

/// A yes-or-no value as the options and the settings take it: `true`/`on`/`yes`/`1` or
/// `false`/`off`/`no`/`0`, any case, spaces around ignored.
pub fn parse_switch(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_switch_parser_for_options_and_settings() {
        for yes in ["true", "ON", " yes ", "1"] {
            assert_eq!(parse_switch(yes), Some(true), "{yes:?}");
        }
        for no in ["False", "off", "NO", "0"] {
            assert_eq!(parse_switch(no), Some(false), "{no:?}");
        }
        for neither in ["", "maybe", "2", "y"] {
            assert_eq!(parse_switch(neither), None, "{neither:?}");
        }
    }

    fn manifest() -> Manifest {
        Manifest::from_toml(include_str!("../../model/nanodet-g-416.toml")).unwrap()
    }

    #[test]
    fn defaults_come_from_the_manifest() {
        let r = DetectOptions::default().resolve(&manifest()).unwrap();
        assert_eq!(
            r,
            Resolved {
                score_threshold: 0.35,
                iou_threshold: 0.6,
                max_detections: 100,
                class_mask: None,
                format: Format::Json,
                annotation: None,
                box_format: BoxFormat::Pixels,
            }
        );
    }

    #[test]
    fn text_values_parse_and_bad_ones_name_the_parameter_and_value() {
        let mut o = DetectOptions::default();
        o.set("score_threshold", " 0.5 ").unwrap();
        o.set("max_detections", "7").unwrap();
        o.set("classes", "person, Traffic Light").unwrap();
        o.set("box_format", "Normalized").unwrap();
        let r = o.resolve(&manifest()).unwrap();
        assert_eq!((r.score_threshold, r.max_detections), (0.5, 7));
        assert_eq!(r.box_format, BoxFormat::Normalized);
        let mask = r.class_mask.unwrap();
        assert!(mask[0] && mask[9] && mask.iter().filter(|m| **m).count() == 2);

        for (name, value, needle) in [
            ("score_threshold", "abc", "\"abc\""),
            ("iou_threshold", "", "\"\""),
            ("max_detections", "-3", "\"-3\""),
            ("max_detections", "2.5", "\"2.5\""),
            ("box_format", "fractions", "normalized"),
            ("colour", "red", "unknown option"),
        ] {
            let err = DetectOptions::default().set(name, value).unwrap_err();
            assert_eq!(err.code(), "invalid_parameter");
            let msg = err.to_string();
            assert!(msg.contains(name) && msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let m = manifest();
        let cases = [
            DetectOptions {
                score_threshold: Some(1.5),
                ..Default::default()
            },
            DetectOptions {
                score_threshold: Some(f32::NAN),
                ..Default::default()
            },
            DetectOptions {
                iou_threshold: Some(-0.1),
                ..Default::default()
            },
            DetectOptions {
                max_detections: Some(0),
                ..Default::default()
            },
            DetectOptions {
                max_detections: Some(MAX_DETECTIONS_LIMIT + 1),
                ..Default::default()
            },
            DetectOptions {
                classes: Some(vec!["unicorn".into()]),
                ..Default::default()
            },
            DetectOptions {
                classes: Some(vec![" ".into()]),
                ..Default::default()
            },
        ];
        for o in cases {
            let err = o.resolve(&m).unwrap_err();
            assert_eq!(err.code(), "invalid_parameter", "{o:?}");
        }
        let err = DetectOptions {
            classes: Some(vec!["unicorn".into()]),
            ..Default::default()
        }
        .resolve(&m)
        .unwrap_err();
        assert!(err.to_string().contains("unicorn"));
    }

    #[test]
    fn or_prefers_self_and_fills_from_other() {
        let body = DetectOptions {
            score_threshold: Some(0.5),
            ..Default::default()
        };
        let query = DetectOptions {
            score_threshold: Some(0.1),
            max_detections: Some(3),
            ..Default::default()
        };
        let merged = body.or(query);
        assert_eq!(
            (merged.score_threshold, merged.max_detections),
            (Some(0.5), Some(3))
        );
    }

    #[test]
    fn annotation_options_choose_the_picture_and_are_range_checked() {
        let m = manifest();
        let resolve = |pairs: &[(&str, &str)]| {
            let mut o = DetectOptions::default();
            for (k, v) in pairs {
                o.set(k, v)?;
            }
            o.resolve(&m)
        };
        let png = resolve(&[("format", "PNG"), ("annotate_max_side", "640")]).unwrap();
        assert_eq!(png.format, Format::Picture(Encoding::Png));
        let spec = png.annotation.unwrap();
        assert_eq!(
            (spec.encoding, spec.max_side, spec.jpeg_quality),
            (Encoding::Png, 640, 85)
        );
        // JSON with annotate: a JPEG beside the detections; JSON alone: no picture.
        let with = resolve(&[("annotate", "true"), ("jpeg_quality", "70")]).unwrap();
        assert_eq!(with.format, Format::Json);
        let spec = with.annotation.unwrap();
        assert_eq!(
            (spec.encoding, spec.max_side, spec.jpeg_quality),
            (Encoding::Jpeg, 1280, 70)
        );
        assert_eq!(resolve(&[("annotate", "false")]).unwrap().annotation, None);
        assert_eq!(resolve(&[]).unwrap().annotation, None);
        for (name, value) in [
            ("format", "gif"),
            ("annotate", "maybe"),
            ("annotate_max_side", "63"),
            ("annotate_max_side", "4097"),
            ("annotate_max_side", "big"),
            ("jpeg_quality", "0"),
            ("jpeg_quality", "101"),
            ("jpeg_quality", "300"),
        ] {
            let err = resolve(&[(name, value)]).unwrap_err();
            assert_eq!(err.code(), "invalid_parameter", "{name}={value}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
