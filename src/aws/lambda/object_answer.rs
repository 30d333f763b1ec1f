//! Object events through the batch path, answered as each source expects:
//!
//! - SQS: a partial batch response, `{"batchItemFailures": [{"itemIdentifier": "<messageId>"}]}`,
//!   naming exactly the messages to retry (a transient failure of any of their objects, or a body
//!   that names nothing readable); the queue redelivers them and, past its receive count, moves them
//!   to the dead-letter queue. Needs `ReportBatchItemFailures` on the event source mapping.
//! - S3, EventBridge, object batches: a summary of what became of each object, or a function error
//!   when anything must be retried, so Lambda's async retries (and failure destination) or the
//!   state machine's `Retry` take over.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::objects::{self, Content, Delivery, ObjectSource};
use super::record::{ObjectCounts, Objects};
use crate::aws::batch::{Batch, Outcome, Report};
use crate::core::error::Failure;
use crate::core::error_code::ErrorCode;

/// Runs the objects `event` names through `batch` and answers as `source` expects; the objects'
/// reports and counts are returned beside the answer, for the log lines and the metrics.
pub(super) async fn answer(
    batch: &Batch,
    source: ObjectSource,
    event: Value,
) -> (Result<Box<RawValue>, Failure>, Objects) {
    let deliveries = objects::parse(source, event);
    // All objects of the event in one stream, so a batch's objects overlap; each remembers its delivery.
    let mut owners = Vec::new();
    let mut all = Vec::new();
    for (i, delivery) in deliveries.iter().enumerate() {
        if let Content::Objects(list) = &delivery.content {
            owners.extend(std::iter::repeat_n(i, list.len()));
            all.extend(list.iter().cloned());
        }
    }
    let reports = batch.process(all).await;
    let mut counts = ObjectCounts::default();
    let mut retry_delivery = vec![false; deliveries.len()];
    let mut first_retry: Option<&Failure> = None;
    for (report, &owner) in reports.iter().zip(&owners) {
        match &report.outcome {
            Outcome::Detected { .. } => counts.detected += 1,
            Outcome::Failed { .. } => counts.failed += 1,
            Outcome::Skipped { .. } => counts.skipped += 1,
            Outcome::Retry { error } => {
                counts.retried += 1;
                retry_delivery[owner] = true;
                first_retry.get_or_insert(error);
            }
        }
    }
    let mut notes = Vec::new();
    for (i, delivery) in deliveries.iter().enumerate() {
        match &delivery.content {
            Content::Objects(_) => {}
            Content::TestEvent | Content::Ignored(_) => counts.ignored += 1,
            Content::Unreadable(why) => {
                counts.ignored += 1;
                retry_delivery[i] = true;
                notes.push(why.clone());
            }
        }
    }
    let result = match (source, notes.first(), first_retry) {
        (ObjectSource::Sqs, ..) => sqs_answer(&deliveries, &retry_delivery),
        (_, Some(why), _) => Err(Failure::new(
            ErrorCode::InvalidEvent,
            format!("malformed {} event: {why}", source.name()),
        )),
        (_, None, Some(first)) => Err(Failure::new(
            first.code(),
            format!(
                "{} of {} objects must be retried; first: {}",
                counts.retried,
                reports.len(),
                first.message()
            ),
        )),
        (_, None, None) => summary(&reports, counts),
    };
    let objects = Objects {
        counts,
        reports,
        unreadable: notes.into_iter().next(),
    };
    (result, objects)
}

/// The partial batch response; a message to retry without an id fails the whole batch instead.
fn sqs_answer(deliveries: &[Delivery], retry: &[bool]) -> Result<Box<RawValue>, Failure> {
    let mut failures = Vec::new();
    for (delivery, _) in deliveries.iter().zip(retry).filter(|(_, &r)| r) {
        match &delivery.message_id {
            Some(id) => failures.push(json!({"itemIdentifier": id})),
            None => {
                return Err(Failure::new(
                    ErrorCode::InvalidEvent,
                    "an SQS record to retry has no `messageId`: the whole batch is retried",
                ))
            }
        }
    }
    raw(&json!({"batchItemFailures": failures}))
}

/// What became of each object, for direct S3 and EventBridge invocations and object batches: its
/// bucket and key beside the outcome's fields, as its log line has them.
fn summary(reports: &[Report], counts: ObjectCounts) -> Result<Box<RawValue>, Failure> {
    #[derive(Serialize)]
    struct ObjectResult<'a> {
        bucket: &'a str,
        key: &'a str,
        #[serde(flatten)]
        outcome: &'a Outcome,
    }
    let results: Vec<ObjectResult> = reports
        .iter()
        .map(|r| ObjectResult {
            bucket: &r.object.bucket,
            key: &r.object.key,
            outcome: &r.outcome,
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

fn raw(v: &Value) -> Result<Box<RawValue>, Failure> {
    serde_json::value::to_raw_value(v).map_err(|e| Failure::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::batch::ObjectRef;
    use crate::aws::lambda::log::ObjectEntry;

    fn report(key: &str, outcome: Outcome) -> Report {
        Report {
            object: ObjectRef {
                bucket: "photos".into(),
                key: key.into(),
                version_id: None,
                etag: None,
                size: None,
            },
            outcome,
            detected: None,
            fetch_ms: 1.0,
            detect_ms: 2.0,
            write_ms: 3.0,
            total_ms: 6.0,
        }
    }

    #[test]
    fn the_summary_and_the_log_lines_name_each_outcome_alike() {
        let reports = [
            report(
                "a.jpg",
                Outcome::Detected {
                    result_key: "detections/a.jpg.json".into(),
                    detections: 3,
                },
            ),
            report(
                "b.txt",
                Outcome::Failed {
                    result_key: Some("detections/b.txt.json".into()),
                    error: Failure::new(ErrorCode::NotAnImage, "the bytes are not an image"),
                },
            ),
            report(
                "detections/c.json",
                Outcome::Skipped {
                    reason: "written by this function (under OUTPUT_PREFIX)",
                },
            ),
        ];
        let counts = ObjectCounts {
            detected: 1,
            failed: 1,
            skipped: 1,
            ..ObjectCounts::default()
        };
        let summary: Value =
            serde_json::from_str(summary(&reports, counts).unwrap().get()).unwrap();
        let expected = [
            json!({"bucket": "photos", "key": "a.jpg", "outcome": "detected",
                   "result_key": "detections/a.jpg.json", "detections": 3}),
            json!({"bucket": "photos", "key": "b.txt", "outcome": "failed",
                   "result_key": "detections/b.txt.json", "error_code": "not_an_image",
                   "error": "the bytes are not an image"}),
            json!({"bucket": "photos", "key": "detections/c.json", "outcome": "skipped",
                   "reason": "written by this function (under OUTPUT_PREFIX)"}),
        ];
        assert_eq!(summary["results"], json!(expected));
        assert_eq!(
            (
                summary["detected"].clone(),
                summary["failed"].clone(),
                summary["skipped"].clone()
            ),
            (json!(1), json!(1), json!(1))
        );
        for (report, expected) in reports.iter().zip(&expected) {
            let line: Value = serde_json::from_str(&ObjectEntry::line(report, "req")).unwrap();
            for (field, value) in expected.as_object().unwrap() {
                assert_eq!(&line[field], value, "{field} in {line}");
            }
            assert_eq!(line["request_id"], "req");
            assert_eq!(line["fetch_ms"], 1.0);
        }
    }
}
