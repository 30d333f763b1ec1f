//! Shared by the integration tests: the detectors (built once per test binary) and file helpers.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use image::{DynamicImage, ImageFormat};
use object_detector::core::embedded;
use object_detector::core::engine::f32_values;
use object_detector::{DetectOptions, Detector, Manifest};
use serde_json::Value;

/// The largest absolute difference between two raw outputs of the same shape (`what` names them).
pub fn largest_difference(
    a: &tract_onnx::prelude::Tensor,
    b: &tract_onnx::prelude::Tensor,
    what: &str,
) -> f32 {
    assert_eq!(a.shape(), b.shape(), "{what}: shape");
    let (a, b) = (f32_values(a).unwrap(), f32_values(b).unwrap());
    a.iter()
        .zip(b.iter())
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max)
}

/// The generated decoder-test models in tests/models (tools/make_test_models.py), one per family or
/// layout.
pub const FAMILIES: [&str; 7] = [
    "gfl",
    "nanodet_plus",
    "yolox",
    "yolov8",
    "tf_od_api",
    "onnx_nms",
    "detr",
];

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> Vec<u8> {
    let p: PathBuf = root().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The embedded (int8) model, as the Lambda and the CLI run it: built once for every test.
pub fn int8() -> &'static Detector {
    int8_shared()
}

/// [`int8`] to hand to an `App`.
pub fn int8_shared() -> &'static Arc<Detector> {
    static D: OnceLock<Arc<Detector>> = OnceLock::new();
    D.get_or_init(|| Arc::new(Detector::embedded().expect("embedded model loads")))
}

/// tests/golden/detections.json (tools/reference.py): the reference pipeline's goldens for the
/// embedded model, with the files they were made from.
pub fn goldens() -> &'static Value {
    static G: OnceLock<Value> = OnceLock::new();
    G.get_or_init(|| serde_json::from_slice(&read("tests/golden/detections.json")).unwrap())
}

/// The embedded model's fp32 twin with the embedded manifest: what the reference outputs were made with.
pub fn fp32() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| {
        let manifest = Manifest::from_toml(embedded::MANIFEST).unwrap();
        let file = goldens()["fp32_model"].as_str().unwrap();
        Detector::new(&read(file), manifest).expect("fp32 model loads")
    })
}

/// `detector` (loaded from tests/models/{name}) finds on tests/models/input.png what the numpy
/// reference found (tests/models/expected.json): same labels, scores within 1e-4, boxes within 0.02 px,
/// best first.
pub fn assert_matches_decoder_reference(name: &str, detector: &Detector) {
    let expected: Value = serde_json::from_slice(&read("tests/models/expected.json")).unwrap();
    let image = read("tests/models/input.png");
    let want = expected[name].as_array().unwrap();
    assert!(
        !want.is_empty(),
        "{name}: the reference finds nothing to compare"
    );
    let got = detector
        .detect(&image, &DetectOptions::default())
        .unwrap()
        .detections;
    assert_eq!(got.len(), want.len(), "{name}: detection count");
    let mut unmatched: Vec<_> = got.iter().collect();
    for w in want {
        let bbox = |k: &str| w["box"][k].as_f64().unwrap() as f32;
        let wb = [bbox("x_min"), bbox("y_min"), bbox("x_max"), bbox("y_max")];
        let pos = unmatched.iter().position(|g| {
            let gb = [g.bbox.x_min, g.bbox.y_min, g.bbox.x_max, g.bbox.y_max];
            g.label == w["label"].as_str().unwrap()
                && (g.score - w["score"].as_f64().unwrap() as f32).abs() < 1e-4
                && gb.iter().zip(wb).all(|(a, b)| (a - b).abs() < 0.02)
        });
        match pos {
            Some(i) => {
                unmatched.remove(i);
            }
            None => panic!("{name}: reference detection {w} not found in {got:?}"),
        }
    }
    // Best first, as the reference.
    assert!(got.windows(2).all(|p| p[0].score >= p[1].score), "{name}");
}

/// `img` encoded in `format`.
pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// `upright` stored rotated 90 degrees counter-clockwise, as a JPEG whose EXIF orientation 6 ("rotate 90
/// degrees clockwise to display") turns it upright again: what a phone held sideways writes.
pub fn jpeg_rotated_with_exif_6(upright: &DynamicImage) -> Vec<u8> {
    let stored = encode(&upright.rotate270(), ImageFormat::Jpeg);
    // An APP1 segment: "Exif", a big-endian TIFF header, one IFD entry: tag 0x0112 (orientation) = 6.
    let tiff = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0";
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1];
    bytes.extend_from_slice(&((tiff.len() + 2) as u16).to_be_bytes());
    bytes.extend_from_slice(tiff);
    bytes.extend_from_slice(&stored[2..]);
    bytes
}
