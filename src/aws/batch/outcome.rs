//! What became of each object: the outcome the object's log line, the invocation's summary and the
//! event's answer are made of, and where the object's time went.

use serde::Serialize;

use super::ObjectRef;
use crate::aws::metrics::Detected;
use crate::core::error_code::ErrorCode;

/// What became of one object. Serialized as the fields the object's log line and the invocation's
/// summary share: `outcome` (`detected`, `failed`, `skipped`, `retry`) and what goes with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Detected; the result (and picture) written.
    Detected {
        result_key: String,
        detections: usize,
    },
    /// A final failure: the error result is written (when its key can be) and the object is done.
    Failed {
        #[serde(skip_serializing_if = "Option::is_none")]
        result_key: Option<String>,
        #[serde(rename = "error_code")]
        code: ErrorCode,
        #[serde(rename = "error")]
        message: String,
    },
    /// Not processed: one of this function's outputs, or outside `INPUT_PREFIX`.
    Skipped { reason: &'static str },
    /// A transient failure: nothing written; the caller retries the object.
    Retry {
        #[serde(rename = "error_code")]
        code: ErrorCode,
        #[serde(rename = "error")]
        message: String,
    },
}

impl Outcome {
    /// The same outcome with its result key cut to `max_key` characters and its message to
    /// `max_message`, for a log line.
    pub fn bounded(&self, max_key: usize, max_message: usize) -> Outcome {
        let cut = crate::core::error::bounded;
        match self {
            Outcome::Detected {
                result_key,
                detections,
            } => Outcome::Detected {
                result_key: cut(result_key, max_key),
                detections: *detections,
            },
            Outcome::Failed {
                result_key,
                code,
                message,
            } => Outcome::Failed {
                result_key: result_key.as_deref().map(|k| cut(k, max_key)),
                code: *code,
                message: cut(message, max_message),
            },
            Outcome::Skipped { reason } => Outcome::Skipped { reason },
            Outcome::Retry { code, message } => Outcome::Retry {
                code: *code,
                message: cut(message, max_message),
            },
        }
    }
}

/// One object's outcome, with where its time went.
#[derive(Debug, Clone)]
pub struct Report {
    pub object: ObjectRef,
    pub outcome: Outcome,
    /// What the metrics need of the detection, when it ran.
    pub detected: Option<Detected>,
    /// Fetching, detecting (without the wait for the plan) and writing, in milliseconds.
    pub fetch_ms: f64,
    pub detect_ms: f64,
    pub write_ms: f64,
    pub total_ms: f64,
}
