//! Annotated pictures from the real pipeline: the picture is the upright photo at the asked size, and
//! every reported box is drawn where the JSON says, in its class's colour.

use image::{DynamicImage, ImageFormat, RgbImage};
use object_detector::core::annotate::{class_colour, PixelBox, Style};
use object_detector::core::options::Format;
use object_detector::core::response::Encoding;
use object_detector::{DetectOptions, Response};

use crate::common::{encode, int8, jpeg_rotated_with_exif_6, read};

fn annotated(bytes: &[u8], options: DetectOptions) -> (Response, RgbImage) {
    let response = int8().detect(bytes, &options).unwrap();
    let picture = response
        .annotated
        .as_ref()
        .expect("a picture was asked for");
    let rgb = image::load_from_memory(&picture.bytes).unwrap().to_rgb8();
    assert_eq!(rgb.dimensions(), (picture.width, picture.height));
    (response, rgb)
}

fn png(max_side: Option<u32>) -> DetectOptions {
    DetectOptions {
        format: Some(Format::Picture(Encoding::Png)),
        annotate_max_side: max_side,
        ..Default::default()
    }
}

/// Every detection's left edge, at mid-height of the box, is in its class's colour (PNG: exact pixels),
/// unless a better detection's box or a tab was drawn over that spot.
fn assert_boxes_drawn(response: &Response, picture: &RgbImage) {
    let (w, h) = picture.dimensions();
    let scale = (
        w as f32 / response.image.width as f32,
        h as f32 / response.image.height as f32,
    );
    assert!(!response.detections.is_empty());
    let style = Style::for_canvas(w, h);
    let mut checked = 0;
    for d in &response.detections {
        let b = PixelBox::of(d, scale, (w, h)).unwrap();
        let y = (b.y0 + b.y1) / 2;
        let px = picture.get_pixel(b.x0, y).0;
        let inner = picture.get_pixel(b.x0 + style.line - 1, y).0;
        if px == class_colour(d.class_id) && inner == px {
            checked += 1;
        }
    }
    // The best detection is drawn last, so its box is always intact.
    let best = &response.detections[0];
    let b = PixelBox::of(best, scale, (w, h)).unwrap();
    assert_eq!(
        picture.get_pixel(b.x0, (b.y0 + b.y1) / 2).0,
        class_colour(best.class_id),
        "best box {b:?}"
    );
    assert!(checked * 2 >= response.detections.len(), "{checked} drawn");
}

#[test]
fn the_picture_is_the_photo_with_its_boxes() {
    let bytes = read("tests/images/chelsea.png");
    let (response, picture) = annotated(&bytes, png(None));
    assert_eq!(picture.dimensions(), (451, 300));
    assert_boxes_drawn(&response, &picture);
    assert!(response.timings_ms.annotate.is_some());
    // The JSON without a picture reports the same detections.
    let plain = int8().detect(&bytes, &DetectOptions::default()).unwrap();
    assert_eq!(plain.detections, response.detections);
    assert!(plain.annotated.is_none() && plain.timings_ms.annotate.is_none());
}

#[test]
fn annotate_max_side_scales_the_picture_and_its_boxes() {
    let bytes = read("tests/images/astronaut.png"); // 512x512
    let (response, picture) = annotated(&bytes, png(Some(128)));
    assert_eq!(picture.dimensions(), (128, 128));
    assert_boxes_drawn(&response, &picture);
    // A large JPEG: the picture is at the asked size, boxes scaled from image pixels.
    let chelsea = image::load_from_memory(&read("tests/images/chelsea.png")).unwrap();
    let large = chelsea.resize_exact(2706, 1800, image::imageops::FilterType::Triangle);
    let (response, picture) = annotated(&encode(&large, ImageFormat::Jpeg), png(Some(902)));
    assert_eq!((response.image.width, response.image.height), (2706, 1800));
    assert_eq!(picture.dimensions(), (902, 600));
    assert_boxes_drawn(&response, &picture);
}

#[test]
fn an_exif_rotated_photo_is_annotated_upright() {
    let chelsea: DynamicImage = image::load_from_memory(&read("tests/images/chelsea.png")).unwrap();
    let tall = chelsea.rotate90(); // a portrait photo, 300x451 upright
    let bytes = jpeg_rotated_with_exif_6(&tall);
    let (response, picture) = annotated(&bytes, png(None));
    assert_eq!((response.image.width, response.image.height), (300, 451));
    assert_eq!(picture.dimensions(), (300, 451));
    assert_boxes_drawn(&response, &picture);
}

#[test]
fn jpeg_pictures_and_their_quality() {
    let bytes = read("tests/images/coffee.jpg");
    let options = |q| DetectOptions {
        format: Some(Format::Picture(Encoding::Jpeg)),
        jpeg_quality: Some(q),
        ..Default::default()
    };
    let high = int8().detect(&bytes, &options(95)).unwrap();
    let low = int8().detect(&bytes, &options(30)).unwrap();
    let (high, low) = (high.annotated.unwrap(), low.annotated.unwrap());
    assert_eq!(image::guess_format(&high.bytes).unwrap(), ImageFormat::Jpeg);
    assert!(
        low.bytes.len() * 2 < high.bytes.len(),
        "{} vs {}",
        low.bytes.len(),
        high.bytes.len()
    );
}
