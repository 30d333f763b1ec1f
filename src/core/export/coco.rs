//! Detections in COCO's result format (`[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`,
//! what pycocotools' `loadRes` reads).

use crate::core::coco::{CategoryMap, ScoredBox};
use crate::core::response::Response;

/// One image's detections as COCO results, those of classes the dataset has.
pub fn results<'a>(
    image_id: u64,
    response: &'a Response,
    categories: &'a CategoryMap,
) -> impl Iterator<Item = ScoredBox> + 'a {
    response.detections.iter().filter_map(move |d| {
        let b = &d.bbox;
        Some(ScoredBox {
            image_id,
            category_id: categories.category(d.class_id)?,
            bbox: [
                f64::from(b.x_min),
                f64::from(b.y_min),
                f64::from(b.x_max - b.x_min),
                f64::from(b.y_max - b.y_min),
            ],
            score: f64::from(d.score),
        })
    })
}
