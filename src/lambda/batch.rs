//! Object events through the batch path, answered as each source expects:
//!
//! - SQS: a partial batch response, `{"batchItemFailures": [{"itemIdentifier": "<messageId>"}]}`,
//!   naming exactly the messages to retry (a transient failure of any of their objects, or a body
//!   that names nothing readable); the queue redelivers them and, past its receive count, moves them
//!   to the dead-letter queue. Needs `ReportBatchItemFailures` on the event source mapping.
//! - S3, EventBridge, object batches: a summary of what became of each object, or a function error
//!   when anything must be retried, so Lambda's async retries (and failure destination) or the
//!   state machine's `Retry` take over.

use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::error::ApiError;
use super::log::{Entry, ObjectCounts, ObjectEntry};
use super::objects::{self, Content, ObjectSource, Unit};
use crate::batch::{Outcome, Report};
use crate::error_code::ErrorCode;

/// What an object event did: the answer, one log line per object, and the reports for the metrics.
pub struct Processed {
    pub result: Result<Box<RawValue>, ApiError>,
    pub object_lines: Vec<String>,
    pub reports: Vec<Report>,
}

impl super::App {
    pub(super) async fn objects(
        &self,
        source: ObjectSource,
        event: Value,
        entry: &mut Entry,
    ) -> Processed {
        let units = objects::parse(source, event);
        // All objects of the event in one stream, so a batch's objects overlap; each remembers its unit.
        let mut owners = Vec::new();
        let mut all = Vec::new();
        for (i, unit) in units.iter().enumerate() {
            if let Content::Objects(list) = &unit.content {
                owners.extend(std::iter::repeat_n(i, list.len()));
                all.extend(list.iter().cloned());
            }
        }
        let reports = self.batch.process(all).await;
        let mut counts = ObjectCounts::default();
        let mut retry_unit = vec![false; units.len()];
        let mut first_retry: Option<(ErrorCode, String)> = None;
        for (report, &owner) in reports.iter().zip(&owners) {
            match &report.outcome {
                Outcome::Detected { .. } => counts.detected += 1,
                Outcome::Failed { .. } => counts.failed += 1,
                Outcome::Skipped { .. } => counts.skipped += 1,
                Outcome::Retry { code, message } => {
                    counts.retried += 1;
                    retry_unit[owner] = true;
                    first_retry.get_or_insert((*code, message.clone()));
                }
            }
        }
        let mut notes = Vec::new();
        for (i, unit) in units.iter().enumerate() {
            match &unit.content {
                Content::Objects(_) => {}
                Content::TestEvent | Content::Ignored(_) => counts.ignored += 1,
                Content::Unreadable(why) => {
                    counts.ignored += 1;
                    retry_unit[i] = true;
                    notes.push(why.clone());
                }
            }
        }
        let object_lines = reports
            .iter()
            .map(|r| ObjectEntry::line(r, &entry.request_id))
            .collect();
        entry.objects = Some(counts);
        let result = match (source, notes.first(), first_retry) {
            (ObjectSource::Sqs, ..) => sqs_answer(&units, &retry_unit),
            (_, Some(why), _) => Err(ApiError::new(
                ErrorCode::InvalidEvent,
                format!("malformed {} event: {why}", source.name()),
            )),
            (_, None, Some((code, message))) => Err(ApiError::new(
                code,
                format!(
                    "{} of {} objects must be retried; first: {message}",
                    counts.retried,
                    reports.len()
                ),
            )),
            (_, None, None) => summary(&reports, counts),
        };
        // An error's status, code and message are recorded by `handle_recorded`, as for every event.
        if result.is_ok() {
            entry.status = Some(200);
            if let Some(why) = notes.first() {
                entry.error = Some(format!("unreadable message: {why}"));
            }
        }
        Processed {
            result,
            object_lines,
            reports,
        }
    }
}

/// The partial batch response; a message to retry without an id fails the whole batch instead.
fn sqs_answer(units: &[Unit], retry: &[bool]) -> Result<Box<RawValue>, ApiError> {
    let mut failures = Vec::new();
    for (unit, _) in units.iter().zip(retry).filter(|(_, &r)| r) {
        match &unit.message_id {
            Some(id) => failures.push(json!({"itemIdentifier": id})),
            None => {
                return Err(ApiError::new(
                    ErrorCode::InvalidEvent,
                    "an SQS record to retry has no `messageId`: the whole batch is retried",
                ))
            }
        }
    }
    raw(&json!({"batchItemFailures": failures}))
}

/// What became of each object, for direct S3 and EventBridge invocations and object batches.
fn summary(reports: &[Report], counts: ObjectCounts) -> Result<Box<RawValue>, ApiError> {
    let results: Vec<Value> = reports
        .iter()
        .map(|r| {
            let mut v = json!({"bucket": r.object.bucket, "key": r.object.key});
            match &r.outcome {
                Outcome::Detected {
                    result_key,
                    detections,
                } => {
                    v["outcome"] = json!("detected");
                    v["result_key"] = json!(result_key);
                    v["detections"] = json!(detections);
                }
                Outcome::Failed {
                    result_key, code, ..
                } => {
                    v["outcome"] = json!("failed");
                    v["result_key"] = json!(result_key);
                    v["error"] = json!(code);
                }
                Outcome::Skipped { reason } => {
                    v["outcome"] = json!("skipped");
                    v["reason"] = json!(reason);
                }
                Outcome::Retry { code, .. } => {
                    v["outcome"] = json!("retry");
                    v["error"] = json!(code);
                }
            }
            v
        })
        .collect();
    raw(&json!({
        "detected": counts.detected,
        "failed": counts.failed,
        "skipped": counts.skipped,
        "ignored": counts.ignored,
        "results": results,
    }))
}

fn raw(v: &Value) -> Result<Box<RawValue>, ApiError> {
    serde_json::value::to_raw_value(v).map_err(|e| ApiError::internal(e.to_string()))
}
