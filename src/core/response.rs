//! The public response body (see docs/api.md, "Response"): the Lambda and the CLI emit exactly this.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Deserialize: `detect --format coco` reads back the lines it wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub model: ModelRef,
    pub image: ImageSize,
    pub detections: Vec<Detection>,
    pub timings_ms: Timings,
    /// The annotated picture, when the options asked for one. Never serialized here: each front end
    /// delivers it its own way (the response body, base64 in `annotated_image`, a file).
    #[serde(skip)]
    pub annotated: Option<AnnotatedImage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub input_width: u32,
    pub input_height: u32,
}

/// Size of the upright image (after EXIF orientation): the frame boxes refer to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Detection {
    pub label: String,
    pub class_id: usize,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: BoundingBox,
}

/// Pixels of the upright image; `x_max`/`y_max` are exclusive edges (a full-image box is `0, 0, w, h`).
/// With `box_format=normalized`, fractions of its width and height instead (a full-image box is
/// `0, 0, 1, 1`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct BoundingBox {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    pub decode: f64,
    pub preprocess: f64,
    pub inference: f64,
    pub postprocess: f64,
    /// Drawing and encoding the annotated picture; only when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotate: Option<f64>,
    pub total: f64,
}

impl Response {
    /// Every box as fractions of the image's width and height instead of pixels.
    pub fn normalize_boxes(&mut self) {
        let (w, h) = (self.image.width as f32, self.image.height as f32);
        for d in &mut self.detections {
            let b = &mut d.bbox;
            *b = BoundingBox {
                x_min: (b.x_min / w).clamp(0.0, 1.0),
                y_min: (b.y_min / h).clamp(0.0, 1.0),
                x_max: (b.x_max / w).clamp(0.0, 1.0),
                y_max: (b.y_max / h).clamp(0.0, 1.0),
            };
        }
    }
}

/// A duration in milliseconds, rounded to the microsecond: how every reported duration is written
/// (`timings_ms`, the log line, the init line).
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// An f32 as the decimal it stands for, to six places, in an f64: 0.35, not 0.3499999940395355
/// (settings and scores written outside the response, where serde would print the f32 widened).
pub fn decimal(v: f32) -> f64 {
    (f64::from(v) * 1e6).round() / 1e6
}

/// The encoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotatedImage {
    pub bytes: Vec<u8>,
    pub encoding: Encoding,
    pub width: u32,
    pub height: u32,
}

/// How the annotated picture is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Jpeg,
    Png,
}

impl Encoding {
    /// `jpeg` (or `jpg`) and `png`, any case.
    pub fn from_name(name: &str) -> Option<Encoding> {
        match name.trim().to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Some(Encoding::Jpeg),
            "png" => Some(Encoding::Png),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Jpeg => "image/jpeg",
            Encoding::Png => "image/png",
        }
    }

    /// The file extension the CLI writes.
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Jpeg => "jpg",
            Encoding::Png => "png",
        }
    }
}
