//! The `detect` binary as a batch user runs it: JSON Lines out, error lines for bad files, exit status.

mod common;

use std::process::Command;

use serde_json::Value;

fn detect(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_detect"))
        .args(args)
        .current_dir(common::root())
        .env_remove("MODEL_PATH")
        .env_remove("MODEL_MANIFEST")
        .output()
        .unwrap();
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
