//! `detect --format coco|yolo|voc`: the files other tools read, read back here by small readers and
//! held to the JSON answer for the same images.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::detect;
use crate::common;

/// A fresh folder under the temporary directory, with `other/chelsea.jpg` (a namesake of
/// tests/images/chelsea.jpg) and `000000000042.jpg` (a copy of coffee.jpg named as COCO names images).
fn workspace(tag: &str) -> PathBuf {
    let tmp = std::env::temp_dir().join(format!("detect-export-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("other")).unwrap();
    std::fs::copy(
        common::root().join("tests/images/chelsea.jpg"),
        tmp.join("other/chelsea.jpg"),
    )
    .unwrap();
    std::fs::copy(
        common::root().join("tests/images/coffee.jpg"),
        tmp.join("000000000042.jpg"),
    )
    .unwrap();
    tmp
}

fn name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The boxes of a JSON line as `(class_id, x_min, y_min, x_max, y_max, score)`.
fn boxes(line: &Value) -> Vec<(u64, f64, f64, f64, f64, f64)> {
    line["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let b = &d["box"];
            let f = |k: &str| b[k].as_f64().unwrap();
            (
                d["class_id"].as_u64().unwrap(),
                f("x_min"),
                f("y_min"),
                f("x_max"),
                f("y_max"),
                d["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// YOLO's lines as `(class, cx, cy, w, h, score)`.
fn read_yolo(text: &str) -> Vec<(u64, f64, f64, f64, f64, f64)> {
    text.lines()
        .map(|l| {
            let v: Vec<&str> = l.split(' ').collect();
            assert_eq!(v.len(), 6, "{l}");
            let f = |i: usize| v[i].parse::<f64>().unwrap();
            (v[0].parse().unwrap(), f(1), f(2), f(3), f(4), f(5))
        })
        .collect()
}

/// The text of every `<tag>` element of an XML document, in order.
fn xml_texts<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .map(|rest| &rest[..rest.find(&close).unwrap()])
        .collect()
}

#[test]
fn yolo_and_voc_files_hold_the_json_answer_and_namesakes_keep_apart() {
    let tmp = workspace("files");
    let other = tmp.join("other/chelsea.jpg");
    let inputs = [
        "tests/images/chelsea.jpg",
        other.to_str().unwrap(),
        "tests/images/coffee.jpg",
        "Cargo.toml",
    ];
    for format in ["yolo", "voc"] {
        let out = tmp.join(format);
        let mut args = vec!["--format", format, "--output", out.to_str().unwrap()];
        args.extend(inputs);
        let (code, lines, stderr) = detect(&args);
        assert_eq!(code, 1, "Cargo.toml is not an image: {stderr}");
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3]["error"]["code"], "not_an_image");
        assert!(lines[3].get("exported").is_none());
        let extension = if format == "yolo" { "txt" } else { "xml" };
        let written: Vec<String> = lines[..3]
            .iter()
            .map(|l| name(l["exported"].as_str().unwrap()))
            .collect();
        assert_eq!(
            written,
            [
                format!("chelsea.{extension}"),
                format!("chelsea-2.{extension}"),
                format!("coffee.{extension}")
            ]
        );
        let mut files: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files.len(), 3, "no partial or extra file: {files:?}");
        for line in &lines[..3] {
            let text = std::fs::read_to_string(line["exported"].as_str().unwrap()).unwrap();
            let want = boxes(line);
            let (w, h) = (
                line["image"]["width"].as_f64().unwrap(),
                line["image"]["height"].as_f64().unwrap(),
            );
            assert!(!want.is_empty());
            if format == "yolo" {
                let got = read_yolo(&text);
                assert_eq!(got.len(), want.len());
                for (g, (class, x0, y0, x1, y1, score)) in got.iter().zip(&want) {
                    assert_eq!(g.0, *class);
                    let expect = [
                        (x0 + x1) / 2.0 / w,
                        (y0 + y1) / 2.0 / h,
                        (x1 - x0) / w,
                        (y1 - y0) / h,
                        *score,
                    ];
                    for (got, expect) in [g.1, g.2, g.3, g.4, g.5].iter().zip(expect) {
                        assert!((got - expect).abs() < 2e-6, "{got} vs {expect}");
                    }
                }
            } else {
                assert_eq!(
                    xml_texts(&text, "filename"),
                    [name(line["file"].as_str().unwrap())]
                );
                assert_eq!(xml_texts(&text, "width"), [w.to_string()]);
                assert_eq!(xml_texts(&text, "height"), [h.to_string()]);
                let labels: Vec<&str> = line["detections"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["label"].as_str().unwrap())
                    .collect();
                assert_eq!(xml_texts(&text, "name"), labels);
                for (edge, k) in [("xmin", 1), ("ymin", 2), ("xmax", 3), ("ymax", 4)] {
                    let got: Vec<f64> = xml_texts(&text, edge)
                        .iter()
                        .map(|v| v.parse().unwrap())
                        .collect();
                    let want: Vec<f64> = want
                        .iter()
                        .map(|b| [b.1, b.2, b.3, b.4][k - 1].round())
                        .collect();
                    assert_eq!(got, want, "{edge}");
                }
                let scores: Vec<f64> = xml_texts(&text, "score")
                    .iter()
                    .map(|v| v.parse().unwrap())
                    .collect();
                let want_scores: Vec<f64> = want.iter().map(|b| b.5).collect();
                assert_eq!(scores, want_scores);
            }
        }
        // --resume runs only what has no file: the one removed, and the file that failed.
        let coffee = out.join(format!("coffee.{extension}"));
        std::fs::remove_file(&coffee).unwrap();
        let mut resumed = vec!["--resume"];
        resumed.extend(&args);
        let (_, lines, _) = detect(&resumed);
        let ran: Vec<&str> = lines.iter().map(|l| l["file"].as_str().unwrap()).collect();
        assert_eq!(ran, ["tests/images/coffee.jpg", "Cargo.toml"]);
        assert_eq!(
            name(lines[0]["exported"].as_str().unwrap()),
            format!("coffee.{extension}"),
            "its name kept"
        );
        assert!(coffee.exists());
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn coco_results_take_ids_from_the_name_and_the_manifest() {
    let tmp = workspace("coco");
    let coco_named = tmp.join("000000000042.jpg");
    let (code, lines, _) = detect(&[coco_named.to_str().unwrap()]);
    assert_eq!(code, 0);
    let want = boxes(&lines[0]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_detect"))
        .current_dir(common::root())
        .args(["--format", "coco", coco_named.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), want.len());
    let manifest =
        object_detector::Manifest::from_toml(object_detector::core::embedded::MANIFEST).unwrap();
    for (r, (class, x0, y0, x1, y1, score)) in results.iter().zip(&want) {
        assert_eq!(r["image_id"], 42);
        assert_eq!(
            r["category_id"].as_u64(),
            manifest.category_id(*class as usize)
        );
        let bbox: Vec<f64> = r["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (got, expect) in bbox.iter().zip([*x0, *y0, x1 - x0, y1 - y0]) {
            assert!((got - expect).abs() < 1e-4, "{got} vs {expect}");
        }
        assert!((r["score"].as_f64().unwrap() - score).abs() < 1e-6);
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn formats_refuse_what_they_cannot_write() {
    for (args, needle) in [
        (
            vec!["--format", "yolo", "tests/images/chelsea.jpg"],
            "--output DIR",
        ),
        (
            vec!["--annotations", "x.json", "tests/images/chelsea.jpg"],
            "--format coco",
        ),
        (
            vec![
                "--format",
                "voc",
                "--output",
                "/tmp/x",
                "--box-format",
                "normalized",
                "tests/images/chelsea.jpg",
            ],
            "--box-format",
        ),
        (
            vec![
                "--format",
                "coco",
                "--annotations",
                "Cargo.toml",
                "tests/images/chelsea.jpg",
            ],
            "--annotations",
        ),
    ] {
        let (code, lines, stderr) = detect(&args);
        assert_eq!((code, lines.len()), (2, 0), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
