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
        let (x0, y0, x1, y1) = (
            decimal(b.x_min),
            decimal(b.y_min),
            decimal(b.x_max),
            decimal(b.y_max),
        );
        Some(ScoredBox {
            image_id,
            category_id: categories.category(d.class_id)?,
            bbox: [x0, y0, round(x1 - x0), round(y1 - y0)],
            score: decimal(d.score),
        })
    })
}

/// An f32 as the shortest decimal that reads back as it (what the API's JSON shows: 409.63, not
/// 409.6300048828125).
fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// A width or height from two such decimals, without the binary remainder of the subtraction.
fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The image id of a file without an annotation file to look it up in: the last run of digits in its
/// name (`000000397133.jpg` is 397133, `IMG_0042.jpg` is 42), as COCO's and most datasets' file names
/// carry it; a name without digits (or with more than 15) gets a stable id from a hash of the name,
/// below 2^53 so every JSON reader keeps it exact.
pub fn image_id(file_name: &str) -> u64 {
    let name = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let digits: String = stem
        .chars()
        .rev()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if !digits.is_empty() && digits.len() <= 15 {
        if let Ok(id) = digits.parse() {
            return id;
        }
    }
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash & ((1 << 53) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_come_from_the_number_in_the_name() {
        assert_eq!(image_id("000000397133.jpg"), 397133);
        assert_eq!(image_id("val2017/000000000139.jpg"), 139);
        assert_eq!(image_id("IMG_0042.JPG"), 42);
        assert_eq!(image_id("photo-12-v3.png"), 3);
        assert_eq!(image_id("cat.jpg"), image_id("other/cat.jpg"));
        assert_ne!(image_id("cat.jpg"), image_id("dog.jpg"));
        assert!(image_id("cat.jpg") < 1 << 53);
        assert!(image_id("1234567890123456789.jpg") < 1 << 53);
    }
}
