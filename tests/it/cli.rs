//! The `detect` binary as a batch user runs it: JSON Lines out, error lines for bad files, exit status.

use crate::common;

use std::process::Command;

use serde_json::Value;

pub(crate) fn detect(args: &[&str]) -> (i32, Vec<Value>, String) {
    detect_with_model(args, &[])
}

/// The `detect` binary run from the repository root with none of the variables that choose or run
/// the model set.
pub fn detect_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_detect"));
    cmd.current_dir(common::root());
    for k in [
        "MODEL_PATH",
        "MODEL_MANIFEST",
        "DETECTOR_BACKEND",
        "DETECTOR_THREADS",
        "METRICS",
        "METRICS_NAMESPACE",
        "METRICS_PER_CLASS",
    ] {
        cmd.env_remove(k);
    }
    cmd
}

/// `detect` with `MODEL_PATH`/`MODEL_MANIFEST` (or other variables) set as given, and unset otherwise.
fn detect_with_model(args: &[&str], env: &[(&str, &str)]) -> (i32, Vec<Value>, String) {
    let mut cmd = detect_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (
        out.status.code().unwrap(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_line_per_image_in_order_with_the_file_name() {
    let (code, lines, _) = detect(&["tests/images/chelsea.jpg", "tests/images/astronaut.png"]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["file"], "tests/images/chelsea.jpg");
    assert_eq!(lines[0]["detections"][0]["label"], "cat");
    assert_eq!(lines[0]["image"]["width"], 451);
    assert_eq!(lines[1]["file"], "tests/images/astronaut.png");
    assert_eq!(lines[1]["detections"][0]["label"], "person");
    assert!(lines[1]["timings_ms"]["inference"].as_f64().unwrap() > 0.0);
}

#[test]
fn metrics_are_the_functions_records_on_stderr_one_set_per_image() {
    let (code, lines, stderr) = detect_with_model(
        &[
            "--metrics",
            "tests/images/chelsea.jpg",
            "no/such/file.jpg",
            "tests/images/astronaut.png",
        ],
        // The flag wins over METRICS=off; namespace and per-class records come from the environment.
        &[
            ("METRICS", "off"),
            ("METRICS_NAMESPACE", "Batch"),
            ("METRICS_PER_CLASS", "true"),
        ],
    );
    assert_eq!((code, lines.len()), (1, 3));
    let records: Vec<Value> = stderr.lines().map(crate::metrics::valid_emf).collect();
    let main: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("Label").is_none())
        .collect();
    assert_eq!(main.len(), 3, "{stderr}");
    assert!(records
        .iter()
        .all(|r| r["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Batch"));
    assert_eq!(
        main.iter()
            .map(|r| r["ColdStart"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 0, 0]
    );
    assert_eq!(
        main[0]["Detections"],
        lines[0]["detections"].as_array().unwrap().len()
    );
    assert_eq!(main[1]["ErrorCode"], "file_not_readable");
    assert_eq!(main[1]["Errors"], 1);
    assert!(main[2]["InferenceLatency"].as_f64().unwrap() > 0.0);
    // Per-class: chelsea's labels, then astronaut's, after each image's own record.
    let labels: Vec<&str> = records.iter().filter_map(|r| r["Label"].as_str()).collect();
    assert!(
        labels.contains(&"cat") && labels.contains(&"person"),
        "{labels:?}"
    );

    // Without the flag, stderr stays quiet.
    let (_, _, stderr) = detect(&["tests/images/chelsea.jpg"]);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn a_folder_is_walked_for_images_in_name_order_and_jobs_keep_input_order() {
    let mut want: Vec<String> = std::fs::read_dir(common::root().join("tests/images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png") || n.ends_with(".jpg"))
        .map(|n| format!("tests/images/{n}"))
        .collect();
    want.sort();
    assert!(want.len() >= 5, "{want:?}");
    let (code, one, stderr) = detect(&["--jobs", "1", "tests/images"]);
    assert_eq!(code, 0);
    let files: Vec<&str> = one.iter().map(|l| l["file"].as_str().unwrap()).collect();
    assert_eq!(files, want);
    // Piped: no progress bar.
    assert!(stderr.is_empty(), "{stderr}");
    // Two workers: the same lines in the same order.
    let (code, two, _) = detect(&["-j", "2", "tests/images", "tests/images/chelsea.jpg"]);
    assert_eq!(code, 0);
    assert_eq!(two.len(), one.len() + 1);
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(a["file"], b["file"]);
        assert_eq!(a["detections"], b["detections"]);
    }
    assert_eq!(two.last().unwrap()["file"], "tests/images/chelsea.jpg");
}

#[test]
fn output_with_resume_goes_on_where_an_interrupted_run_stopped() {
    let out = std::env::temp_dir().join(format!("detect-resume-it-{}.jsonl", std::process::id()));
    let out_arg = out.display().to_string();
    let files = [
        "tests/images/chelsea.jpg",
        "tests/images/astronaut.png",
        "Cargo.toml",
        "tests/images/coffee.png",
    ];
    let mut args = vec!["-o", out_arg.as_str()];
    args.extend(files);
    let (code, stdout, _) = detect(&args);
    assert_eq!(
        (code, stdout.len()),
        (1, 0),
        "lines go to the file, not stdout"
    );
    let full = std::fs::read_to_string(&out).unwrap();
    assert_eq!(full.lines().count(), 4);
    // Interrupted: the last line cut in the middle.
    let cut = full.trim_end().rfind('\n').unwrap() + 40;
    std::fs::write(&out, &full[..cut]).unwrap();
    let mut resume = vec!["--resume"];
    resume.extend(&args);
    let (code, _, _) = detect(&resume);
    // Cargo.toml's not_an_image was an answer, kept, not re-run; the run's own images all pass.
    assert_eq!(code, 0);
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let got: Vec<&str> = lines.iter().map(|l| l["file"].as_str().unwrap()).collect();
    assert_eq!(got, files);
    let before: Value = serde_json::from_str(full.lines().nth(3).unwrap()).unwrap();
    assert_eq!(lines[3]["detections"], before["detections"]);
    // A finished run resumed does nothing.
    let (code, _, _) = detect(&resume);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4);
    std::fs::remove_file(&out).unwrap();
    // --resume needs --output.
    let (code, _, stderr) = detect(&["--resume", "tests/images/chelsea.jpg"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn a_bad_file_gets_an_error_line_and_the_rest_still_run() {
    let (code, lines, _) = detect(&["Cargo.toml", "no/such/file.jpg", "tests/images/chelsea.jpg"]);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["file"], "Cargo.toml");
    assert_eq!(lines[0]["error"]["code"], "not_an_image");
    assert_eq!(lines[1]["error"]["code"], "file_not_readable");
    assert!(lines[1].get("detections").is_none());
    assert_eq!(lines[2]["detections"][0]["label"], "cat");
}

#[test]
fn options_apply_and_bad_options_stop_before_any_file() {
    let (code, lines, _) = detect(&[
        "--score-threshold",
        "0.2",
        "--classes",
        "person",
        "--max-detections",
        "1",
        "tests/images/camera.png",
    ]);
    assert_eq!(code, 0);
    let dets = lines[0]["detections"].as_array().unwrap();
    assert_eq!(dets.len(), 1);
    assert_eq!(dets[0]["label"], "person");

    for bad in [
        ["--score-threshold", "1.5"],
        ["--classes", "unicorn"],
        ["--max-detections", "many"],
    ] {
        let (code, lines, stderr) = detect(&[bad[0], bad[1], "tests/images/chelsea.jpg"]);
        assert_eq!(code, 2, "{bad:?}");
        assert!(lines.is_empty(), "{bad:?}");
        assert!(stderr.contains(bad[1]), "{bad:?}: {stderr}");
    }
}

#[test]
fn standard_input_is_read_with_a_dash() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_detect"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&common::read("tests/images/chelsea.jpg"))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["file"].as_str(), v["detections"][0]["label"].as_str()),
        (Some("-"), Some("cat"))
    );
}

/// The YOLOX test manifest naming its output by position, so it can be pointed at the YOLOv8 test model
/// (whose output has another name): a manifest for the wrong family, as a user might mix them up.
fn yolox_manifest_by_position(tag: &str) -> std::path::PathBuf {
    let text = String::from_utf8(common::read("tests/models/yolox.toml")).unwrap();
    let path = std::env::temp_dir().join(format!(
        "yolox-by-position-{tag}-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text.replace(r#"output = "output""#, "output = 0")).unwrap();
    path
}

#[test]
fn model_path_and_manifest_switch_the_model_and_a_bad_pair_stops_before_any_file() {
    let yolox = [
        ("MODEL_PATH", "tests/models/yolox.onnx"),
        ("MODEL_MANIFEST", "tests/models/yolox.toml"),
    ];
    let (code, lines, _) = detect_with_model(&["tests/models/input.png"], &yolox);
    assert_eq!(code, 0);
    assert_eq!(lines[0]["model"]["name"], "test-yolox");
    assert!(!lines[0]["detections"].as_array().unwrap().is_empty());

    // A manifest for another family: one message naming the output and the shape expected, exit 2.
    let yolox_manifest = yolox_manifest_by_position("cli");
    let wrong = [
        ("MODEL_PATH", "tests/models/yolov8.onnx"),
        ("MODEL_MANIFEST", yolox_manifest.to_str().unwrap()),
    ];
    let (code, lines, stderr) = detect_with_model(&["tests/models/input.png"], &wrong);
    assert_eq!((code, lines.len()), (2, 0));
    assert!(
        stderr.contains("`output0` [1, 9, 84]") && stderr.contains("need [1, 84, 9]"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // One variable without the other is a configuration error, not a silent fallback.
    let (code, _, stderr) = detect_with_model(&["tests/models/input.png"], &yolox[..1]);
    assert_eq!(code, 2);
    assert!(stderr.contains("MODEL_PATH and MODEL_MANIFEST"), "{stderr}");
    // A missing file names the file.
    let missing = [
        ("MODEL_PATH", "tests/models/nope.onnx"),
        ("MODEL_MANIFEST", "tests/models/yolox.toml"),
    ];
    let (code, _, stderr) = detect_with_model(&["tests/models/input.png"], &missing);
    assert_eq!(code, 2);
    assert!(stderr.contains("nope.onnx"), "{stderr}");
}

#[test]
fn a_backend_setting_it_cannot_honour_stops_before_any_file() {
    for (env, says) in [
        (("DETECTOR_BACKEND", "cuda"), "`tract` or `onnxruntime`"),
        (("DETECTOR_THREADS", "0"), "thread count from 1 to 256"),
        (("DETECTOR_THREADS", "lots"), "thread count from 1 to 256"),
    ] {
        let (code, lines, stderr) = detect_with_model(&["tests/images/chelsea.jpg"], &[env]);
        assert_eq!((code, lines.len()), (2, 0), "{env:?}: {stderr}");
        // A value the variable cannot take names the variable (invalid_setting, not a backend fault).
        assert!(stderr.contains(env.0) && stderr.contains(says), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    // The defaults, spelled out, change nothing.
    let (code, lines, _) = detect_with_model(
        &["tests/images/chelsea.jpg"],
        &[("DETECTOR_BACKEND", "tract"), ("DETECTOR_THREADS", "1")],
    );
    assert_eq!(
        (code, lines[0]["detections"][0]["label"].as_str()),
        (0, Some("cat"))
    );
}

#[test]
fn the_lambda_binary_fails_init_with_one_json_line_on_a_bad_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_object-detector"))
        .arg("events/http-api-jpeg.json")
        .current_dir(common::root())
        .env("MODEL_PATH", "tests/models/yolov8.onnx")
        .env("MODEL_MANIFEST", yolox_manifest_by_position("lambda"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(line["message"], "init failed");
    assert!(
        line["error"].as_str().unwrap().contains("need [1, 84, 9]"),
        "{line}"
    );
}

#[test]
fn annotate_writes_one_picture_per_image_and_never_overwrites_a_namesake() {
    let tmp = std::env::temp_dir().join(format!("detect-annotate-{}", std::process::id()));
    let other = tmp.join("other");
    std::fs::create_dir_all(&other).unwrap();
    // The same stem from two folders.
    std::fs::copy(
        common::root().join("tests/images/chelsea.jpg"),
        other.join("chelsea.jpg"),
    )
    .unwrap();
    let out = tmp.join("pictures");
    let other_jpg = other.join("chelsea.jpg");
    let (code, lines, stderr) = detect(&[
        "--annotate",
        out.to_str().unwrap(),
        "--annotate-format",
        "png",
        "--annotate-max-side",
        "300",
        "tests/images/chelsea.jpg",
        other_jpg.to_str().unwrap(),
        "tests/images/coffee.jpg",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let written: Vec<&str> = lines
        .iter()
        .map(|l| l["annotated"].as_str().unwrap())
        .collect();
    let names: Vec<String> = written
        .iter()
        .map(|p| {
            std::path::Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "chelsea.annotated.png",
            "chelsea-2.annotated.png",
            "coffee.annotated.png"
        ]
    );
    for (path, line) in written.iter().zip(&lines) {
        let picture = image::open(path).unwrap();
        let (w, h) = (
            line["image"]["width"].as_u64().unwrap() as u32,
            line["image"]["height"].as_u64().unwrap() as u32,
        );
        assert_eq!(picture.width().max(picture.height()), 300.min(w.max(h)));
        assert!(line["detections"].as_array().is_some());
        assert!(line.get("annotated_image").is_none());
    }
    std::fs::remove_dir_all(&tmp).unwrap();

    // Picture options without --annotate are a usage error.
    let (code, _, stderr) = detect(&["--annotate-format", "png", "tests/images/chelsea.jpg"]);
    assert_eq!(code, 2, "{stderr}");
}
