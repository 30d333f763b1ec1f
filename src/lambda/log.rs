//! One structured log line per request, as JSON on stderr (Lambda sends stdout and stderr to CloudWatch
//! Logs, which keeps each line as an event and lets Logs Insights query its fields; stdout stays free for
//! the local event runner's output).

use serde::Serialize;

use crate::error_code::ErrorCode;
use crate::response::Timings;

#[derive(Debug, Serialize)]
pub struct Entry {
    pub level: &'static str,
    pub message: &'static str,
    pub request_id: String,
    pub event: Option<&'static str>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub route: Option<&'static str>,
    pub status: Option<u16>,
    pub bytes: Option<usize>,
    pub image: Option<(u32, u32)>,
    pub detections: Option<usize>,
    pub timings: Option<Timings>,
    pub error_code: Option<ErrorCode>,
    pub error: Option<String>,
    pub duration_ms: f64,
}

impl Entry {
    pub fn new(request_id: &str) -> Entry {
        Entry {
            level: "INFO",
            message: "request",
            request_id: request_id.to_string(),
            event: None,
            method: None,
            path: None,
            route: None,
            status: None,
            bytes: None,
            image: None,
            detections: None,
            timings: None,
            error_code: None,
            error: None,
            duration_ms: 0.0,
        }
    }

    pub fn emit(mut self) {
        self.level = match self.status {
            Some(s) if s >= 500 => "ERROR",
            Some(s) if s >= 400 => "WARN",
            _ => "INFO",
        };
        if let Ok(line) = serde_json::to_string(&self) {
            eprintln!("{line}");
        }
    }
}
