#![allow(dead_code)]
//! What every target shares, built once per fuzzing process: the function on the embedded model, with a
//! small pixel budget (256 x 256) so that a valid image costs little and the fuzzer stays fast, and one
//! runtime to run its handler on.

use std::sync::{Arc, OnceLock};

use object_detector::aws::batch::BatchConfig;
use object_detector::aws::image_url::{HostList, ImageUrlConfig};
use object_detector::aws::lambda::{App, Config, Handled, Invocation};
use object_detector::aws::s3::S3Config;
use object_detector::{DecodeLimits, Detector, ErrorCode};
use serde_json::Value;

pub fn limits() -> DecodeLimits {
    DecodeLimits {
        max_pixels: 256 * 256,
        max_alloc_bytes: 16 << 20,
    }
}

pub fn detector() -> &'static Arc<Detector> {
    static D: OnceLock<Arc<Detector>> = OnceLock::new();
    D.get_or_init(|| {
        Arc::new(
            Detector::embedded()
                .expect("the embedded model loads")
                .with_limits(limits()),
        )
    })
}

fn app() -> &'static App {
    static A: OnceLock<App> = OnceLock::new();
    A.get_or_init(|| {
        App::new(
            Arc::clone(detector()),
            Config {
                cors_allow_origin: Some(
                    object_detector::aws::lambda::AllowedOrigins::parse("https://a.example").unwrap(),
                ),
                metrics: Some(Default::default()),
                function: None,
                // Object events are read and classified like any other, then skipped before any S3
                // request: keys fall outside this prefix (one that does not meets a closed local
                // port and is answered `storage_unavailable`).
                batch: BatchConfig {
                    input_prefix: Some("\u{0}fuzz-only/".into()),
                    s3: S3Config {
                        endpoint: Some("http://127.0.0.1:9".into()),
                        force_path_style: true,
                        retry_pauses: vec![],
                        ..S3Config::default()
                    },
                    ..BatchConfig::default()
                },
                // URLs are refused by the guard or a closed local port, never fetched from outside.
                image_url: Some(ImageUrlConfig {
                    hosts: Some(HostList::parse("127.0.0.1").unwrap()),
                    ca_file: None,
                    max_bytes: 1 << 20,
                    timeout: std::time::Duration::from_millis(200),
                }),
                // The page is one more route a request may reach.
                demo_page: true,
            },
        )
        .expect("the fuzz settings are valid")
    })
}

/// Runs one event through the handler and checks what a client and the log rely on, whatever the
/// event: the answer and every line written are JSON, and nothing the client sent is the service's
/// fault (no 5xx, no internal error).
pub fn handle(event: Value) {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    let handled: Handled = rt.block_on(app().handle_recorded(
        event,
        Invocation {
            request_id: "fuzz",
            trace_id: None,
        },
    ));
    serde_json::from_str::<Value>(&handled.log_line).expect("the log line is JSON");
    for line in &handled.object_lines {
        serde_json::from_str::<Value>(line).expect("an object's log line is JSON");
    }
    for record in &handled.metric_records {
        serde_json::from_str::<Value>(record).expect("a metric record is JSON");
    }
    match handled.result {
        Ok(raw) => {
            let answer: Value = serde_json::from_str(raw.get()).expect("the answer is JSON");
            if let Some(status) = answer.get("statusCode").and_then(Value::as_u64) {
                assert!(
                    status < 500,
                    "a client's event answered {status}: {answer:.300}"
                );
            }
        }
        Err(e) => {
            assert!(ErrorCode::ALL.contains(&e.code()));
            // S3 unreachable is the one 5xx an object event may meet here (see `app`).
            assert!(
                e.code().is_client_error() || e.code() == ErrorCode::StorageUnavailable,
                "a client's event failed with {e}"
            );
        }
    }
}
