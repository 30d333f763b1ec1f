//! What became of each object: the outcome the object's log line, the invocation's summary and the
//! event's answer are made of, and where the object's time went.

use serde::{Serialize, Serializer};

use super::ObjectRef;
use crate::aws::metrics::DetectionStats;
use crate::core::error::{bounded, Failure};
use crate::core::error_code::ErrorCode;

/// What became of one object. Serialized as the fields the object's log line and the invocation's
/// summary share: `outcome` (`detected`, `failed`, `skipped`, `retry`) and what goes with it (a
/// failure as `error_code` and `error`).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Detected; the result (and picture) written.
    Detected {
        result_key: String,
        detections: usize,
    },
    /// A final failure: the error result is written (when its key can be) and the object is done.
    Failed {
        result_key: Option<String>,
        error: Failure,
    },
    /// Not processed: one of this function's outputs, or outside `INPUT_PREFIX`.
    Skipped { reason: &'static str },
    /// A transient failure: nothing written; the caller retries the object.
    Retry { error: Failure },
}

impl Outcome {
    /// The failure, for the outcomes that have one.
    pub fn error(&self) -> Option<&Failure> {
        match self {
            Outcome::Failed { error, .. } | Outcome::Retry { error } => Some(error),
            Outcome::Detected { .. } | Outcome::Skipped { .. } => None,
        }
    }

    /// The same outcome with its result key cut to `max_key` characters and its message to
    /// `max_message`, for a log line.
    pub fn bounded(&self, max_key: usize, max_message: usize) -> Outcome {
        let cut_error = |e: &Failure| Failure::new(e.code(), bounded(e.message(), max_message));
        match self {
            Outcome::Detected {
                result_key,
                detections,
            } => Outcome::Detected {
                result_key: bounded(result_key, max_key),
                detections: *detections,
            },
            Outcome::Failed { result_key, error } => Outcome::Failed {
                result_key: result_key.as_deref().map(|k| bounded(k, max_key)),
                error: cut_error(error),
            },
            Outcome::Skipped { reason } => Outcome::Skipped { reason },
            Outcome::Retry { error } => Outcome::Retry {
                error: cut_error(error),
            },
        }
    }
}

/// The fields an outcome is written as.
#[derive(Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Fields<'a> {
    Detected {
        result_key: &'a str,
        detections: usize,
    },
    Failed {
        #[serde(skip_serializing_if = "Option::is_none")]
        result_key: Option<&'a str>,
        error_code: ErrorCode,
        error: &'a str,
    },
    Skipped {
        reason: &'static str,
    },
    Retry {
        error_code: ErrorCode,
        error: &'a str,
    },
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Outcome::Detected {
                result_key,
                detections,
            } => Fields::Detected {
                result_key,
                detections: *detections,
            },
            Outcome::Failed { result_key, error } => Fields::Failed {
                result_key: result_key.as_deref(),
                error_code: error.code(),
                error: error.message(),
            },
            Outcome::Skipped { reason } => Fields::Skipped { reason },
            Outcome::Retry { error } => Fields::Retry {
                error_code: error.code(),
                error: error.message(),
            },
        }
        .serialize(serializer)
    }
}

/// One object's outcome, with where its time went.
#[derive(Debug, Clone)]
pub struct Report {
    pub object: ObjectRef,
    pub outcome: Outcome,
    /// What the metrics need of the detection, when it ran and its result was written.
    pub detected: Option<DetectionStats>,
    /// Fetching, detecting (without the wait for the plan) and writing, in milliseconds.
    pub fetch_ms: f64,
    pub detect_ms: f64,
    pub write_ms: f64,
    pub total_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_are_written_with_their_failure_as_error_code_and_error() {
        let failed = Outcome::Failed {
            result_key: None,
            error: Failure::new(ErrorCode::NotAnImage, "not an image"),
        };
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"outcome": "failed", "error_code": "not_an_image", "error": "not an image"})
        );
        let retry = Outcome::Retry {
            error: Failure::new(ErrorCode::StorageUnavailable, "x".repeat(300)),
        };
        let cut = retry.bounded(10, 100);
        assert_eq!(cut.error().unwrap().message().chars().count(), 101);
        assert_eq!(
            serde_json::to_value(&cut).unwrap()["error_code"],
            "storage_unavailable"
        );
    }
}
