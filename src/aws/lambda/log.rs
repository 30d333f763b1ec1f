//! One structured log line per request, as JSON on stderr (Lambda sends stdout and stderr to CloudWatch
//! Logs, which keeps each line as an event and lets Logs Insights query its fields; stdout carries the
//! metric records). With the function's log format set to JSON, Lambda reads `level` to filter lines.
//!
//! Text the client controls (method, path, messages that quote the input) is cut to a bound, so a
//! request cannot write an unbounded line.

use serde::Serialize;

use super::events::EventKind;
use super::record::{ObjectCounts, Record};
use super::Route;
use crate::aws::batch::{Outcome, Report};
use crate::core::error::{bounded, Failure};
use crate::core::error_code::ErrorCode;
use crate::core::response::Timings;

/// Longest method, path and error message written, in characters.
const MAX_METHOD: usize = 16;
const MAX_PATH: usize = 256;
const MAX_ERROR: usize = 512;
/// Longest request id and trace header written (Lambda's are 36 and about 80 characters).
const MAX_ID: usize = 256;
/// Longest bucket, key and version id written (S3 keys are at most 1024 bytes; a line names the
/// start of one, enough to find the object).
const MAX_KEY: usize = 256;

/// The images of a request of several, by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImageCounts {
    pub detected: usize,
    pub failed: usize,
}

#[derive(Debug, Serialize)]
pub struct Entry {
    pub level: &'static str,
    pub message: &'static str,
    pub request_id: String,
    /// The X-Ray trace header of the invocation (what Lambda also exports as `_X_AMZN_TRACE_ID`).
    pub trace_id: Option<String>,
    pub event: Option<&'static str>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub route: Option<&'static str>,
    pub status: Option<u16>,
    pub bytes: Option<usize>,
    pub image: Option<(u32, u32)>,
    /// A request of several images: how many were answered with detections and how many failed.
    pub images: Option<ImageCounts>,
    /// The detections found (in all the images of a request of several).
    pub detections: Option<usize>,
    pub timings: Option<Timings>,
    pub error_code: Option<ErrorCode>,
    pub error: Option<String>,
    /// Object events: what became of the objects.
    pub objects: Option<ObjectCounts>,
    pub duration_ms: f64,
}

impl Entry {
    pub fn new(request_id: &str, trace_id: Option<&str>) -> Entry {
        Entry {
            level: "INFO",
            message: "request",
            request_id: bounded(request_id, MAX_ID),
            trace_id: trace_id.map(|t| bounded(t, MAX_ID)),
            event: None,
            method: None,
            path: None,
            route: None,
            status: None,
            bytes: None,
            image: None,
            images: None,
            detections: None,
            timings: None,
            error_code: None,
            error: None,
            objects: None,
            duration_ms: 0.0,
        }
    }

    /// The entry of what `record` says the invocation did.
    pub fn of(record: &Record, request_id: &str, trace_id: Option<&str>) -> Entry {
        let mut entry = Entry::new(request_id, trace_id);
        entry.event = record.event.map(EventKind::name);
        entry.method = record.method.as_ref().map(|m| m.as_str().to_string());
        entry.path = record.path.clone();
        entry.route = record.route.as_ref().map(Route::name);
        entry.status = record.status;
        entry.bytes = record.bytes;
        match (record.detections.as_slice(), record.failed_images.len()) {
            ([], 0) => {}
            ([d], 0) => {
                entry.image = Some(d.image);
                entry.detections = Some(d.detected.detections);
                entry.timings = Some(d.detected.timings);
            }
            (several, failed) => {
                entry.images = Some(ImageCounts {
                    detected: several.len(),
                    failed,
                });
                entry.detections = Some(several.iter().map(|d| d.detected.detections).sum());
            }
        }
        entry.error_code = record.error.as_ref().map(Failure::code);
        entry.error = record.error.as_ref().map(|e| e.message().to_string());
        if let Some(objects) = &record.objects {
            entry.objects = Some(objects.counts);
            if entry.error.is_none() {
                entry.error = objects
                    .unreadable
                    .as_ref()
                    .map(|why| format!("unreadable message: {why}"));
            }
        }
        entry.duration_ms = record.duration_ms;
        entry
    }

    /// The line, with its level from the status and client text cut to its bounds.
    pub fn line(mut self) -> String {
        self.level = match self.status {
            Some(s) if s >= 500 => "ERROR",
            Some(s) if s >= 400 => "WARN",
            _ => "INFO",
        };
        self.method = self.method.map(|m| bounded(&m, MAX_METHOD));
        self.path = self.path.map(|p| bounded(&p, MAX_PATH));
        self.error = self.error.map(|e| bounded(&e, MAX_ERROR));
        serde_json::to_string(&self).expect("a log entry always serializes")
    }
}

/// One line per object of an object event, beside the invocation's line.
#[derive(Debug, Serialize)]
pub struct ObjectEntry {
    pub level: &'static str,
    pub message: &'static str,
    pub request_id: String,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub fetch_ms: f64,
    pub detect_ms: f64,
    pub write_ms: f64,
    pub duration_ms: f64,
}

impl ObjectEntry {
    pub fn line(report: &Report, request_id: &str) -> String {
        let level = match &report.outcome {
            Outcome::Detected { .. } | Outcome::Skipped { .. } => "INFO",
            Outcome::Failed { .. } => "WARN",
            Outcome::Retry { .. } => "ERROR",
        };
        let entry = ObjectEntry {
            level,
            message: "object",
            request_id: bounded(request_id, MAX_ID),
            bucket: bounded(&report.object.bucket, MAX_KEY),
            key: bounded(&report.object.key, MAX_KEY),
            version_id: report
                .object
                .version_id
                .as_deref()
                .map(|v| bounded(v, MAX_KEY)),
            outcome: report.outcome.bounded(MAX_KEY, MAX_ERROR),
            fetch_ms: report.fetch_ms,
            detect_ms: report.detect_ms,
            write_ms: report.write_ms,
            duration_ms: report.total_ms,
        };
        serde_json::to_string(&entry).expect("a log entry always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_cut_and_the_level_follows_the_status() {
        let mut e = Entry::new("id", Some("Root=1-abc"));
        e.method = Some("X".repeat(100));
        e.path = Some("/é".repeat(1000));
        e.error = Some("e".repeat(10_000));
        e.status = Some(400);
        let v: serde_json::Value = serde_json::from_str(&e.line()).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["trace_id"], "Root=1-abc");
        assert_eq!(
            v["method"].as_str().unwrap().chars().count(),
            MAX_METHOD + 1
        );
        assert_eq!(v["path"].as_str().unwrap().chars().count(), MAX_PATH + 1);
        assert!(v["path"].as_str().unwrap().ends_with('…'));
        assert_eq!(v["error"].as_str().unwrap().chars().count(), MAX_ERROR + 1);
        for (status, level) in [(200, "INFO"), (404, "WARN"), (500, "ERROR")] {
            let mut e = Entry::new("id", None);
            e.status = Some(status);
            let v: serde_json::Value = serde_json::from_str(&e.line()).unwrap();
            assert_eq!(v["level"], level);
            assert_eq!(v["method"], serde_json::Value::Null);
        }
    }
}
