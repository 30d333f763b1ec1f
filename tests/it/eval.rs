//! `detect eval` as a team gating a model runs it: COCO-format ground truth in, the COCO figures out,
//! exit status by `--min-map`; bad annotation files and missing images stop it before any image runs.
//! (Its agreement with pycocotools on real labelled photos is tools/check_coco_eval.py's, in CI.)

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cli::detect_command;

/// A scratch folder for one test.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("detect-eval-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `detect eval ARGS` -> (exit code, stdout, stderr).
fn eval(args: &[&str]) -> (i32, String, String) {
    let out = detect_command().arg("eval").args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// COCO's 80 categories as the embedded manifest numbers them (ids 1..=90 with gaps).
fn categories() -> Vec<Value> {
    let manifest = object_detector::Detector::embedded()
        .unwrap()
        .manifest()
        .clone();
    let ids = manifest
        .category_ids
        .clone()
        .expect("the embedded manifest maps to COCO");
    ids.iter()
        .zip(&manifest.labels)
        .map(|(id, name)| json!({"id": id, "name": name}))
        .collect()
}

/// Ground truth for chelsea.jpg (image 1) and astronaut.png (image 2): exactly the objects the model
/// reports at its default threshold, from a plain `detect` run, plus `extra` annotations.
fn ground_truth(extra: &[Value]) -> Value {
    let files = ["chelsea.jpg", "astronaut.png"];
    let out = detect_command()
        .args(files.map(|f| format!("tests/images/{f}")))
        .output()
        .unwrap();
    assert!(out.status.success());
    let manifest = object_detector::Detector::embedded()
        .unwrap()
        .manifest()
        .clone();
    let mut annotations = Vec::new();
    for (image, line) in String::from_utf8(out.stdout).unwrap().lines().enumerate() {
        let line: Value = serde_json::from_str(line).unwrap();
        for d in line["detections"].as_array().unwrap() {
            let b = &d["box"];
            let (x, y) = (b["x_min"].as_f64().unwrap(), b["y_min"].as_f64().unwrap());
            let (w, h) = (
                b["x_max"].as_f64().unwrap() - x,
                b["y_max"].as_f64().unwrap() - y,
            );
            let class = d["class_id"].as_u64().unwrap() as usize;
            annotations.push(json!({"id": annotations.len() + 1, "image_id": image + 1,
                "category_id": manifest.category_id(class), "bbox": [x, y, w, h],
                "area": w * h, "iscrowd": 0}));
        }
    }
    assert!(annotations.len() >= 2, "the photos show a cat and a person");
    for a in extra {
        let mut a = a.clone();
        a["id"] = json!(annotations.len() + 1);
        annotations.push(a);
    }
    let images: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, f)| json!({"id": i + 1, "file_name": f}))
        .collect();
    json!({"images": images, "annotations": annotations, "categories": categories()})
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

fn figure(report: &Value, name: &str) -> f64 {
    report[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: {report}"))
}

fn category_ap(report: &Value, name: &str) -> Option<f64> {
    report["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()["ap"]
        .as_f64()
}

#[test]
fn the_models_own_confident_boxes_as_ground_truth_score_one_and_pass_any_gate() {
    let dir = scratch("perfect");
    let annotations = write(&dir, "instances.json", &ground_truth(&[]));
    let results = dir.join("results.json").display().to_string();
    let (code, stdout, stderr) = eval(&[
        "--json",
        "--min-map",
        // pycocotools' precision is tp / (tp + fp + 2.2e-16): a perfect score is a hair below 1.
        "0.999999",
        "--annotations",
        &annotations,
        "--results",
        &results,
        "tests/images",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (report["images"].as_u64(), report["failed"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(report["classes_matched"], 80);
    assert_eq!(report["matched_by"], "category_ids");
    for name in ["map", "map_50", "map_75", "mar_100"] {
        assert!(
            (figure(&report, name) - 1.0).abs() < 1e-9,
            "{name}: {report}"
        );
    }
    assert_eq!(category_ap(&report, "cat"), Some(1.0));
    assert_eq!(category_ap(&report, "person"), Some(1.0));
    assert_eq!(
        category_ap(&report, "toothbrush"),
        None,
        "no toothbrush in the truth"
    );
    assert!(figure(&report["mean_timings_ms"], "inference") > 0.0);
    // At the model's default threshold the truth is found exactly: precision and recall 1.
    let points = report["operating_points"].as_array().unwrap();
    assert_eq!(points.len(), 19);
    let default = object_detector::Detector::embedded()
        .unwrap()
        .manifest()
        .defaults
        .score_threshold;
    let at_default = points
        .iter()
        .find(|p| (p["score_threshold"].as_f64().unwrap() - f64::from(default)).abs() < 1e-6)
        .unwrap();
    assert_eq!(
        (
            figure(at_default, "precision"),
            figure(at_default, "recall")
        ),
        (1.0, 1.0)
    );
    assert!(
        figure(&points[0], "precision") < 1.0,
        "at 0.05 more boxes than the truth: {}",
        points[0]
    );
    assert_eq!(figure(&report["best_f1"], "f1"), 1.0);

    // COCO's submission settings: far more boxes than the default threshold gives, as COCO results.
    let written: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(written.len() as u64, report["detections"].as_u64().unwrap());
    assert!(written.len() > 10, "{} results", written.len());
    assert!(written
        .iter()
        .all(|r| r["bbox"].as_array().unwrap().len() == 4
            && (0.001..=1.0).contains(&r["score"].as_f64().unwrap())
            && [1, 2].contains(&r["image_id"].as_u64().unwrap())));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missed_object_lowers_the_figures_and_fails_a_gate_above_them() {
    let dir = scratch("missed");
    // A toothbrush in the corner of chelsea.jpg: nothing the model will find.
    let missed = json!({"image_id": 1, "category_id": 90, "bbox": [0, 0, 40, 40], "area": 1600,
                        "iscrowd": 0});
    let annotations = write(&dir, "instances.json", &ground_truth(&[missed]));
    let (code, stdout, stderr) = eval(&[
        "--min-map",
        "0.99",
        "--annotations",
        &annotations,
        "tests/images",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is below --min-map 0.99"), "{stderr}");
    // The text report: pycocotools' own lines, and the missed category at 0.
    assert!(
        stdout.contains(
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0."
        ),
        "{stdout}"
    );
    assert!(stdout.contains("toothbrush       0.000"), "{stdout}");
    assert!(stdout.contains("cat              1.000"), "{stdout}");
    assert!(
        stdout.contains("precision / recall / F1 at IoU=0.50 by score threshold:\n  0.05  "),
        "{stdout}"
    );
    assert!(stdout.contains("best F1 at score threshold "), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unusable_annotations_and_missing_images_stop_before_any_image_runs() {
    let dir = scratch("bad");
    let mut truth = ground_truth(&[]);
    let missing = {
        truth["images"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": 3, "file_name": "gone.jpg"}));
        write(&dir, "missing.json", &truth)
    };
    let not_coco = write(&dir, "not-coco.json", &json!({"images": "none"}));
    let other_classes = write(
        &dir,
        "other.json",
        &json!({"images": [], "categories":
        [{"id": 1000, "name": "galaxy"}]}),
    );
    for (annotations, expected) in [
        (
            missing.as_str(),
            "1 of the annotation file's 3 images are not in tests/images",
        ),
        (not_coco.as_str(), "not a COCO annotation file"),
        (other_classes.as_str(), "none of the model's 80 classes"),
        (
            "no/such/instances.json",
            "--annotations no/such/instances.json",
        ),
    ] {
        let (code, stdout, stderr) = eval(&["--annotations", annotations, "tests/images"]);
        assert_eq!(code, 2, "{annotations}: {stderr}");
        assert!(stderr.contains(expected), "{annotations}: {stderr}");
        assert!(stdout.is_empty());
    }
    let (code, _, stderr) = eval(&[
        "--min-map",
        "1.5",
        "--annotations",
        &missing,
        "tests/images",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("within 0..=1"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
