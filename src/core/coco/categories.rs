//! Which annotation-file category each of the model's classes is: by the manifest's `category_ids`
//! when it gives them, otherwise by name (a model trained on other classes).

use std::collections::HashMap;

use super::{CocoError, Dataset};
use crate::core::manifest::Manifest;

/// The dataset category id of each class index; `None` for a class the dataset does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryMap {
    ids: Vec<Option<u64>>,
    /// Whether the classes met the categories through `category_ids` (else by name).
    pub by_id: bool,
}

impl CategoryMap {
    /// Meets `manifest`'s classes with `dataset`'s categories; an error when none meet.
    pub fn between(manifest: &Manifest, dataset: &Dataset) -> Result<CategoryMap, CocoError> {
        let map = match &manifest.category_ids {
            Some(ids) => {
                let known: std::collections::HashSet<u64> =
                    dataset.categories.iter().map(|c| c.id).collect();
                CategoryMap {
                    ids: ids
                        .iter()
                        .map(|id| known.contains(id).then_some(*id))
                        .collect(),
                    by_id: true,
                }
            }
            None => {
                let by_name: HashMap<String, u64> = dataset
                    .categories
                    .iter()
                    .map(|c| (name_key(&c.name), c.id))
                    .collect();
                CategoryMap {
                    ids: manifest
                        .labels
                        .iter()
                        .map(|label| by_name.get(&name_key(label)).copied())
                        .collect(),
                    by_id: false,
                }
            }
        };
        if map.matched() == 0 {
            return Err(CocoError::Invalid(format!(
                "none of the model's {} classes is a category of the annotation file ({}); {}",
                manifest.labels.len(),
                if map.by_id {
                    "by the manifest's category_ids"
                } else {
                    "by name"
                },
                "is it the annotation file for this model's classes?"
            )));
        }
        Ok(map)
    }

    /// The COCO category of each class by the manifest's `category_ids`, without an annotation file;
    /// `None` when the manifest has none.
    pub fn of_manifest(manifest: &Manifest) -> Option<CategoryMap> {
        Some(CategoryMap {
            ids: manifest
                .category_ids
                .as_ref()?
                .iter()
                .copied()
                .map(Some)
                .collect(),
            by_id: true,
        })
    }

    /// The category of class `class_id`, when the dataset has it.
    pub fn category(&self, class_id: usize) -> Option<u64> {
        self.ids.get(class_id).copied().flatten()
    }

    /// How many of the model's classes are categories of the dataset.
    pub fn matched(&self) -> usize {
        self.ids.iter().flatten().count()
    }
}

/// COCO's supercategory of a category id of its 80 detection classes (`person`, `vehicle`, `animal`,
/// ...), as the annotation files' `categories` give it; `None` for an id that is not one of them.
pub fn supercategory(coco_id: u64) -> Option<&'static str> {
    Some(match coco_id {
        1 => "person",
        2..=9 => "vehicle",
        10 | 11 | 13..=15 => "outdoor",
        16..=25 => "animal",
        27 | 28 | 31..=33 => "accessory",
        34..=43 => "sports",
        44 | 46..=51 => "kitchen",
        52..=61 => "food",
        62..=65 | 67 | 70 => "furniture",
        72..=77 => "electronic",
        78..=82 => "appliance",
        84..=90 => "indoor",
        _ => return None,
    })
}

/// Names meet whatever their case and surrounding spaces.
fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_80_coco_ids_have_their_supercategory_and_the_gaps_none() {
        let known: Vec<u64> = (1..=90).filter(|&id| supercategory(id).is_some()).collect();
        assert_eq!(known.len(), 80);
        for gap in [12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 0, 91] {
            assert_eq!(supercategory(gap), None, "{gap}");
        }
        assert_eq!(supercategory(17), Some("animal"), "cat");
        assert_eq!(supercategory(70), Some("furniture"), "toilet");
        assert_eq!(supercategory(72), Some("electronic"), "tv");
    }

    fn manifest(category_ids: Option<&str>) -> Manifest {
        let ids = category_ids.map_or(String::new(), |ids| format!("category_ids = {ids}\n"));
        Manifest::from_toml(&format!(
            r#"name = "m"
version = "1"
labels = ["person", "Dog", "rocket"]
{ids}[input]
width = 32
height = 32
color = "rgb"
resize = "stretch"
[decoder]
family = "yolov8"
output = 0
"#
        ))
        .unwrap()
    }

    fn dataset() -> Dataset {
        Dataset::from_json(
            br#"{"images": [], "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"},
                                             {"id": 44, "name": "bottle"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn category_ids_decide_when_the_manifest_gives_them() {
        // Ids win over names: class 0 "person" is given 44 here.
        let map = CategoryMap::between(&manifest(Some("[44, 18, 99]")), &dataset()).unwrap();
        assert!(map.by_id);
        assert_eq!(
            (map.category(0), map.category(1), map.category(2)),
            (Some(44), Some(18), None)
        );
        assert_eq!(map.matched(), 2);
        assert_eq!(map.category(3), None, "no such class");
    }

    #[test]
    fn names_meet_whatever_their_case_without_ids() {
        let map = CategoryMap::between(&manifest(None), &dataset()).unwrap();
        assert!(!map.by_id);
        assert_eq!(
            (map.category(0), map.category(1), map.category(2)),
            (Some(1), Some(18), None)
        );
    }

    #[test]
    fn no_class_in_common_is_an_error_that_says_how_they_were_met() {
        let err = CategoryMap::between(&manifest(Some("[2, 3, 4]")), &dataset()).unwrap_err();
        assert!(
            err.to_string().contains("none of the model's 3 classes"),
            "{err}"
        );
        assert!(err.to_string().contains("category_ids"), "{err}");
        let other =
            Dataset::from_json(br#"{"images": [], "categories": [{"id": 1, "name": "cell"}]}"#)
                .unwrap();
        let err = CategoryMap::between(&manifest(None), &other).unwrap_err();
        assert!(err.to_string().contains("by name"), "{err}");
    }
}
