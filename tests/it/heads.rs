//! Every detection-head family against the numpy reference (tools/manifest_ref.py) on small generated models
//! (tools/make_test_models.py): same detections, same order of magnitude of agreement as tract vs
//! onnxruntime. Also: what a wrong manifest for a model says at load.

use crate::common;

use crate::common::FAMILIES;
use object_detector::{DetectOptions, Detector, Manifest};

fn load(name: &str) -> Detector {
    let dir = common::root().join("tests/models");
    Detector::from_files(
        &dir.join(format!("{name}.onnx")),
        &dir.join(format!("{name}.toml")),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load_with(name: &str, edit: impl Fn(String) -> String) -> Result<Detector, String> {
    let text = String::from_utf8(common::read(&format!("tests/models/{name}.toml"))).unwrap();
    let manifest = Manifest::from_toml(&edit(text)).map_err(|e| e.to_string())?;
    Detector::new(
        &common::read(&format!("tests/models/{name}.onnx")),
        manifest,
    )
    .map_err(|e| e.to_string())
}

#[test]
fn every_family_matches_the_numpy_reference() {
    for name in FAMILIES {
        common::assert_matches_decoder_reference(name, &load(name));
    }
}

#[test]
fn class_filter_applies_to_every_family() {
    // Each family with a label it finds in the image beside others (on tests/models/input.png the
    // TF OD API model finds only "cat").
    for (name, label, image) in [
        ("gfl", "red", "tests/models/input.png"),
        ("nanodet_plus", "x", "tests/models/input.png"),
        ("yolox", "a", "tests/models/input.png"),
        ("yolov8", "one", "tests/models/input.png"),
        ("tf_od_api", "dog", "tests/images/astronaut.png"),
        ("onnx_nms", "left", "tests/models/input.png"),
        ("detr", "north", "tests/models/input.png"),
    ] {
        let image = common::read(image);
        let options = DetectOptions {
            classes: Some(vec![label.to_string()]),
            score_threshold: Some(0.0),
            ..Default::default()
        };
        let detector = load(name);
        let got = detector.detect(&image, &options).unwrap().detections;
        assert!(!got.is_empty(), "{name}: nothing of {label:?} found");
        assert!(got.iter().all(|d| d.label == label), "{name}: {got:?}");
        // Without the filter the model finds other labels too: there was something to filter out.
        let unfiltered = DetectOptions {
            classes: None,
            ..options
        };
        let all = detector.detect(&image, &unfiltered).unwrap().detections;
        assert!(all.iter().any(|d| d.label != label), "{name}: {all:?}");
    }
}

#[test]
fn a_manifest_that_does_not_fit_the_model_fails_at_load_with_the_shapes() {
    // One label too many: the class dimension no longer matches.
    let err = load_with("yolox", |t| t.replace(r#""d"]"#, r#""d", "e"]"#)).unwrap_err();
    assert!(
        err.contains("[1, 84, 9]") && err.contains("[1, 84, 10]"),
        "{err}"
    );
    let err = load_with("yolov8", |t| t.replace(r#", "five"]"#, "]")).unwrap_err();
    assert!(
        err.contains("[1, 9, 84]") && err.contains("4 box values + 4 classes"),
        "{err}"
    );
    // Strides that do not tile the output.
    let err = load_with("yolox", |t| {
        t.replace("strides = [8, 16, 32]", "strides = [8, 16]")
    })
    .unwrap_err();
    assert!(err.contains("[1, 80, 9]"), "{err}");
    // A combined GFL output must hold every level's cells.
    let err = load_with("nanodet_plus", |t| {
        t.replace("strides = [8, 16, 32]", "strides = [8, 16]")
    })
    .unwrap_err();
    assert!(
        err.contains("[1, 84, 36]") && err.contains("need [1, 80, 36]"),
        "{err}"
    );
    // A GFL manifest on a YOLOX model names outputs that do not exist.
    let err = load_with("yolox", |t| {
        t.replace(
            r#"family = "yolox""#,
            "family = \"gfl\"\nreg_max = 7\ncls = [\"cls\"]\nreg = [\"reg\"]",
        )
        .replace("strides = [8, 16, 32]", "strides = [8]")
        .replace("output = \"output\"\n", "")
    })
    .unwrap_err();
    assert!(
        err.contains("`cls` does not exist") && err.contains("[\"output\"]"),
        "{err}"
    );
    // Boxes must have 4 values per row; the scores output has one.
    let err = load_with("tf_od_api", |t| {
        t.replace(
            r#"boxes = "detection_boxes""#,
            r#"boxes = "detection_scores""#,
        )
    })
    .unwrap_err();
    assert!(err.contains("boxes must be [1, rows, 4]"), "{err}");
    // A count must be one number.
    let err = load_with("tf_od_api", |t| {
        t.replace(
            r#"count = "num_detections""#,
            r#"count = "detection_scores""#,
        )
    })
    .unwrap_err();
    assert!(err.contains("a count must hold one value"), "{err}");
    // DETR logits need one column per label; swapped outputs say which shapes they need.
    let err = load_with("detr", |t| t.replace(r#""north", "#, "")).unwrap_err();
    assert!(
        err.contains("[1, queries, 4]") && err.contains("[1, 64, 5]"),
        "{err}"
    );
    let err = load_with("detr", |t| {
        t.replace(r#"boxes = "pred_boxes""#, r#"boxes = "pred_logits""#)
    })
    .unwrap_err();
    assert!(
        err.contains("[1, 64, 4]") && err.contains("[1, 64, 5]"),
        "{err}"
    );
}

#[test]
fn in_graph_nms_rows_depend_on_the_data_and_the_decoder_accepts_that() {
    // The ONNX NonMaxSuppression model's row count is only known at run time; an empty result is a
    // valid answer, not an error.
    let d = load("onnx_nms");
    let white = image::RgbImage::from_pixel(64, 64, image::Rgb([255, 255, 255]));
    let all = d
        .detect_rgb(&white, &DetectOptions::default())
        .unwrap()
        .detections;
    let none = d
        .detect_rgb(
            &white,
            &DetectOptions {
                score_threshold: Some(1.0),
                ..Default::default()
            },
        )
        .unwrap()
        .detections;
    assert!(!all.is_empty());
    assert!(none.is_empty());
}
