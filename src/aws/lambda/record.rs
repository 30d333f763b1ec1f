//! What one invocation did, as a typed record. Dispatch fills it in as it goes; the log line
//! ([`super::log::Entry::of`]) and the metric observations ([`Record::observations`]) are two
//! functions of it, and neither reads the other.

use aws_lambda_events::http::Method;
use serde::Serialize;

use super::events::EventKind;
use super::Route;
use crate::aws::batch::Report;
use crate::aws::metrics::{DetectionStats, Observation};
use crate::core::error::Failure;
use crate::core::error_code::ErrorCode;

#[derive(Debug, Default)]
pub struct Record {
    /// The event's shape; `None` when no known shape matched.
    pub event: Option<EventKind>,
    /// HTTP events: the request's method and path, and the route they reached.
    pub method: Option<Method>,
    pub path: Option<String>,
    pub route: Option<Route>,
    /// The status answered: the HTTP status, or 200 / the error's status for other events.
    pub status: Option<u16>,
    pub error: Option<Failure>,
    /// The image's bytes, once read from the request.
    pub bytes: Option<usize>,
    /// What each detection found, in the order they ran: one for a request of one image, one per
    /// image answered for a request of several (`images`, TF Serving's `instances`).
    pub detections: Vec<Detection>,
    /// The items of a request of several that were answered with their own error, by code.
    pub failed_images: Vec<ErrorCode>,
    /// Object events: what became of the objects.
    pub objects: Option<Objects>,
    /// The whole invocation, in milliseconds.
    pub duration_ms: f64,
}

/// A detection that ran on the request's image.
#[derive(Debug)]
pub struct Detection {
    /// The upright image's width and height.
    pub image: (u32, u32),
    pub detected: DetectionStats,
}

/// An object event's objects.
#[derive(Debug, Default)]
pub struct Objects {
    pub counts: ObjectCounts,
    pub reports: Vec<Report>,
    /// The first message body that named nothing readable (an SQS message retried on its own while
    /// the event answers), for the log line.
    pub unreadable: Option<String>,
}

/// An object event's objects, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ObjectCounts {
    pub detected: usize,
    pub failed: usize,
    pub skipped: usize,
    pub retried: usize,
    /// Units that named nothing to detect: S3's test event, deletions, unreadable bodies.
    pub ignored: usize,
}

impl Record {
    pub fn new(event: Option<EventKind>) -> Record {
        Record {
            event,
            ..Record::default()
        }
    }

    /// The answer sent: its status and, for an error, the error.
    pub fn answered(&mut self, status: u16, error: Option<Failure>) {
        self.status = Some(status);
        self.error = error;
    }

    /// A detection request: a direct invocation, or `/detect` other than its CORS preflight.
    pub fn is_detection(&self) -> bool {
        matches!(
            self.event,
            Some(EventKind::Direct | EventKind::DirectRekognition)
        ) || (self.route.as_ref().is_some_and(Route::is_detection)
            && self.method != Some(Method::OPTIONS))
    }

    /// The metric observations: one per object that reached the detector or failed, for an object
    /// event (skipped objects count in the log line only); else one for the invocation. The first
    /// carries the cold start.
    pub fn observations(&self, cold_start: bool, request_id: &str) -> Vec<Observation> {
        let request_id = Some(request_id.to_string());
        let mut observations: Vec<Observation> = self
            .objects
            .iter()
            .flat_map(|objects| &objects.reports)
            .filter_map(|report| {
                let error = report.outcome.error().map(Failure::code);
                (report.detected.is_some() || error.is_some()).then(|| Observation {
                    latency_ms: Some(report.total_ms),
                    cold_start: false,
                    detected: report.detected.clone(),
                    error,
                    request_id: request_id.clone(),
                })
            })
            .collect();
        if observations.is_empty() {
            // One image: one observation. Several: the request's (its latency and error), then one per
            // image, what it found or the error it was answered with.
            let several = self.detections.len() > 1 || !self.failed_images.is_empty();
            observations.push(Observation {
                latency_ms: self.is_detection().then_some(self.duration_ms),
                cold_start: false,
                detected: match several {
                    false => self.detections.first().map(|d| d.detected.clone()),
                    true => None,
                },
                error: self.error.as_ref().map(Failure::code),
                request_id: request_id.clone(),
            });
            if several {
                let image = |detected, error| Observation {
                    latency_ms: None,
                    cold_start: false,
                    detected,
                    error,
                    request_id: request_id.clone(),
                };
                observations.extend(
                    self.detections
                        .iter()
                        .map(|d| image(Some(d.detected.clone()), None)),
                );
                observations.extend(
                    self.failed_images
                        .iter()
                        .map(|&code| image(None, Some(code))),
                );
            }
        }
        observations[0].cold_start = cold_start;
        observations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error_code::ErrorCode;

    #[test]
    fn a_detection_is_a_direct_invocation_or_a_detecting_route_but_not_its_preflight() {
        use crate::aws::lambda::protocols::{native, tf_serving};
        let http = |route, method| Record {
            route: Some(route),
            method: Some(method),
            ..Record::new(None)
        };
        assert!(Record::new(Some(EventKind::Direct)).is_detection());
        let detect = Route::Native(native::Route::Detect);
        assert!(http(detect.clone(), Method::POST).is_detection());
        assert!(!http(detect, Method::OPTIONS).is_detection());
        assert!(!http(Route::Native(native::Route::Health), Method::GET).is_detection());
        let tf = |endpoint| {
            Route::TfServing(tf_serving::Route {
                model: "m".into(),
                version: tf_serving::Selector::Latest,
                endpoint,
            })
        };
        assert!(http(tf(tf_serving::Endpoint::Predict), Method::POST).is_detection());
        assert!(!http(tf(tf_serving::Endpoint::Status), Method::GET).is_detection());
        assert!(!Record::new(None).is_detection());
    }

    #[test]
    fn one_observation_per_request_with_its_error_and_the_cold_start() {
        let mut record = Record::new(None);
        record.answered(400, Some(Failure::new(ErrorCode::InvalidEvent, "x")));
        let observations = record.observations(true, "id");
        assert_eq!(observations.len(), 1);
        let o = &observations[0];
        assert_eq!(o.error, Some(ErrorCode::InvalidEvent));
        assert_eq!(o.latency_ms, None, "not a detection");
        assert!(o.cold_start);
        assert_eq!(o.request_id.as_deref(), Some("id"));
    }
}
