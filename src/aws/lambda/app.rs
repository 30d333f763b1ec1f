//! The function: [`App`] holds the warm detector and the configuration, and handles one event at a
//! time, from dispatch to the answer, its log line and its metric records.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::{to_raw_value, RawValue};
use serde_json::{json, Value};

use super::cors::AllowedOrigins;
use super::demo::DemoPage;
use super::events::{self, EventKind, HttpKind};
use super::protocols::{self, native, rekognition};
use super::record::Record;
use super::reply::{self, Reply};
use super::service::Service;
use super::{body, error, log, object_answer, Config, Handled, Invocation};
use crate::aws::batch::Batch;
use crate::aws::image_url::UrlFetcher;
use crate::aws::metrics::Metrics;
use crate::core::detector::Detector;
use crate::core::error::Failure;
use crate::core::options::Format;
use crate::core::response::millis;
use aws_lambda_events::http::Method;

/// The function: a warm detector plus configuration, shared by every invocation.
pub struct App {
    /// Shared, so other handlers (and tests) can serve from the same warm plan.
    detector: Arc<Detector>,
    /// The origins browsers may read answers from.
    cors: Option<AllowedOrigins>,
    /// `GET /model` body, serialized once.
    model_info: String,
    metrics: Option<Metrics>,
    /// Object events' processor.
    batch: Batch,
    /// `image_url`'s fetcher; `None` when URL input is off.
    urls: Option<UrlFetcher>,
    /// The page to try the function; `None` with `DEMO_PAGE=off`.
    demo: Option<DemoPage>,
    /// No invocation has been handled yet: the next one is the cold start.
    cold: AtomicBool,
}

impl App {
    /// Fails on a batch setting the model cannot take (`DETECT_OPTIONS`), an output location that
    /// would notify the function of its own results, or an `IMAGE_URL_CA_FILE` without certificates.
    pub fn new(detector: Arc<Detector>, config: Config) -> crate::Result<App> {
        let Config {
            cors_allow_origin,
            metrics,
            function,
            batch,
            image_url,
            demo_page,
        } = config;
        let batch = Batch::new(Arc::clone(&detector), batch)?;
        let urls = image_url
            .map(|config| UrlFetcher::new(&config))
            .transpose()
            .map_err(|detail| crate::Error::Setting {
                variable: "IMAGE_URL_CA_FILE",
                detail,
            })?;
        let model_info = native::model_info(&detector);
        let model_load_ms = millis(detector.plan_build_time());
        let metrics = metrics
            .map(|metrics| Metrics::new(metrics, &detector.model_ref(), model_load_ms, function));
        Ok(App {
            detector,
            cors: cors_allow_origin,
            model_info,
            metrics,
            batch,
            urls,
            demo: demo_page.then(DemoPage::new),
            cold: AtomicBool::new(true),
        })
    }

    /// Handles one event, writing its log line to stderr and its metric records to stdout. `Ok` is
    /// the response payload (serialized JSON, so floats keep their shortest form and fields their
    /// documented order); `Err` is for direct invocations only: the Lambda function error, whose
    /// `errorType` is the stable error code (a Rekognition-shaped invocation's: the exception's name).
    pub async fn handle(
        &self,
        event: Value,
        invocation: Invocation<'_>,
    ) -> Result<Box<RawValue>, lambda_runtime::Diagnostic> {
        let handled = self.handle_recorded(event, invocation).await;
        // Write errors (a closed stream) lose a line, never the answer.
        let mut err = std::io::stderr().lock();
        for line in &handled.object_lines {
            let _ = writeln!(err, "{line}");
        }
        let _ = writeln!(err, "{}", handled.log_line);
        drop(err);
        if !handled.metric_records.is_empty() {
            let mut out = std::io::stdout().lock();
            for record in &handled.metric_records {
                let _ = writeln!(out, "{record}");
            }
            let _ = out.flush();
        }
        handled
            .result
            .map_err(|failure| error::function_error(failure, handled.error_type))
    }

    /// [`App::handle`], returning the log line and metric records instead of writing them.
    pub async fn handle_recorded(&self, event: Value, invocation: Invocation<'_>) -> Handled {
        let start = Instant::now();
        let cold_start = self.cold.swap(false, Ordering::Relaxed);
        let (result, mut record) = self.dispatch(event).await;
        record.duration_ms = millis(start.elapsed());
        let object_lines = record
            .objects
            .iter()
            .flat_map(|objects| &objects.reports)
            .map(|report| log::ObjectEntry::line(report, invocation.request_id))
            .collect();
        let metric_records = match &self.metrics {
            None => Vec::new(),
            Some(metrics) => record
                .observations(cold_start, invocation.request_id)
                .iter()
                .flat_map(|o| metrics.records(o))
                .collect(),
        };
        let log_line = log::Entry::of(&record, invocation.request_id, invocation.trace_id).line();
        let error_type = match (&result, record.event) {
            (Err(failure), Some(EventKind::DirectRekognition)) => {
                Some(rekognition::exception(failure.code()).0)
            }
            _ => None,
        };
        Handled {
            result,
            log_line,
            object_lines,
            metric_records,
            error_type,
        }
    }

    /// Answers the event by its shape, with the record of what was done.
    async fn dispatch(&self, event: Value) -> (Result<Box<RawValue>, Failure>, Record) {
        let kind = events::classify(&event);
        let mut record = Record::new(kind);
        let result = match kind {
            Some(EventKind::Direct) => self.direct(event, &mut record).await,
            Some(EventKind::DirectRekognition) => {
                rekognition::detect_labels(&self.service(), event, &mut record)
                    .await
                    .and_then(|text| {
                        RawValue::from_string(text).map_err(|e| Failure::internal(e.to_string()))
                    })
            }
            Some(EventKind::Http(kind)) => {
                // The HTTP path records the status and error of the reply it sends.
                let response = self.http(kind, event, &mut record).await;
                return (
                    to_raw_value(&response).map_err(|e| Failure::internal(e.to_string())),
                    record,
                );
            }
            Some(EventKind::Objects(source)) => {
                let (result, objects) = object_answer::answer(&self.batch, source, event).await;
                record.objects = Some(objects);
                result
            }
            None => Err(error::invalid_event(&event)),
        };
        match &result {
            Ok(_) => record.answered(200, None),
            Err(e) => record.answered(e.status(), Some(e.clone())),
        }
        (result, record)
    }

    /// `{"image": "<base64>", ...options}` (or `image_url`, `s3`, `images`) from an SDK, the CLI or Step
    /// Functions: the response body itself.
    async fn direct(&self, event: Value, record: &mut Record) -> Result<Box<RawValue>, Failure> {
        let (images, options) = body::from_json_value(event)?;
        if matches!(options.format, Some(Format::Picture(_))) {
            return Err(Failure::from(&crate::Error::InvalidParameter {
                name: "format".into(),
                detail: "a direct invocation answers JSON; ask for `annotate: true` to get the \
                         picture as base64 `annotated_image`"
                    .into(),
            }));
        }
        let text = match native::detect_images(&self.service(), images, &options, record).await? {
            native::Detected::One(response) => reply::json_body(&response)?,
            native::Detected::List(text) => text,
        };
        RawValue::from_string(text).map_err(|e| Failure::internal(e.to_string()))
    }

    async fn http(&self, kind: HttpKind, event: Value, record: &mut Record) -> Value {
        let mut origin = None;
        let reply = match events::parse(kind, event) {
            Ok(request) => {
                record.method = Some(request.method.clone());
                record.path = Some(request.path.clone());
                origin = request.header("origin").map(str::to_string);
                self.route(&request, record).await
            }
            Err(e) => Reply::from(e),
        };
        let (status, error) = (reply.status, reply.error.clone());
        match events::respond(kind, reply, self.cors.as_ref(), origin.as_deref()) {
            Ok(value) => {
                record.answered(status, error);
                value
            }
            // The answer could not be written in the event's shape: a 500 of our own, recorded as
            // what is sent. Its reply is JSON with one header; if even that fails, the bare status.
            Err(failure) => {
                let fallback = Reply::from(failure.clone());
                let value = events::respond(kind, fallback, None, None)
                    .unwrap_or_else(|_| json!({"statusCode": failure.status()}));
                record.answered(failure.status(), Some(failure));
                value
            }
        }
    }

    fn service(&self) -> Service<'_> {
        Service {
            detector: &self.detector,
            model_info: &self.model_info,
            batch: &self.batch,
            urls: self.urls.as_ref(),
            demo: self.demo.as_ref(),
        }
    }

    async fn route(&self, request: &events::Request, record: &mut Record) -> Reply {
        let Some(route) = protocols::route(request) else {
            return Reply::from(error::not_found(&request.path));
        };
        record.route = Some(route.clone());
        let method = &request.method;
        if method == Method::OPTIONS {
            return Reply::no_content(route.allow());
        }
        if !route.allows(method) {
            let mut reply = route.error(error::method_not_allowed(method.as_str(), route.allow()));
            reply.allow = Some(route.allow());
            return reply;
        }
        protocols::answer(&self.service(), &route, request, record).await
    }
}
