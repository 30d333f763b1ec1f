//! The AWS Lambda adapter: the only code that knows event shapes. It turns an event into a request
//! (method, route, body, options), runs the detection core, and answers in the shape the event came in.
//!
//! [`App::handle`] is a plain async function from the event JSON to the response JSON, so tests feed it
//! `events/*.json` directly; `src/bin/object-detector.rs` wraps it in the Lambda runtime. Each
//! invocation writes one log line (stderr) and its metric records (stdout, see [`crate::aws::metrics`]);
//! [`App::handle_recorded`] returns them instead, for tests and the local runner.
//!
//! Who calls whom (no file here imports `app`, and no circle: `tools/check_layers.py`):
//! - `app`: dispatch; calls `events` (shapes in and out), `body` (the images and options of a request,
//!   with `image_source` for the JSON fields naming them: bytes, a URL, an S3 object, a list),
//!   `reply` (an answer before its shape), `object_answer`, `record`, `log`, and the core.
//! - `object_answer` (object events through `crate::aws::batch`) calls `objects` (reading those
//!   events) and `record`.
//! - `log` makes the log lines from a `record::Record`; `record` makes the metric observations.
//! - `error` holds the failures only the adapter raises; `cors` the allowed origins.
//! - `trace_env` (glibc only) keeps the runtime's per-invocation `_X_AMZN_TRACE_ID` from leaking;
//!   the function binary routes `setenv` to it.

mod app;
mod base64_text;
mod body;
mod cors;
mod demo;
mod error;
mod events;
mod image_source;
mod log;
mod object_answer;
mod objects;
mod protocols;
mod record;
mod reply;
mod service;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub mod trace_env;

use serde_json::value::RawValue;

use crate::aws::batch::BatchConfig;
use crate::aws::image_url::ImageUrlConfig;
use crate::aws::metrics::{FunctionId, MetricsConfig};

pub use crate::core::error::Failure;
pub use app::App;
pub use cors::AllowedOrigins;
pub use events::{EventKind, HttpKind};
pub use objects::{ObjectRef, ObjectSource};
pub use protocols::Route;

/// What the adapter is configured with, beside the detector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The origins browsers may read answers from; no CORS headers when unset.
    pub cors_allow_origin: Option<AllowedOrigins>,
    /// The metric records; none when `None`.
    pub metrics: Option<MetricsConfig>,
    /// The Lambda function's name and version, a dimension of the rollout metrics.
    pub function: Option<FunctionId>,
    /// The batch path, for object events.
    pub batch: BatchConfig,
    /// `image_url` input; off when `None`.
    pub image_url: Option<ImageUrlConfig>,
    /// Whether `GET /` and `GET /demo` serve the page to try the function in a browser (`DEMO_PAGE`).
    pub demo_page: bool,
}

/// What the runtime says about one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    pub request_id: &'a str,
    /// The X-Ray trace header (`Root=...;Parent=...;Sampled=...`), when tracing is on.
    pub trace_id: Option<&'a str>,
}

/// An invocation's answer, with what it logs.
#[derive(Debug)]
pub struct Handled {
    pub result: Result<Box<RawValue>, Failure>,
    /// The JSON log line.
    pub log_line: String,
    /// Object events: one JSON log line per object, written before [`Handled::log_line`].
    pub object_lines: Vec<String>,
    /// The EMF metric records, one JSON document each; empty with metrics off.
    pub metric_records: Vec<String>,
    /// A direct invocation's function error is reported under this `errorType` when it is not the
    /// failure's code: the exception's name for a Rekognition-shaped invocation.
    pub error_type: Option<&'static str>,
}
