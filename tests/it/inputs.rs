//! The core on every accepted format and on bad input: what a caller sends, what they get back.

use crate::common::{encode, int8, jpeg_rotated_with_exif_6, read};
use image::{DynamicImage, ImageFormat, RgbImage};
use object_detector::{DecodeLimits, DetectOptions, Error};

fn chelsea() -> DynamicImage {
    image::load_from_memory(&read("tests/images/chelsea.png")).unwrap()
}

fn detect(bytes: &[u8]) -> Result<object_detector::Response, Error> {
    int8().detect(bytes, &DetectOptions::default())
}

fn top_label(bytes: &[u8]) -> String {
    let r = detect(bytes).unwrap();
    r.detections
        .first()
        .map(|d| d.label.clone())
        .unwrap_or_default()
}

#[test]
fn every_supported_format_finds_the_cat() {
    let img = chelsea();
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::WebP,
        ImageFormat::Bmp,
    ] {
        assert_eq!(top_label(&encode(&img, format)), "cat", "{format:?}");
    }
    // GIF is palette-quantised; the cat survives it.
    assert_eq!(
        top_label(&encode(
            &DynamicImage::ImageRgba8(img.to_rgba8()),
            ImageFormat::Gif
        )),
        "cat"
    );
    // Greyscale, 16-bit and alpha variants decode to the same picture.
    assert_eq!(
        top_label(&encode(
            &DynamicImage::ImageRgb16(img.to_rgb16()),
            ImageFormat::Png
        )),
        "cat"
    );
    assert_eq!(
        top_label(&encode(
            &DynamicImage::ImageRgba8(img.to_rgba8()),
            ImageFormat::Png
        )),
        "cat"
    );
    let r = detect(&encode(
        &DynamicImage::ImageLuma8(img.to_luma8()),
        ImageFormat::Png,
    ))
    .unwrap();
    assert_eq!((r.image.width, r.image.height), (451, 300));
}

#[test]
fn an_animated_gif_is_read_from_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let cat = chelsea().to_rgba8();
    let blank = image::RgbaImage::from_pixel(451, 300, image::Rgba([128, 128, 128, 255]));
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut bytes);
        enc.encode_frames(
            [cat, blank].map(|f| Frame::from_parts(f, 0, 0, Delay::from_numer_denom_ms(100, 1))),
        )
        .unwrap();
    }
    assert_eq!(top_label(&bytes), "cat");
}

/// A JPEG whose pixels are stored rotated, with the EXIF tag that turns them upright, must give the same
/// detections in the same (upright) frame as the upright photo.
#[test]
fn exif_rotated_photo_gives_boxes_in_the_upright_frame() {
    let upright = chelsea();
    let plain = detect(&encode(&upright, ImageFormat::Jpeg)).unwrap();
    // Orientation 6 means "rotate 90 degrees clockwise to display": store the photo rotated the other way.
    let bytes = jpeg_rotated_with_exif_6(&upright);
    let rotated = detect(&bytes).unwrap();
    assert_eq!((rotated.image.width, rotated.image.height), (451, 300));
    let (a, b) = (&plain.detections[0], &rotated.detections[0]);
    assert_eq!((a.label.as_str(), b.label.as_str()), ("cat", "cat"));
    let ab = [a.bbox.x_min, a.bbox.y_min, a.bbox.x_max, a.bbox.y_max];
    let bb = [b.bbox.x_min, b.bbox.y_min, b.bbox.x_max, b.bbox.y_max];
    let overlap = object_detector::core::nms::iou(&ab, &bb);
    assert!(overlap > 0.9, "IoU {overlap}: {ab:?} vs {bb:?}");
}

#[test]
fn boxes_lie_inside_the_image_and_come_best_first() {
    for name in ["astronaut", "chelsea", "coffee", "camera"] {
        let options = DetectOptions {
            score_threshold: Some(0.05),
            ..Default::default()
        };
        let r = int8()
            .detect(&read(&format!("tests/images/{name}.png")), &options)
            .unwrap();
        assert!(r.detections.len() > 3, "{name}: {}", r.detections.len());
        assert!(
            r.detections.windows(2).all(|w| w[0].score >= w[1].score),
            "{name}: not sorted"
        );
        let (w, h) = (r.image.width as f32, r.image.height as f32);
        for d in &r.detections {
            let b = d.bbox;
            assert!(
                0.0 <= b.x_min && b.x_min <= b.x_max && b.x_max <= w,
                "{name}: {b:?}"
            );
            assert!(
                0.0 <= b.y_min && b.y_min <= b.y_max && b.y_max <= h,
                "{name}: {b:?}"
            );
            assert!(d.score >= 0.05 && d.score <= 1.0);
        }
    }
}

#[test]
fn options_change_what_is_reported() {
    let bytes = read("tests/images/camera.png");
    let all = int8()
        .detect(
            &bytes,
            &DetectOptions {
                score_threshold: Some(0.2),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(all.detections.iter().any(|d| d.label != "person"));
    let people = DetectOptions {
        score_threshold: Some(0.2),
        classes: Some(vec!["person".into()]),
        ..Default::default()
    };
    let only = int8().detect(&bytes, &people).unwrap();
    assert!(!only.detections.is_empty() && only.detections.iter().all(|d| d.label == "person"));
    let one = DetectOptions {
        score_threshold: Some(0.2),
        max_detections: Some(1),
        ..Default::default()
    };
    assert_eq!(int8().detect(&bytes, &one).unwrap().detections.len(), 1);
    let strict = DetectOptions {
        score_threshold: Some(0.99),
        ..Default::default()
    };
    assert!(int8()
        .detect(&bytes, &strict)
        .unwrap()
        .detections
        .is_empty());
    // A zero threshold is legal and bounded by max_detections.
    let zero = DetectOptions {
        score_threshold: Some(0.0),
        ..Default::default()
    };
    assert_eq!(int8().detect(&bytes, &zero).unwrap().detections.len(), 100);
}

#[test]
fn tiny_and_extreme_images_run() {
    for (w, h) in [(1, 1), (2, 3), (5000, 1), (1, 5000), (416, 416), (417, 415)] {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, image::Rgb([90, 140, 200])));
        let r = detect(&encode(&img, ImageFormat::Png)).unwrap();
        assert_eq!((r.image.width, r.image.height), (w, h));
    }
}

#[test]
fn bad_bytes_get_their_codes() {
    let jpeg = read("tests/images/chelsea.jpg");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "empty_image"),
        (
            "text",
            b"hello, this is not an image".to_vec(),
            "not_an_image",
        ),
        ("json", br#"{"image": "aGVsbG8="}"#.to_vec(), "not_an_image"),
        (
            "jpeg magic then noise",
            [&[0xFF, 0xD8, 0xFF][..], &[0x13; 500]].concat(),
            "invalid_image",
        ),
        (
            "truncated jpeg",
            jpeg[..jpeg.len() / 2].to_vec(),
            "invalid_image",
        ),
        (
            "jpeg missing its last byte",
            jpeg[..jpeg.len() - 1].to_vec(),
            "invalid_image",
        ),
        (
            "png signature only",
            b"\x89PNG\r\n\x1a\n".to_vec(),
            "invalid_image",
        ),
        (
            "tiff",
            b"MM\0\x2a\0\0\0\x08\0\0".to_vec(),
            "unsupported_format",
        ),
    ];
    for (what, bytes, code) in cases {
        let err = detect(&bytes).unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err}");
        assert!(err.is_client_error());
    }
    // Every supported format, cut in half: an error, never a panic or a half-grey detection.
    let img = chelsea();
    for format in [
        ImageFormat::Png,
        ImageFormat::WebP,
        ImageFormat::Gif,
        ImageFormat::Bmp,
    ] {
        let bytes = encode(&img, format);
        let err = detect(&bytes[..bytes.len() / 2]).unwrap_err();
        assert_eq!(err.code(), "invalid_image", "{format:?}: {err}");
    }
}

#[test]
fn huge_dimensions_are_refused_from_the_header_for_every_format() {
    let small = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3])));
    // JPEG: patch the frame header (SOF0: FF C0, len, precision, height, width).
    let mut jpeg = encode(&small, ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000 x 60000
                                                                       // GIF: logical screen and image descriptor sizes.
    let mut gif = encode(&small, ImageFormat::Gif);
    gif[6..10].copy_from_slice(&[0x60, 0xEA, 0x60, 0xEA]);
    let desc = gif.iter().position(|&b| b == 0x2C).unwrap();
    gif[desc + 5..desc + 9].copy_from_slice(&[0x60, 0xEA, 0x60, 0xEA]);
    // BMP: BITMAPINFOHEADER width and height at 18 and 22.
    let mut bmp = encode(&small, ImageFormat::Bmp);
    bmp[18..22].copy_from_slice(&30_000i32.to_le_bytes());
    bmp[22..26].copy_from_slice(&30_000i32.to_le_bytes());
    for (what, bytes) in [("jpeg", jpeg), ("gif", gif), ("bmp", bmp)] {
        let err = detect(&bytes).unwrap_err();
        assert_eq!(err.code(), "image_too_large", "{what}: {err}");
    }
    // The budget is configurable and applies to real photos too.
    // On the shared plan: limits need no second build.
    let tight = int8().sharing_plan(DecodeLimits {
        max_pixels: 100_000,
        ..DecodeLimits::default()
    });
    let err = tight
        .detect(&read("tests/images/chelsea.jpg"), &DetectOptions::default())
        .unwrap_err();
    assert_eq!(err.code(), "image_too_large");
    assert!(err.to_string().contains("451x300"), "{err}");
}

#[test]
fn bad_options_are_refused_before_decoding() {
    let err = int8()
        .detect(
            b"not an image",
            &DetectOptions {
                iou_threshold: Some(2.0),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_parameter");
    assert!(err.to_string().contains("iou_threshold"));
}

#[test]
fn the_response_serialises_to_the_public_contract() {
    let r = detect(&read("tests/images/chelsea.jpg")).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["model"]["name"], "picodet-s-416-coco");
    assert_eq!(v["model"]["input_width"], 416);
    assert_eq!(v["image"], serde_json::json!({"width": 451, "height": 300}));
    let d = &v["detections"][0];
    assert_eq!(d["label"], "cat");
    assert_eq!(d["class_id"], 15);
    for k in ["x_min", "y_min", "x_max", "y_max"] {
        assert!(d["box"][k].is_f64(), "{k}");
    }
    for k in ["decode", "preprocess", "inference", "postprocess", "total"] {
        assert!(v["timings_ms"][k].as_f64().unwrap() >= 0.0, "{k}");
    }
    let t = &v["timings_ms"];
    let parts: f64 = ["decode", "preprocess", "inference", "postprocess"]
        .iter()
        .map(|k| t[k].as_f64().unwrap())
        .sum();
    assert!(parts <= t["total"].as_f64().unwrap() + 0.01);
}

/// Corrupted files of every format (random byte flips, cuts and splices, fixed seed): the decoder must
/// answer with an error or an image, never panic. Inference input is always well-formed, so decoding is
/// where hostile bytes can reach.
#[test]
fn corrupted_files_never_panic_the_decoder() {
    use object_detector::core::image_decode::decode;
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, 77])
    }));
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let limits = DecodeLimits::default();
    let mut outcomes = [0usize; 2];
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::WebP,
        ImageFormat::Gif,
        ImageFormat::Bmp,
    ] {
        let clean = encode(&img, format);
        for _ in 0..400 {
            let mut bytes = clean.clone();
            match next() % 3 {
                0 => {
                    for _ in 0..1 + next() % 8 {
                        let i = (next() as usize) % bytes.len();
                        bytes[i] ^= 1 << (next() % 8);
                    }
                }
                1 => bytes.truncate(1 + (next() as usize) % bytes.len()),
                _ => {
                    let i = (next() as usize) % bytes.len();
                    let junk: Vec<u8> = (0..1 + next() % 64).map(|_| next() as u8).collect();
                    bytes.splice(i..i, junk);
                }
            }
            outcomes[usize::from(decode(&bytes, &limits).is_ok())] += 1;
        }
    }
    assert!(
        outcomes[0] > 100,
        "corruptions should mostly be refused: {outcomes:?}"
    );
}

/// A camera-sized JPEG decodes at 1/8 scale in the DCT domain; the detections match a full decode and
/// are reported in full-size pixels.
#[test]
fn large_jpegs_decode_at_reduced_scale_with_boxes_in_full_size_pixels() {
    use object_detector::core::image_decode::{decode, decode_at_least};
    let big = chelsea().resize_exact(451 * 8, 300 * 8, image::imageops::FilterType::Triangle);
    let bytes = encode(&big, ImageFormat::Jpeg);
    let limits = DecodeLimits::default();
    let scaled = decode_at_least(&bytes, &limits, |w, h| (w / 8, h / 8)).unwrap();
    assert_eq!(scaled.rgb.dimensions(), (451, 300));
    assert_eq!((scaled.width, scaled.height), (3608, 2400));

    let fast = detect(&bytes).unwrap();
    assert_eq!((fast.image.width, fast.image.height), (3608, 2400));
    let full = decode(&bytes, &limits).unwrap();
    assert_eq!(full.rgb.dimensions(), (3608, 2400));
    let slow = int8()
        .detect_rgb(&full.rgb, &DetectOptions::default())
        .unwrap();
    let (a, b) = (&fast.detections[0], &slow.detections[0]);
    assert_eq!((a.label.as_str(), b.label.as_str()), ("cat", "cat"));
    let ab = [a.bbox.x_min, a.bbox.y_min, a.bbox.x_max, a.bbox.y_max];
    let bb = [b.bbox.x_min, b.bbox.y_min, b.bbox.x_max, b.bbox.y_max];
    assert!(
        object_detector::core::nms::iou(&ab, &bb) > 0.95,
        "{ab:?} vs {bb:?}"
    );
    assert!(
        (a.score - b.score).abs() < 0.05,
        "{} vs {}",
        a.score,
        b.score
    );
    assert!(ab[2] > 3000.0, "boxes are in full-size pixels: {ab:?}");

    // Stored rotated with EXIF orientation 6: scaled along the stored axes, reported upright.
    let rotated = jpeg_rotated_with_exif_6(&big);
    let scaled = decode_at_least(&rotated, &limits, |w, h| (w / 8, h / 8)).unwrap();
    assert_eq!(
        (scaled.rgb.dimensions(), scaled.width, scaled.height),
        ((451, 300), 3608, 2400)
    );
    let r = detect(&rotated).unwrap();
    let c = &r.detections[0];
    let cb = [c.bbox.x_min, c.bbox.y_min, c.bbox.x_max, c.bbox.y_max];
    assert_eq!(c.label, "cat");
    assert!(
        object_detector::core::nms::iou(&ab, &cb) > 0.9,
        "{ab:?} vs {cb:?}"
    );
}
