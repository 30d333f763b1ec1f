//! Object events through the real handler, where no S3 server is needed: the start-up checks, the
//! loop guard, S3's test event, unreadable messages, and S3 out of reach (transient: retried, nothing
//! lost). The round trip through a real S3-compatible server and real notifications is in
//! tests/batch_e2e.py (run by tools/test.sh).

use crate::common;

use std::sync::Arc;

use object_detector::aws::batch::{BatchConfig, Output};
use object_detector::aws::lambda::{App, Config, Handled, Invocation};
use object_detector::aws::s3::S3Config;
use object_detector::{DetectOptions, ErrorCode};
use serde_json::{json, Value};

fn app(batch: BatchConfig) -> object_detector::Result<App> {
    App::new(
        Arc::clone(common::int8_shared()),
        Config {
            batch,
            ..Config::default()
        },
    )
}

/// An S3 endpoint that hangs up on every connection at once, on a port this test holds for the
/// whole run (a port bound, dropped and reused could be taken by another process meanwhile).
fn hanging_up_endpoint() -> String {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            std::thread::spawn(move || {
                for connection in listener.incoming() {
                    drop(connection);
                }
            });
            format!("http://127.0.0.1:{port}")
        })
        .clone()
}

fn unreachable_s3() -> BatchConfig {
    BatchConfig {
        s3: S3Config {
            endpoint: Some(hanging_up_endpoint()),
            force_path_style: true,
            // The retries happen, without the pauses a deployed function waits.
            retry_pauses: vec![std::time::Duration::ZERO; 2],
            ..S3Config::default()
        },
        ..BatchConfig::default()
    }
}

fn run(app: &App, event: Value) -> Handled {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(app.handle_recorded(
            event,
            Invocation {
                request_id: "batch-test",
                trace_id: None,
            },
        ))
}

fn s3_notification(bucket: &str, key: &str) -> Value {
    json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1000}}}]})
}

fn sqs(bodies: &[(&str, String)]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "eventSource": "aws:sqs", "body": body,
                   "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:photos"})
        })
        .collect();
    json!({ "Records": records })
}

fn answer(handled: &Handled) -> Value {
    let raw = handled
        .result
        .as_ref()
        .expect("an answer, not a function error");
    serde_json::from_str(raw.get()).unwrap()
}

fn failures(handled: &Handled) -> Vec<String> {
    answer(handled)["batchItemFailures"]
        .as_array()
        .expect("a partial batch response")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn settings_the_model_cannot_take_or_that_would_loop_fail_start_up() {
    let options = |o: DetectOptions| BatchConfig {
        options: o,
        ..BatchConfig::default()
    };
    let e = app(options(DetectOptions {
        score_threshold: Some(2.0),
        ..DetectOptions::default()
    }))
    .err()
    .expect("a score threshold of 2 is refused");
    assert_eq!(e.code(), ErrorCode::InvalidSetting);
    assert!(e.to_string().contains("DETECT_OPTIONS"), "{e}");
    let e = app(options(DetectOptions {
        classes: Some(vec!["unicorn".into()]),
        ..DetectOptions::default()
    }))
    .err()
    .expect("a label the model lacks is refused");
    assert!(e.to_string().contains("unicorn"), "{e}");
    let e = app(BatchConfig {
        input_prefix: Some("photos/".into()),
        output: Output {
            bucket: None,
            prefix: "photos/detections/".into(),
        },
        ..BatchConfig::default()
    })
    .err()
    .expect("results inside the notified prefix are refused");
    assert!(e.to_string().contains("OUTPUT_PREFIX"), "{e}");
    // An export format writes boxes its own way: `box_format` would be silently ignored.
    let e = app(BatchConfig {
        output_format: Some(object_detector::core::export::Export::Yolo),
        options: DetectOptions {
            box_format: Some(object_detector::core::options::BoxFormat::Normalized),
            ..DetectOptions::default()
        },
        ..BatchConfig::default()
    })
    .err()
    .expect("box_format with an export format is refused");
    assert!(e.to_string().contains("box_format"), "{e}");
}

#[test]
fn test_events_results_and_other_prefixes_are_acknowledged_without_a_request() {
    // Nothing listens at the endpoint: any S3 request would be a retry, so none is made here.
    let app = app(BatchConfig {
        input_prefix: Some("incoming/".into()),
        ..unreachable_s3()
    })
    .unwrap();
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-24T05:00:00.000Z",
        "Bucket": "photos", "RequestId": "R", "HostId": "H"});
    let handled = run(
        &app,
        sqs(&[
            ("test", test_event.to_string()),
            (
                "result",
                s3_notification("photos", "detections/incoming/a.jpg.json").to_string(),
            ),
            (
                "outside",
                s3_notification("photos", "elsewhere/b.jpg").to_string(),
            ),
            ("garbage", "{\"hello\": 1}".into()),
        ]),
    );
    assert_eq!(
        failures(&handled),
        ["garbage"],
        "only the unreadable message is retried (and dead-lettered after the queue's receive count)"
    );
    let line: Value = serde_json::from_str(&handled.log_line).unwrap();
    assert_eq!(line["event"], "sqs");
    assert_eq!(
        line["objects"],
        json!({"detected": 0, "failed": 0, "skipped": 2, "retried": 0, "ignored": 2})
    );
    let reasons: Vec<Value> = handled
        .object_lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|l| json!([l["outcome"], l["key"], l["reason"]]))
        .collect();
    assert_eq!(
        reasons,
        [
            json!([
                "skipped",
                "detections/incoming/a.jpg.json",
                "written by this function (under OUTPUT_PREFIX)"
            ]),
            json!(["skipped", "elsewhere/b.jpg", "outside INPUT_PREFIX"]),
        ]
    );
}

#[test]
fn s3_out_of_reach_retries_exactly_the_messages_it_touched() {
    let app = app(unreachable_s3()).unwrap();
    let handled = run(
        &app,
        sqs(&[
            ("m1", s3_notification("photos", "a.jpg").to_string()),
            (
                "m2",
                s3_notification("photos", "red+flower.jpg").to_string(),
            ),
            (
                "m3",
                s3_notification("photos", "detections/a.jpg.json").to_string(),
            ),
        ]),
    );
    assert_eq!(failures(&handled), ["m1", "m2"]);
    for line in &handled.object_lines[..2] {
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["outcome"], "retry");
        assert_eq!(line["error_code"], "storage_unavailable");
        assert!(
            line["error"].as_str().unwrap().contains("onnect"),
            "names the connection failure: {line}"
        );
    }
    let keys: Vec<Value> = handled
        .object_lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["key"].clone())
        .collect();
    assert_eq!(
        keys[1], "red flower.jpg",
        "the notification's key is decoded"
    );

    // S3 invoking the function directly: a function error, so Lambda's async retries take over.
    let direct = run(&app, s3_notification("photos", "a.jpg"));
    let e = direct.result.expect_err("a function error");
    assert_eq!(e.code(), ErrorCode::StorageUnavailable);
    assert!(e.message().contains("1 of 1 objects"), "{}", e.message());
    // A Distributed Map item batch, the same way (the state machine's Retry takes over).
    let batch = run(
        &app,
        json!({"BatchInput": {"bucket": "photos"}, "Items": [{"Key": "a.jpg", "Size": 10}]}),
    );
    assert_eq!(
        batch.result.expect_err("a function error").code(),
        ErrorCode::StorageUnavailable
    );
}

#[test]
fn objects_over_the_size_cap_need_no_request_to_be_refused() {
    // The event's size is enough: the object is over MAX_OBJECT_BYTES before any request. Writing
    // its error result is the one request, and it is refused (nothing listens): retried.
    let app = app(BatchConfig {
        max_object_bytes: 10,
        ..unreachable_s3()
    })
    .unwrap();
    let handled = run(&app, s3_notification("photos", "big.jpg"));
    let e = handled
        .result
        .expect_err("the error result could not be written");
    assert_eq!(e.code(), ErrorCode::StorageUnavailable);
    assert!(
        e.message().contains("writing the result"),
        "{}",
        e.message()
    );
}

#[test]
fn a_malformed_object_event_is_a_function_error_naming_what_is_missing() {
    let app = app(unreachable_s3()).unwrap();
    let e = run(&app, json!({"Records": [{"s3": {}}]}))
        .result
        .expect_err("a function error");
    assert_eq!(e.code(), ErrorCode::InvalidEvent);
    assert!(
        e.message().contains("malformed s3 event") && e.message().contains("s3.object.key"),
        "{}",
        e.message()
    );
    let e = run(&app, json!({"Items": [{"Key": "a.jpg"}]}))
        .result
        .expect_err("no bucket");
    assert!(e.message().contains("BatchInput.bucket"), "{}", e.message());
}

#[test]
fn every_object_event_sample_is_recognised_and_names_its_objects() {
    // Every object lies outside INPUT_PREFIX here: the samples are read and answered, no S3 request.
    let app = app(BatchConfig {
        input_prefix: Some("elsewhere/".into()),
        ..unreachable_s3()
    })
    .unwrap();
    for (name, kind, keys) in [
        ("s3-put.json", "s3", vec!["incoming/red flower.jpg"]),
        ("sqs-s3.json", "sqs", vec!["incoming/red flower.jpg"]),
        (
            "eventbridge-object-created.json",
            "eventbridge",
            vec!["incoming/red flower.jpg"],
        ),
        (
            "distributed-map-items.json",
            "object_batch",
            vec!["incoming/red flower.jpg", "incoming/café/写真 1.png"],
        ),
    ] {
        let event: Value =
            serde_json::from_slice(&common::read(&format!("events/objects/{name}"))).unwrap();
        let handled = run(&app, event);
        let line: Value = serde_json::from_str(&handled.log_line).unwrap();
        assert_eq!(line["event"], kind, "{name}");
        let seen: Vec<String> = handled
            .object_lines
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["key"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(seen, keys, "{name}");
        let answer = answer(&handled);
        if kind == "sqs" {
            assert_eq!(answer, json!({"batchItemFailures": []}), "{name}");
            assert_eq!(line["objects"]["ignored"], 1, "the test event: {name}");
        } else {
            assert_eq!(answer["skipped"], keys.len(), "{name}: {answer}");
        }
    }
}
