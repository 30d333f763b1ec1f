//! Parity with the Python/onnxruntime reference of the embedded model's manifest (tools/reference.py,
//! goldens in tests/golden/, made for the manifest their detections.json names: the embedded one).
//!
//! - Raw outputs: tract vs onnxruntime on the same model-sized input picture, fp32 twin of the embedded
//!   model: max abs diff < 1e-3.
//! - Whole pipeline (decode, resize, inference, decode, NMS, mapping): same labels, IoU >= 0.9,
//!   score within 0.03 of the reference for the fp32 model; the embedded int8 model meets the same bounds
//!   against onnxruntime running the same int8 file, and IoU >= 0.9, score within 0.05 against fp32.

use crate::common::{fp32, goldens, int8, read};
use object_detector::core::embedded;
use object_detector::core::engine::f32_values;
use object_detector::{DetectOptions, Detector, Manifest};
use serde_json::Value;

const PHOTOS: [&str; 5] = ["astronaut", "chelsea", "coffee", "camera", "rocket"];

/// The raw outputs' names and lengths in model order, as the goldens record them.
fn output_lens() -> Vec<(String, usize)> {
    goldens()["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let name = o["name"].as_str().unwrap().to_string();
            (name, o["len"].as_u64().unwrap() as usize)
        })
        .collect()
}

fn golden_outputs(name: &str) -> Vec<f32> {
    let bytes = read(&format!("tests/golden/{name}.fp32.f32"));
    let total: usize = output_lens().iter().map(|(_, len)| len).sum();
    assert_eq!(bytes.len(), total * 4, "{name}: golden size");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn the_goldens_are_the_embedded_model_s() {
    let embedded = Manifest::from_toml(embedded::MANIFEST).unwrap();
    let golden = Manifest::from_toml(
        &String::from_utf8(read(goldens()["manifest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(
        golden.name, embedded.name,
        "tests/golden holds another model's goldens: `tools/reference.py goldens MANIFEST tests/golden ...`"
    );
}

#[test]
fn tract_raw_outputs_match_onnxruntime_on_the_fp32_model() {
    let lens = output_lens();
    for name in PHOTOS {
        let picture = image::load_from_memory(&read(&format!("tests/golden/{name}.input.png")))
            .unwrap()
            .to_rgb8();
        let (input, geometry) = fp32().preprocess(&picture).unwrap();
        assert_eq!(
            (geometry.scale_x, geometry.offset_x, geometry.offset_y),
            (1.0, 0, 0)
        );
        let outputs = fp32().infer(input).unwrap();
        assert_eq!(outputs.len(), lens.len(), "{name}: output count");
        let expected = golden_outputs(name);
        let mut offset = 0;
        for (out, (output, len)) in outputs.iter().zip(&lens) {
            let got = f32_values(out).unwrap();
            assert_eq!(got.len(), *len, "{name} {output}");
            let max = got
                .iter()
                .zip(&expected[offset..offset + len])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("{name} {output}: max abs diff {max:.2e}");
            assert!(max < 1e-3, "{name} {output}: max abs diff {max}");
            offset += len;
        }
    }
}

struct Det {
    label: String,
    score: f32,
    bbox: [f32; 4],
}

fn dets(v: &Value) -> Vec<Det> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let b = &d["box"];
            Det {
                label: d["label"].as_str().unwrap().to_string(),
                score: d["score"].as_f64().unwrap() as f32,
                bbox: ["x_min", "y_min", "x_max", "y_max"].map(|k| b[k].as_f64().unwrap() as f32),
            }
        })
        .collect()
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    object_detector::core::nms::iou(a, b)
}

/// Every detection scoring clearly above `threshold` on either side has a partner of the same label on
/// the other side with IoU >= `min_iou` and a score within `score_tol`. Detections within `score_tol` of
/// the threshold may legitimately appear on one side only.
fn assert_match(
    name: &str,
    what: &str,
    got: &[Det],
    want: &[Det],
    threshold: f32,
    min_iou: f32,
    score_tol: f32,
) {
    for (a_side, a, b) in [("reference", want, got), ("tract", got, want)] {
        for d in a.iter().filter(|d| d.score >= threshold + score_tol) {
            let partner = b
                .iter()
                .filter(|o| o.label == d.label)
                .max_by(|x, y| iou(&x.bbox, &d.bbox).total_cmp(&iou(&y.bbox, &d.bbox)));
            let Some(p) = partner else {
                panic!(
                    "{name} ({what}): {a_side} {} {:.3} has no partner",
                    d.label, d.score
                );
            };
            let overlap = iou(&p.bbox, &d.bbox);
            assert!(
                overlap >= min_iou,
                "{name} ({what}): {} IoU {overlap:.3} < {min_iou}",
                d.label
            );
            assert!(
                (p.score - d.score).abs() <= score_tol,
                "{name} ({what}): {} score {:.4} vs {:.4}",
                d.label,
                p.score,
                d.score
            );
        }
    }
}

fn pipeline(detector: &Detector, name: &str, threshold: f32) -> Vec<Det> {
    let options = DetectOptions {
        score_threshold: Some(threshold),
        ..Default::default()
    };
    let response = detector
        .detect(&read(&format!("tests/images/{name}.png")), &options)
        .unwrap();
    dets(&serde_json::to_value(&response).unwrap()["detections"])
}

#[test]
fn fp32_pipeline_matches_the_python_reference() {
    let r = goldens();
    let threshold = r["score_threshold"].as_f64().unwrap() as f32;
    let mut matched = 0;
    for name in PHOTOS {
        let want = dets(&r["images"][name]["fp32"]);
        let got = pipeline(fp32(), name, threshold);
        assert_match(name, "fp32", &got, &want, threshold, 0.9, 0.03);
        matched += want.len();
    }
    assert!(
        matched >= 8,
        "the goldens hold {matched} detections; expected the photos to give several"
    );
}

#[test]
fn int8_pipeline_matches_onnxruntime_on_the_same_int8_model() {
    let r = goldens();
    let threshold = r["score_threshold"].as_f64().unwrap() as f32;
    for name in PHOTOS {
        let want = dets(&r["images"][name]["int8"]);
        assert_match(
            name,
            "int8 vs ort int8",
            &pipeline(int8(), name, threshold),
            &want,
            threshold,
            0.9,
            0.03,
        );
    }
}

#[test]
fn int8_pipeline_stays_close_to_the_fp32_reference() {
    let r = goldens();
    let threshold = r["score_threshold"].as_f64().unwrap() as f32;
    for name in PHOTOS {
        let want = dets(&r["images"][name]["fp32"]);
        assert_match(
            name,
            "int8 vs fp32",
            &pipeline(int8(), name, threshold),
            &want,
            threshold,
            0.9,
            0.05,
        );
    }
}

#[test]
fn the_photos_show_what_they_show() {
    // Sanity a person can check by looking: default options, embedded model.
    let top = |name: &str| {
        let r = int8()
            .detect(
                &read(&format!("tests/images/{name}.png")),
                &DetectOptions::default(),
            )
            .unwrap();
        r.detections.first().map(|d| (d.label.clone(), d.score))
    };
    assert_eq!(top("astronaut").unwrap().0, "person");
    assert_eq!(top("chelsea").unwrap().0, "cat");
    assert_eq!(top("camera").unwrap().0, "person");
    assert_eq!(top("rocket"), None, "COCO has no rocket");
}
