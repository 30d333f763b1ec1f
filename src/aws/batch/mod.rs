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

use crate::aws::metrics::DetectionStats;
use crate::aws::s3::{self, S3Client, S3Config, S3Error};
use crate::core::coco::CategoryMap;
use crate::core::detector::Detector;
use crate::core::error::Failure;
use crate::core::error_code::ErrorCode;
use crate::core::export::{self, Export};
use crate::core::options::{DetectOptions, Format};
use crate::core::response::{millis, Encoding, Response};

use document::Source;
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
    pub annotate: Option<Encoding>,
    /// `OUTPUT_FORMAT`: results in COCO, YOLO or VOC instead of the API's JSON (`None`); an error
    /// result is JSON whatever the format.
    pub output_format: Option<Export>,
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
            output_format: None,
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
    s3: OnceLock<Result<S3Client, S3Error>>,
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
        if let Some(format) = config.output_format {
            if config.options.box_format.is_some() {
                return Err(setting(
                    "DETECT_OPTIONS",
                    "`box_format` is for JSON results; OUTPUT_FORMAT's formats define their own boxes"
                        .into(),
                ));
            }
            if format == Export::Coco && CategoryMap::of_manifest(detector.manifest()).is_none() {
                return Err(setting(
                    "OUTPUT_FORMAT",
                    format!(
                        "coco needs COCO category ids, and the model {}'s manifest has none",
                        detector.manifest().name
                    ),
                ));
            }
        }
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

    fn s3(&self) -> Result<&S3Client, Failure> {
        self.s3
            .get_or_init(|| S3Client::new(&self.config.s3))
            .as_ref()
            .map_err(|e| Failure::new(e.code(), e.to_string()))
    }

    /// Fetches one object for a request that names it (`/detect`'s `s3`, Rekognition's `S3Object`), with
    /// the batch path's client, size cap (`MAX_OBJECT_BYTES`) and error codes, but one: an object the
    /// role may not read is the request's fault (`object_unreadable`), not an outage to retry. The
    /// message names the object.
    pub async fn fetch_object(&self, object: &ObjectRef) -> Result<Bytes, Failure> {
        let s3 = self.s3()?;
        let (fetched, _) = self.fetch(s3, object).await;
        fetched.map(|o| o.bytes).map_err(|e| {
            let code = match &e {
                S3Error::Refused { status: 403, .. } => ErrorCode::ObjectUnreadable,
                e => e.code(),
            };
            Failure::new(
                code,
                format!(
                    "s3://{}/{}: {e}",
                    crate::core::error::bounded(&object.bucket, 64),
                    crate::core::error::bounded(&object.key, 256)
                ),
            )
        })
    }

    /// Processes objects, several in flight, reporting in their order.
    pub async fn process(&self, objects: Vec<ObjectRef>) -> Vec<Report> {
        stream::iter(objects)
            .map(|object| self.process_object(object))
            .buffered(IN_FLIGHT)
            .collect()
            .await
    }

    /// One object through the stages: the loop guard and the input prefix, the fetch, the detection,
    /// the writes. Each stage that runs puts its time in `times`.
    async fn process_object(&self, object: ObjectRef) -> Report {
        let start = Instant::now();
        let mut times = StageTimes::default();
        let (outcome, detected) = match self.skip_reason(&object) {
            Some(reason) => (Outcome::Skipped { reason }, None),
            None => match self.s3() {
                Ok(s3) => self.fetch_detect_write(s3, &object, &mut times).await,
                Err(error) => (Outcome::Retry { error }, None),
            },
        };
        Report {
            object,
            outcome,
            detected,
            fetch_ms: times.fetch_ms,
            detect_ms: times.detect_ms,
            write_ms: times.write_ms,
            total_ms: millis(start.elapsed()),
        }
    }

    /// Why an object is not processed: it is one of this function's outputs, or outside
    /// `INPUT_PREFIX`.
    fn skip_reason(&self, object: &ObjectRef) -> Option<&'static str> {
        if self.config.output.is_output(&object.bucket, &object.key) {
            return Some("written by this function (under OUTPUT_PREFIX)");
        }
        match &self.config.input_prefix {
            Some(prefix) if !object.key.starts_with(prefix.as_str()) => {
                Some("outside INPUT_PREFIX")
            }
            _ => None,
        }
    }

    async fn fetch_detect_write(
        &self,
        s3: &S3Client,
        object: &ObjectRef,
        times: &mut StageTimes,
    ) -> (Outcome, Option<DetectionStats>) {
        let (fetched, fetch_ms) = self.fetch(s3, object).await;
        times.fetch_ms = fetch_ms;
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(e) if e.is_transient() => return (retry(e.code(), e.to_string()), None),
            // The result's own key has the same segments: nothing can be written for it.
            Err(e @ S3Error::UnaddressableKey) => {
                let error = Failure::new(e.code(), e.to_string());
                return (
                    Outcome::Failed {
                        result_key: None,
                        error,
                    },
                    None,
                );
            }
            Err(e) => {
                let error = Failure::new(e.code(), e.to_string());
                let source = Source::notified(object);
                let (outcome, write_ms) = self.write_failure(s3, &source, error).await;
                times.write_ms = write_ms;
                return (outcome, None);
            }
        };
        let source = Source::fetched(object, &fetched);
        let (detected, detect_ms) = self.detect(fetched.bytes.clone()).await;
        times.detect_ms = detect_ms;
        let response = match detected {
            Ok(response) => response,
            Err(error) if !error.code().is_client_error() => {
                return (Outcome::Retry { error }, None)
            }
            Err(error) => {
                let (outcome, write_ms) = self.write_failure(s3, &source, error).await;
                times.write_ms = write_ms;
                return (outcome, None);
            }
        };
        let detected = DetectionStats::of(&response);
        let (outcome, write_ms) = self.write_result(s3, &source, response).await;
        times.write_ms = write_ms;
        let detected = matches!(outcome, Outcome::Detected { .. }).then_some(detected);
        (outcome, detected)
    }

    /// Reads the object, refused from the event's size when that is over `MAX_OBJECT_BYTES`.
    async fn fetch(&self, s3: &S3Client, object: &ObjectRef) -> (Result<s3::Object, S3Error>, f64) {
        let limit = self.config.max_object_bytes;
        if let Some(size) = object.size.filter(|&size| size > limit) {
            return (Err(S3Error::TooLarge { size, limit }), 0.0);
        }
        let start = Instant::now();
        let got = s3
            .get(
                &object.bucket,
                &object.key,
                object.version_id.as_deref(),
                limit,
            )
            .await;
        (got, millis(start.elapsed()))
    }

    /// Runs the detector on a blocking thread, one image at a time; the time is the time with the
    /// plan, not the wait for it.
    async fn detect(&self, bytes: Bytes) -> (Result<Response, Failure>, f64) {
        let _plan = self.plan.lock().await;
        let start = Instant::now();
        let detector = Arc::clone(&self.detector);
        let mut options = self.config.options.clone();
        if let Some(encoding) = self.config.annotate {
            options.format = Some(Format::Picture(encoding));
        }
        let detected = tokio::task::spawn_blocking(move || detector.detect(&bytes, &options)).await;
        let result = match detected {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(Failure::from(e)),
            Err(e) => Err(Failure::internal(format!("the detection task failed: {e}"))),
        };
        (result, millis(start.elapsed()))
    }

    /// Writes the picture (when there is one), then the result that names it.
    async fn write_result(
        &self,
        s3: &S3Client,
        source: &Source<'_>,
        mut response: Response,
    ) -> (Outcome, f64) {
        let output = &self.config.output;
        let bucket = output.bucket_for(&source.object.bucket);
        let start = Instant::now();
        let mut annotated_key = None;
        if let Some(picture) = response.annotated.take() {
            let picture_key = output.picture_key(&source.object.key, picture.encoding.extension());
            let content_type = picture.encoding.content_type();
            let written = s3
                .put(
                    bucket,
                    &picture_key,
                    Bytes::from(picture.bytes),
                    content_type,
                )
                .await;
            if let Err(e) = written {
                return (write_failed(e), millis(start.elapsed()));
            }
            annotated_key = Some(picture_key);
        }
        // A result that cannot be serialized is a fault of this function: nothing is written (an
        // empty result would read as success), and the object is retried like any 5xx.
        let (body, result_key, content_type) = match self.config.output_format {
            None => match source.result(&response, annotated_key.as_deref()) {
                Ok(body) => (
                    body,
                    output.result_key(&source.object.key),
                    "application/json",
                ),
                Err(e) => {
                    let error = Failure::internal(format!("serializing the result: {e}"));
                    return (Outcome::Retry { error }, millis(start.elapsed()));
                }
            },
            Some(format) => (
                Bytes::from(self.exported(format, &source.object.key, &response)),
                output.export_key(&source.object.key, format.extension()),
                format.content_type(),
            ),
        };
        let written = s3.put(bucket, &result_key, body, content_type).await;
        let outcome = match written {
            Ok(()) => Outcome::Detected {
                result_key,
                detections: response.detections.len(),
            },
            Err(e) => write_failed(e),
        };
        (outcome, millis(start.elapsed()))
    }

    /// The result of the object at `key` in an export format, from pixel boxes.
    fn exported(&self, format: Export, key: &str, response: &Response) -> String {
        let file_name = key.rsplit('/').next().unwrap_or(key);
        match format {
            Export::Coco => {
                let categories = CategoryMap::of_manifest(self.detector.manifest())
                    .expect("checked by Batch::new");
                let image_id = export::coco::image_id(file_name);
                let results: Vec<_> =
                    export::coco::results(image_id, response, &categories).collect();
                serde_json::to_string(&results).expect("COCO results serialize")
            }
            Export::Yolo => export::yolo::label_file(response),
            Export::Voc => export::voc::annotation(response, file_name),
        }
    }

    /// Writes the error result of a final failure; a failure to write it is retried like any write.
    async fn write_failure(
        &self,
        s3: &S3Client,
        source: &Source<'_>,
        error: Failure,
    ) -> (Outcome, f64) {
        let document = json!({
            "model": self.detector.model_ref(),
            "error": error,
            "source": source.json(),
        });
        let result_key = self.config.output.result_key(&source.object.key);
        let bucket = self.config.output.bucket_for(&source.object.bucket);
        let start = Instant::now();
        let written = s3
            .put(
                bucket,
                &result_key,
                Bytes::from(document.to_string()),
                "application/json",
            )
            .await;
        let outcome = match written {
            Ok(()) => Outcome::Failed {
                result_key: Some(result_key),
                error,
            },
            Err(e) => write_failed(e),
        };
        (outcome, millis(start.elapsed()))
    }
}

/// Where one object's time went, stage by stage, in milliseconds; zero for a stage that did not run.
#[derive(Debug, Default)]
struct StageTimes {
    fetch_ms: f64,
    detect_ms: f64,
    write_ms: f64,
}

fn retry(code: ErrorCode, message: String) -> Outcome {
    Outcome::Retry {
        error: Failure::new(code, message),
    }
}

/// A result that could not be written: retried when S3 may take it later; final otherwise.
fn write_failed(e: S3Error) -> Outcome {
    let error = Failure::new(e.code(), format!("writing the result: {e}"));
    if e.is_transient() {
        Outcome::Retry { error }
    } else {
        Outcome::Failed {
            result_key: None,
            error,
        }
    }
}
