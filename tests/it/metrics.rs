//! The metric records and log line the function writes for each invocation, checked against the
//! CloudWatch Embedded Metric Format specification's structure, for a success, each class of error, a
//! cold start, per-class records, and metrics off.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use object_detector::aws::lambda::{App, Config, Handled, Invocation};
use object_detector::aws::metrics::{FunctionId, MetricsConfig, METRICS};
use serde_json::{json, Value};

/// Units CloudWatch accepts.
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Panics unless `line` is one EMF document as the specification defines it: `_aws` with exactly
/// `Timestamp` (a non-negative integer, milliseconds) and `CloudWatchMetrics`; each directive exactly
/// `Namespace`, `Dimensions`, `Metrics`; at most 9 dimensions per set, each naming a top-level string
/// of at most 1024 characters; at most 100 metrics per directive, each naming a top-level number, with
/// a CloudWatch unit; no name both a dimension and a metric. Returns the document.
pub fn valid_emf(line: &str) -> Value {
    let doc: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let root = doc.as_object().expect("an object");
    let aws = root["_aws"].as_object().expect("_aws is an object");
    let keys: HashSet<&str> = aws.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from(["Timestamp", "CloudWatchMetrics"]),
        "{line}"
    );
    assert!(aws["Timestamp"].is_u64(), "Timestamp: {line}");
    let directives = aws["CloudWatchMetrics"].as_array().expect("an array");
    assert!(!directives.is_empty(), "{line}");
    let mut dimension_names = HashSet::new();
    let mut metric_names = HashSet::new();
    for d in directives {
        let d = d.as_object().expect("a directive is an object");
        let keys: HashSet<&str> = d.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            HashSet::from(["Namespace", "Dimensions", "Metrics"]),
            "{line}"
        );
        let namespace = d["Namespace"].as_str().expect("Namespace is a string");
        assert!((1..=255).contains(&namespace.len()), "{line}");
        for set in d["Dimensions"].as_array().expect("Dimensions is an array") {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 9, "more than 9 dimensions: {line}");
            for name in set {
                let name = name.as_str().expect("a dimension is named by a string");
                let value = root.get(name).and_then(Value::as_str).unwrap_or_else(|| {
                    panic!("dimension {name} is not a top-level string: {line}")
                });
                assert!((1..=1024).contains(&value.chars().count()), "{line}");
                dimension_names.insert(name.to_string());
            }
        }
        let metrics = d["Metrics"].as_array().expect("Metrics is an array");
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{line}");
        for m in metrics {
            let m = m.as_object().expect("a metric is an object");
            assert!(
                m.keys().all(|k| k == "Name" || k == "Unit"),
                "unknown member in {m:?}"
            );
            let name = m["Name"].as_str().expect("Name is a string");
            assert!(
                root.get(name).is_some_and(Value::is_number),
                "metric {name} is not a top-level number: {line}"
            );
            let unit = m["Unit"].as_str().expect("Unit is a string");
            assert!(UNITS.contains(&unit), "{unit} is not a CloudWatch unit");
            metric_names.insert(name.to_string());
        }
    }
    assert!(
        dimension_names.is_disjoint(&metric_names),
        "a name is both a dimension and a metric: {line}"
    );
    // Every name the product publishes is one of docs/operating.md's metrics table.
    for name in &metric_names {
        assert!(
            METRICS.iter().any(|m| m.name == name),
            "{name} is not in METRICS"
        );
    }
    doc
}

/// A metric's unit as the product declares it.
fn declared_unit(name: &str) -> &'static str {
    METRICS
        .iter()
        .find(|m| m.name == name)
        .unwrap()
        .unit
        .as_str()
}

fn app(metrics: Option<MetricsConfig>, function: Option<FunctionId>) -> App {
    App::new(
        Arc::clone(common::int8_shared()),
        Config {
            metrics,
            function,
            ..Config::default()
        },
    )
    .expect("the default batch settings are valid")
}

fn run(app: &App, event: Value, request_id: &str) -> Handled {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(app.handle_recorded(
            event,
            Invocation {
                request_id,
                trace_id: Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
            },
        ))
}

fn event(name: &str) -> Value {
    serde_json::from_slice(&common::read(&format!("events/{name}"))).unwrap()
}

/// An HTTP API (v2) POST /detect of `body` (base64-encoded), with a content type.
fn v2(content_type: &str, body: &[u8]) -> Value {
    use base64::Engine;
    let mut e = event("http-api-jpeg.json");
    e["headers"]["content-type"] = json!(content_type);
    e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
    e["isBase64Encoded"] = json!(true);
    e
}

/// The one record of a request (no per-class records here), validated, its units as declared.
fn record(handled: &Handled) -> Value {
    assert_eq!(
        handled.metric_records.len(),
        1,
        "{:?}",
        handled.metric_records
    );
    let r = valid_emf(&handled.metric_records[0]);
    for d in r["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for m in d["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert_eq!(m["Unit"], declared_unit(name), "{name}");
        }
    }
    r
}

fn published(r: &Value) -> HashSet<String> {
    r["_aws"]["CloudWatchMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["Metrics"].as_array().unwrap())
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_detection_writes_one_valid_record_and_a_log_line_that_names_the_request() {
    let app = app(Some(MetricsConfig::default()), None);
    // The cold start: the first invocation of this App.
    let first = run(&app, event("http-api-jpeg.json"), "req-1");
    assert_eq!(first.result.as_ref().map(|_| ()), Ok(()));
    let r = record(&first);
    assert_eq!(
        r["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "ObjectDetector"
    );
    assert_eq!(r["Model"], "picodet-s-416-coco@paddledetection-2.3+int8w.1");
    assert_eq!(r["request_id"], "req-1");
    assert_eq!(r["ColdStart"], 1);
    assert!(r["ModelLoadLatency"].as_f64().unwrap() > 0.0);
    for name in [
        "Latency",
        "DecodeLatency",
        "PreprocessLatency",
        "InferenceLatency",
        "PostprocessLatency",
        "Detections",
        "TopScore",
        "NoDetections",
        "ImagePixels",
        "ServerErrors",
    ] {
        assert!(published(&r).contains(name), "{name} missing");
    }
    assert!(r["Latency"].as_f64().unwrap() >= r["InferenceLatency"].as_f64().unwrap());
    assert!(r["Detections"].as_u64().unwrap() >= 1);
    assert!((0.0..=1.0).contains(&r["TopScore"].as_f64().unwrap()));
    assert_eq!(r["NoDetections"], 0);
    assert_eq!(r["ServerErrors"], 0);
    assert!(r.get("ErrorCode").is_none());
    let timestamp = r["_aws"]["Timestamp"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(now.abs_diff(timestamp) < 60_000, "{timestamp} vs {now}");

    let log: Value = serde_json::from_str(&first.log_line).unwrap();
    assert_eq!(log["level"], "INFO");
    assert_eq!(log["request_id"], "req-1");
    assert_eq!(
        log["trace_id"],
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    );

    // Warm: no cold start, no load time.
    let second = record(&run(&app, event("http-api-jpeg.json"), "req-2"));
    assert_eq!(second["ColdStart"], 0);
    assert!(second.get("ModelLoadLatency").is_none());
}

#[test]
fn every_class_of_error_is_counted_by_code() {
    let app = app(Some(MetricsConfig::default()), None);
    let wrong_method = event("rest-api-wrong-method.json");
    let unknown_route = event("http-api-unknown-route.json");
    let mut bad_base64 = event("http-api-jpeg.json");
    bad_base64["body"] = json!("***not base64***");
    // A BMP whose header claims 30000 x 30000 pixels: refused before decoding.
    let mut huge_bmp = common::encode(
        &image::DynamicImage::new_rgb8(8, 8),
        image::ImageFormat::Bmp,
    );
    huge_bmp[18..22].copy_from_slice(&30_000i32.to_le_bytes());
    huge_bmp[22..26].copy_from_slice(&30_000i32.to_le_bytes());
    let cases: Vec<(&str, Value, &str, bool)> = vec![
        ("400", bad_base64, "invalid_base64", true),
        ("404", unknown_route, "not_found", false),
        ("405", wrong_method, "method_not_allowed", true),
        ("413", v2("image/bmp", &huge_bmp), "image_too_large", true),
        (
            "415",
            v2("text/plain", b"hello there"),
            "unsupported_media_type",
            true,
        ),
        (
            "422",
            v2(
                "image/jpeg",
                &common::read("tests/images/chelsea.jpg")[..600],
            ),
            "invalid_image",
            true,
        ),
        ("direct", json!({"image": "@@@"}), "invalid_base64", true),
        ("no shape", json!({"hello": 1}), "invalid_event", false),
    ];
    for (class, e, code, detection) in cases {
        let handled = run(&app, e, class);
        let r = record(&handled);
        assert_eq!(r["ErrorCode"], code, "{class}");
        assert_eq!(r["Errors"], 1, "{class}");
        assert_eq!(r["ServerErrors"], 0, "{class}");
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][1]["Dimensions"],
            json!([["Model", "ErrorCode"]])
        );
        // Latency of failed detection requests too; nothing was detected.
        assert_eq!(r.get("Latency").is_some(), detection, "{class}");
        assert!(r.get("InferenceLatency").is_none() && r.get("Detections").is_none());
        let log: Value = serde_json::from_str(&handled.log_line).unwrap();
        assert_eq!(log["level"], "WARN", "{class}");
        assert_eq!(log["error_code"], code, "{class}");
    }
}

#[test]
fn health_checks_count_requests_but_not_latency() {
    let app = app(Some(MetricsConfig::default()), None);
    let r = record(&run(&app, event("http-api-health.json"), "h"));
    assert_eq!(
        published(&r),
        HashSet::from([
            "ColdStart".into(),
            "ModelLoadLatency".into(),
            "ServerErrors".into()
        ])
    );
}

#[test]
fn in_lambda_the_rollout_dimensions_name_the_function_version() {
    let function = FunctionId {
        name: "object-detector".into(),
        version: "42".into(),
    };
    let app = app(
        Some(MetricsConfig {
            namespace: "Team/Vision".into(),
            per_class: false,
        }),
        Some(function),
    );
    let r = record(&run(&app, event("function-url-jpeg.json"), "u"));
    let directives = r["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert!(directives.iter().all(|d| d["Namespace"] == "Team/Vision"));
    let version = directives
        .iter()
        .find(|d| d["Dimensions"] == json!([["FunctionName", "FunctionVersion"]]))
        .expect("a directive by function version");
    let names: Vec<&str> = version["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ServerErrors", "NoDetections", "TopScore"]);
    assert_eq!(
        (r["FunctionName"].as_str(), r["FunctionVersion"].as_str()),
        (Some("object-detector"), Some("42"))
    );
}

#[test]
fn per_class_records_follow_the_main_one() {
    let app = app(
        Some(MetricsConfig {
            per_class: true,
            ..MetricsConfig::default()
        }),
        None,
    );
    let handled = run(&app, event("http-api-jpeg.json"), "p");
    let records: Vec<Value> = handled
        .metric_records
        .iter()
        .map(|l| valid_emf(l))
        .collect();
    assert!(records.len() >= 2, "{records:?}");
    let detections = records[0]["Detections"].as_u64().unwrap();
    let mut per_label = 0;
    for r in &records[1..] {
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Model", "Label"]])
        );
        assert!(common::int8()
            .manifest()
            .labels
            .iter()
            .any(|l| r["Label"] == l.as_str()));
        assert_eq!(r["request_id"], "p");
        per_label += r["Detections"].as_u64().unwrap();
    }
    assert_eq!(per_label, detections);
}

#[test]
fn metrics_off_writes_no_record_but_still_the_log_line() {
    let app = app(None, None);
    let handled = run(&app, event("http-api-jpeg.json"), "off");
    assert!(handled.metric_records.is_empty());
    let log: Value = serde_json::from_str(&handled.log_line).unwrap();
    assert_eq!(log["status"], 200);
}

#[test]
fn a_request_of_several_images_writes_one_record_for_it_and_one_per_image() {
    let app = app(Some(MetricsConfig::default()), None);
    let mut e = event("http-api-images.json");
    // The sample's two images, and one that is not an image.
    let mut body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
    body["images"]
        .as_array_mut()
        .unwrap()
        .push(json!("aGVsbG8="));
    e["body"] = json!(body.to_string());
    let handled = run(&app, e, "req-list");
    let records: Vec<Value> = handled
        .metric_records
        .iter()
        .map(|r| valid_emf(r))
        .collect();
    assert_eq!(records.len(), 4, "{:?}", handled.metric_records);
    // The request: its latency, no detections of its own.
    assert!(records[0]["Latency"].as_f64().unwrap() > 0.0);
    assert!(records[0].get("Detections").is_none());
    // Each image answered: what it found, without a request latency; the failed one by its code.
    for r in &records[1..3] {
        assert!(r.get("Latency").is_none());
        assert!(r["Detections"].as_u64().unwrap() >= 1, "{r}");
        assert_eq!(r["request_id"], "req-list");
    }
    assert_eq!(records[3]["ErrorCode"], "not_an_image");
    assert_eq!(records[3]["ServerErrors"], 0);
    let log: Value = serde_json::from_str(&handled.log_line).unwrap();
    assert_eq!(log["status"], 200);
    assert_eq!(log["images"], json!({"detected": 2, "failed": 1}));
    let found: u64 = records[1..3]
        .iter()
        .map(|r| r["Detections"].as_u64().unwrap())
        .sum();
    assert_eq!(log["detections"], found);
}
