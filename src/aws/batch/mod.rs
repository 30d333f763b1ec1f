//! The batch path: S3 objects named by events are fetched, detected and their results written back to
//! S3, with every failure sorted into final (an error result is written, the object is done) or
//! transient (nothing is written, the caller retries it).
//!
//! Objects of one invocation overlap: while one image is on the warm plan, the next ones are being
//! fetched and the previous results written, on the runtime. Inference runs one image at a time, on
//! a blocking thread, so the runtime keeps moving bytes meanwhile.

mod document;
mod outcome;
mod output;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use serde_json::json;

use crate::aws::metrics::Detected;
use crate::aws::s3::{S3Client, S3Config, S3Error};
use crate::core::detector::Detector;
use crate::core::error_code::ErrorCode;
use crate::core::options::{DetectOptions, Format};
use crate::core::response::{millis, Response};

use document::{json_bytes, Source};
pub use outcome::{Outcome, Report};
pub use output::{Output, RESULT_SUFFIX};

/// Default `MAX_OBJECT_BYTES`: 50 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 50 * 1024 * 1024;

/// Objects in flight at once in one invocation: one on the plan, the others being fetched or written.
/// Bounds the memory held by fetched images to this many times `MAX_OBJECT_BYTES`.
const IN_FLIGHT: usize = 4;

/// The batch path's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    pub output: Output,
    /// `INPUT_PREFIX`: objects outside it are skipped; `None` is the whole bucket.
    pub input_prefix: Option<String>,
    pub max_object_bytes: u64,
    /// `DETECT_OPTIONS`: the API's options for every object.
    pub options: DetectOptions,
    /// `ANNOTATE`: also write the annotated picture beside each result.
    pub annotate: Option<Format>,
    pub s3: S3Config,
}

impl Default for BatchConfig {
    fn default() -> BatchConfig {
        BatchConfig {
            output: Output::default(),
            input_prefix: None,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            options: DetectOptions::default(),
            annotate: None,
            s3: S3Config::default(),
        }
    }
}

/// An S3 object to process, as an event names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The key itself (decoded where the event encodes it).
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    /// The size the event reports; the object's own size is checked when it is fetched.
    pub size: Option<u64>,
}

/// The batch processor: the warm detector, the S3 client (made on first use, so the HTTP function
/// never pays for it), and the one-at-a-time plan.
pub struct Batch {
    detector: Arc<Detector>,
    config: BatchConfig,
    s3: OnceLock<Result<S3Client, String>>,
    plan: tokio::sync::Mutex<()>,
}

impl Batch {
    /// Checks the settings against the model (`DETECT_OPTIONS` labels and ranges) and the loop guard.
    pub fn new(detector: Arc<Detector>, config: BatchConfig) -> crate::Result<Batch> {
        let setting =
            |variable: &'static str, detail: String| crate::Error::Setting { variable, detail };
        config
            .options
            .resolve(detector.manifest())
            .map_err(|e| setting("DETECT_OPTIONS", e.to_string()))?;
        config
            .output
            .check(config.input_prefix.as_deref())
            .map_err(|detail| setting("OUTPUT_PREFIX", detail))?;
        Ok(Batch {
            detector,
            config,
            s3: OnceLock::new(),
            plan: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    fn s3(&self) -> Result<&S3Client, String> {
        self.s3
            .get_or_init(|| S3Client::new(&self.config.s3))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Processes objects, several in flight, reporting in their order.
    pub async fn process(&self, objects: Vec<ObjectRef>) -> Vec<Report> {
        stream::iter(objects)
            .map(|object| self.one(object))
            .buffered(IN_FLIGHT)
            .collect()
            .await
    }

    async fn one(&self, object: ObjectRef) -> Report {
        let start = Instant::now();
        let mut report = Report {
            object,
            outcome: Outcome::Skipped { reason: "" },
            detected: None,
            fetch_ms: 0.0,
            detect_ms: 0.0,
            write_ms: 0.0,
            total_ms: 0.0,
        };
        report.outcome = self.run(&mut report).await;
        report.total_ms = millis(start.elapsed());
        report
    }

    async fn run(&self, report: &mut Report) -> Outcome {
        let object = report.object.clone();
        let output = &self.config.output;
        if output.is_output(&object.bucket, &object.key) {
            return Outcome::Skipped {
                reason: "written by this function (under OUTPUT_PREFIX)",
            };
        }
        if let Some(prefix) = &self.config.input_prefix {
            if !object.key.starts_with(prefix.as_str()) {
                return Outcome::Skipped {
                    reason: "outside INPUT_PREFIX",
                };
            }
        }
        let s3 = match self.s3() {
            Ok(s3) => s3,
            Err(e) => return retry(ErrorCode::StorageUnavailable, e),
        };
        let limit = self.config.max_object_bytes;
        let fetched = match object.size.filter(|&size| size > limit) {
            Some(size) => Err(S3Error::TooLarge { size, limit }),
            None => {
                let t = Instant::now();
                let got = s3
                    .get(
                        &object.bucket,
                        &object.key,
                        object.version_id.as_deref(),
                        limit,
                    )
                    .await;
                report.fetch_ms = millis(t.elapsed());
                got
            }
        };
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(e) if e.is_transient() => return retry(e.code(), e.to_string()),
            // The result's own key has the same segments: nothing can be written for it.
            Err(e @ S3Error::UnaddressableKey) => {
                return Outcome::Failed {
                    result_key: None,
                    code: e.code(),
                    message: e.to_string(),
                }
            }
            Err(e) => {
                let source = Source::notified(&object);
                return self
                    .fail(s3, report, &source, e.code(), e.to_string())
                    .await;
            }
        };
        let source = Source::fetched(&object, &fetched);
        let detected = self.detect(fetched.bytes.clone(), report).await;
        let mut response = match detected {
            Ok(response) => response,
            Err((code, message)) if !code.is_client_error() => return retry(code, message),
            Err((code, message)) => return self.fail(s3, report, &source, code, message).await,
        };
        let bucket = output.bucket_for(&object.bucket);
        let t = Instant::now();
        let mut annotated_key = None;
        if let Some(picture) = response.annotated.take() {
            let picture_key = output.picture_key(&object.key, picture.encoding.extension());
            if let Err(e) = s3
                .put(
                    bucket,
                    &picture_key,
                    Bytes::from(picture.bytes),
                    picture.encoding.content_type(),
                )
                .await
            {
                report.write_ms = millis(t.elapsed());
                return write_failed(e);
            }
            annotated_key = Some(picture_key);
        }
        let result_key = output.result_key(&object.key);
        let written = s3
            .put(
                bucket,
                &result_key,
                source.result(&response, annotated_key.as_deref()),
                "application/json",
            )
            .await;
        report.write_ms = millis(t.elapsed());
        if let Err(e) = written {
            return write_failed(e);
        }
        let detections = response.detections.len();
        report.detected = Some(Detected::of(&response));
        Outcome::Detected {
            result_key,
            detections,
        }
    }

    /// Runs the detector on a blocking thread, one image at a time; `detect_ms` is the time with the
    /// plan, not the wait for it.
    async fn detect(
        &self,
        bytes: Bytes,
        report: &mut Report,
    ) -> Result<Response, (ErrorCode, String)> {
        let _plan = self.plan.lock().await;
        let start = Instant::now();
        let detector = Arc::clone(&self.detector);
        let mut options = self.config.options.clone();
        if self.config.annotate.is_some() {
            options.format = self.config.annotate;
        }
        let detected = tokio::task::spawn_blocking(move || detector.detect(&bytes, &options)).await;
        report.detect_ms = millis(start.elapsed());
        detected
            .map_err(|e| {
                (
                    ErrorCode::InternalError,
                    format!("the detection task failed: {e}"),
                )
            })?
            .map_err(|e| (e.code(), e.to_string()))
    }

    /// Writes the error result of a final failure; a failure to write it is retried like any write.
    async fn fail(
        &self,
        s3: &S3Client,
        report: &mut Report,
        source: &Source<'_>,
        code: ErrorCode,
        message: String,
    ) -> Outcome {
        let message = crate::core::error::bounded(&message, 1024);
        let document = json!({
            "model": self.detector.model_ref(),
            "error": {"code": code, "message": message},
            "source": source.json(),
        });
        let result_key = self.config.output.result_key(&source.object.key);
        let bucket = self.config.output.bucket_for(&source.object.bucket);
        let t = Instant::now();
        let written = s3
            .put(
                bucket,
                &result_key,
                json_bytes(&document),
                "application/json",
            )
            .await;
        report.write_ms = millis(t.elapsed());
        match written {
            Ok(()) => Outcome::Failed {
                result_key: Some(result_key),
                code,
                message,
            },
            Err(e) => write_failed(e),
        }
    }
}

fn retry(code: ErrorCode, message: String) -> Outcome {
    Outcome::Retry {
        code,
        message: crate::core::error::bounded(&message, 1024),
    }
}

/// A result that could not be written: retried when S3 may take it later; final otherwise.
fn write_failed(e: S3Error) -> Outcome {
    let message = format!("writing the result: {e}");
    if e.is_transient() {
        retry(e.code(), message)
    } else {
        Outcome::Failed {
            result_key: None,
            code: e.code(),
            message,
        }
    }
}
