//! Detections as a YOLO label file: one line per box, `class cx cy w h score`, the class the 0-based
//! index of the model's label, the box's centre and size as fractions of the image (the layout
//! Ultralytics writes with `save_txt` and `save_conf`).

use std::fmt::Write as _;

use crate::core::response::Response;

/// The label file of one image's detections (pixel boxes); empty when nothing was found, as a YOLO
/// dataset has it for an image without objects.
pub fn label_file(response: &Response) -> String {
    let (w, h) = (
        f64::from(response.image.width),
        f64::from(response.image.height),
    );
    let mut text = String::new();
    for d in &response.detections {
        let b = &d.bbox;
        let (x0, y0, x1, y1) = (
            f64::from(b.x_min),
            f64::from(b.y_min),
            f64::from(b.x_max),
            f64::from(b.y_max),
        );
        let _ = writeln!(
            text,
            "{} {:.6} {:.6} {:.6} {:.6} {:.6}",
            d.class_id,
            (x0 + x1) / 2.0 / w,
            (y0 + y1) / 2.0 / h,
            (x1 - x0) / w,
            (y1 - y0) / h,
            d.score
        );
    }
    text
}
