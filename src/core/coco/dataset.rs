//! A COCO-format annotation file (`instances_*.json`): images, ground-truth boxes and categories, and
//! COCO's result format for detections. Only what box evaluation reads; other keys (segmentation,
//! licences, info) are ignored.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::CocoError;

#[derive(Debug, Clone, Deserialize)]
pub struct Dataset {
    pub images: Vec<ImageEntry>,
    #[serde(default)]
    pub annotations: Vec<GroundTruth>,
    pub categories: Vec<Category>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageEntry {
    pub id: u64,
    pub file_name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GroundTruth {
    #[serde(default)]
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    /// `[x, y, width, height]` in pixels.
    pub bbox: [f64; 4],
    /// The object's area (its segmentation's, in COCO), which decides its area range; the box's
    /// when absent.
    #[serde(default)]
    pub area: Option<f64>,
    #[serde(default, deserialize_with = "zero_or_one")]
    pub iscrowd: bool,
}

impl GroundTruth {
    pub fn area(&self) -> f64 {
        self.area.unwrap_or(self.bbox[2] * self.bbox[3])
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Category {
    pub id: u64,
    pub name: String,
}

/// One detection in COCO's result format (what pycocotools' `loadRes` reads).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredBox {
    pub image_id: u64,
    pub category_id: u64,
    /// `[x, y, width, height]` in pixels.
    pub bbox: [f64; 4],
    pub score: f64,
}

impl ScoredBox {
    pub fn area(&self) -> f64 {
        self.bbox[2] * self.bbox[3]
    }
}

/// `iscrowd` as COCO writes it (0 or 1), or a boolean.
fn zero_or_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Number(u8),
        Bool(bool),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Number(0) => Ok(false),
        Flag::Number(1) => Ok(true),
        Flag::Number(n) => Err(serde::de::Error::custom(format!(
            "iscrowd is {n}; expected 0 or 1"
        ))),
    }
}

impl Dataset {
    /// Parses and checks an annotation file: ids unique, every annotation on a listed image and
    /// category, boxes finite with no negative side.
    pub fn from_json(bytes: &[u8]) -> Result<Dataset, CocoError> {
        let dataset: Dataset = serde_json::from_slice(bytes).map_err(CocoError::Parse)?;
        dataset.check()?;
        Ok(dataset)
    }

    fn check(&self) -> Result<(), CocoError> {
        let invalid = |message: String| Err(CocoError::Invalid(message));
        let mut images = HashSet::new();
        for image in &self.images {
            if !images.insert(image.id) {
                return invalid(format!("image id {} is listed twice", image.id));
            }
        }
        let mut categories = HashSet::new();
        for category in &self.categories {
            if !categories.insert(category.id) {
                return invalid(format!("category id {} is listed twice", category.id));
            }
        }
        for (i, a) in self.annotations.iter().enumerate() {
            if !images.contains(&a.image_id) {
                return invalid(format!(
                    "annotations[{i}] is on image {}, which images does not list",
                    a.image_id
                ));
            }
            if !categories.contains(&a.category_id) {
                return invalid(format!(
                    "annotations[{i}] has category {}, which categories does not list",
                    a.category_id
                ));
            }
            let [_, _, w, h] = a.bbox;
            if a.bbox.iter().any(|v| !v.is_finite()) || w < 0.0 || h < 0.0 {
                return invalid(format!(
                    "annotations[{i}] has bbox {:?}: expected finite [x, y, width, height], no side negative",
                    a.bbox
                ));
            }
            if a.area.is_some_and(|area| !area.is_finite() || area < 0.0) {
                return invalid(format!(
                    "annotations[{i}] has a negative or non-finite area"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Dataset, CocoError> {
        Dataset::from_json(text.as_bytes())
    }

    #[test]
    fn reads_what_box_evaluation_needs_and_ignores_the_rest() {
        let d = parse(
            r#"{"info": {}, "licenses": [],
                "images": [{"id": 7, "file_name": "a.jpg", "width": 10, "height": 10, "license": 3}],
                "annotations": [{"id": 1, "image_id": 7, "category_id": 2, "bbox": [1, 2, 3, 4],
                                 "area": 9.5, "iscrowd": 1, "segmentation": [[1, 2, 3, 4]]},
                                {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 0, 2, 5]}],
                "categories": [{"id": 2, "name": "bicycle", "supercategory": "vehicle"}]}"#,
        )
        .unwrap();
        assert_eq!(d.images[0].file_name, "a.jpg");
        assert!(d.annotations[0].iscrowd && !d.annotations[1].iscrowd);
        assert_eq!(d.annotations[0].area(), 9.5, "the annotation's own area");
        assert_eq!(d.annotations[1].area(), 10.0, "the box's when absent");
        assert_eq!(d.categories[0].name, "bicycle");
    }

    #[test]
    fn inconsistent_files_are_refused_with_the_reason() {
        let image = r#"{"id": 1, "file_name": "a.jpg"}"#;
        let cat = r#"{"id": 1, "name": "person"}"#;
        let file = |images: &str, anns: &str, cats: &str| {
            format!(r#"{{"images": [{images}], "annotations": [{anns}], "categories": [{cats}]}}"#)
        };
        let ann = |image: u32, cat: u32, bbox: &str| {
            format!(r#"{{"id": 1, "image_id": {image}, "category_id": {cat}, "bbox": {bbox}}}"#)
        };
        for (text, expected) in [
            (
                file(&format!("{image}, {image}"), "", cat),
                "image id 1 is listed twice",
            ),
            (
                file(image, "", &format!("{cat}, {cat}")),
                "category id 1 is listed twice",
            ),
            (file(image, &ann(2, 1, "[0, 0, 1, 1]"), cat), "on image 2"),
            (
                file(image, &ann(1, 5, "[0, 0, 1, 1]"), cat),
                "has category 5",
            ),
            (
                file(image, &ann(1, 1, "[0, 0, -1, 1]"), cat),
                "no side negative",
            ),
            (
                file(image, &ann(1, 1, "[0, 0, 1]"), cat),
                "not a COCO annotation file",
            ),
            ("[]".to_string(), "not a COCO annotation file"),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let crowd = file(
            image,
            r#"{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 2}"#,
            cat,
        );
        assert!(parse(&crowd).is_err());
    }
}
