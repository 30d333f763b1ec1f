//! Amazon Rekognition's `DetectLabels`, so an SDK's own Rekognition client (its endpoint set to the
//! function URL or API) and a Step Functions or SDK direct invocation switch to this function unchanged:
//!
//! - over HTTP, the AWS JSON 1.1 protocol: `POST` (any path) with `X-Amz-Target:
//!   RekognitionService.DetectLabels`, answered `application/x-amz-json-1.1`; another operation is
//!   `UnknownOperationException`;
//! - as a direct invocation, the request object itself (`{"Image": {...}, ...}`), answered with the
//!   response object, failing as a function error whose `errorType` is the exception's name.
//!
//! The request: `Image.Bytes` (base64 in JSON) or `Image.S3Object` (`Bucket`, `Name`, `Version`: fetched
//! with the function's role through the batch path's S3 client, its size cap and codes), `MinConfidence`
//! (0-100, default 55, the score threshold of the detection), `MaxLabels`, `Features` (`GENERAL_LABELS`
//! only) and `Settings.GeneralLabels`' label and category filters.
//!
//! The answer: one label per class found, named in title case (`Traffic Light`), its confidence the best
//! of its instances', each instance's `BoundingBox` as fractions of the upright image; `Parents` and
//! `Categories` from COCO's supercategory of the class (when the manifest gives COCO ids); labels by
//! confidence; `LabelModelVersion` the model's name and version. Errors are `{"__type", "Message"}`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::aws::batch::ObjectRef;
use crate::aws::lambda::base64_text;
use crate::aws::lambda::body;
use crate::aws::lambda::events::Request;
use crate::aws::lambda::record::Record;
use crate::aws::lambda::reply::Reply;
use crate::aws::lambda::service::Service;
use crate::core::coco::supercategory;
use crate::core::error::{bounded, quote, Failure};
use crate::core::error_code::ErrorCode;
use crate::core::manifest::Manifest;
use crate::core::options::DetectOptions;
use crate::core::response::Response;

/// The `X-Amz-Target` prefix of Rekognition's operations.
const TARGET_PREFIX: &str = "RekognitionService.";

/// The AWS JSON 1.1 protocol's media type, of answers and errors alike.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Rekognition's default `MinConfidence`.
const DEFAULT_MIN_CONFIDENCE: f32 = 55.0;

/// Most names one label or category filter may list (Rekognition's own limit).
const MAX_FILTER_NAMES: usize = 100;

/// The operation an `X-Amz-Target` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    DetectLabels,
    /// Another Rekognition operation (its name, cut short): `UnknownOperationException`.
    Unknown(String),
}

impl Route {
    pub fn name(&self) -> &'static str {
        match self {
            Route::DetectLabels => "rekognition_detect_labels",
            Route::Unknown(_) => "rekognition_unknown",
        }
    }

    pub fn allow(&self) -> &'static str {
        "POST, OPTIONS"
    }

    pub fn is_detection(&self) -> bool {
        *self == Route::DetectLabels
    }
}

/// The route of a request whose `X-Amz-Target` names a Rekognition operation, whatever its path.
pub fn route(request: &Request) -> Option<Route> {
    let operation = request
        .header("x-amz-target")?
        .strip_prefix(TARGET_PREFIX)?;
    Some(match operation {
        "DetectLabels" => Route::DetectLabels,
        other => Route::Unknown(bounded(other, 64)),
    })
}

/// The exception a failure is, and its status: Rekognition answers 400 for every fault of the
/// request and 500 for its own.
pub fn exception(code: ErrorCode) -> (&'static str, u16) {
    use ErrorCode as C;
    match code {
        C::ImageTooLarge | C::ObjectTooLarge => ("ImageTooLargeException", 400),
        C::EmptyBody
        | C::EmptyImage
        | C::InvalidBase64
        | C::NotAnImage
        | C::InvalidImage
        | C::ImageTooComplex
        | C::UnsupportedFormat
        | C::UnsupportedMediaType => ("InvalidImageFormatException", 400),
        C::ObjectNotFound | C::ObjectUnreadable | C::StorageUnavailable => {
            ("InvalidS3ObjectException", 400)
        }
        code if code.is_client_error() => ("InvalidParameterException", 400),
        _ => ("InternalServerError", 500),
    }
}

/// A failure in the protocol's shape: `{"__type": ..., "Message": ...}`.
pub fn error(failure: Failure) -> Reply {
    let (name, status) = exception(failure.code());
    error_named(name, status, failure)
}

fn error_named(name: &'static str, status: u16, failure: Failure) -> Reply {
    let body = json!({"__type": name, "Message": failure.to_string()}).to_string();
    let mut reply = Reply::json(status, body);
    reply.headers.push(("content-type", CONTENT_TYPE.into()));
    reply.error = Some(failure);
    reply
}

pub async fn answer(
    service: &Service<'_>,
    route: &Route,
    request: &Request,
    record: &mut Record,
) -> Reply {
    if let Route::Unknown(operation) = route {
        let failure = Failure::new(
            ErrorCode::NotFound,
            format!(
                "{}: this function answers RekognitionService.DetectLabels only",
                quote(operation)
            ),
        );
        return error_named("UnknownOperationException", 400, failure);
    }
    let answered = async {
        let raw = body::raw_bytes(request)?;
        let value = body::json_value(&raw, "the body")?;
        detect_labels(service, value, record).await
    };
    match answered.await {
        Ok(text) => {
            let mut reply = Reply::json(200, text);
            reply.headers.push(("content-type", CONTENT_TYPE.into()));
            reply
        }
        Err(failure) => error(failure),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DetectLabelsRequest {
    image: Image,
    max_labels: Option<u32>,
    min_confidence: Option<f32>,
    features: Option<Vec<String>>,
    settings: Option<Settings>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Image {
    bytes: Option<String>,
    s3_object: Option<S3Object>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct S3Object {
    bucket: String,
    name: String,
    version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Settings {
    general_labels: Option<GeneralLabels>,
    image_properties: Option<Value>,
}

/// `Settings.GeneralLabels`: names to keep or drop, of labels or of their categories.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GeneralLabels {
    #[serde(default)]
    label_inclusion_filters: Vec<String>,
    #[serde(default)]
    label_exclusion_filters: Vec<String>,
    #[serde(default)]
    label_category_inclusion_filters: Vec<String>,
    #[serde(default)]
    label_category_exclusion_filters: Vec<String>,
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(ErrorCode::InvalidParameter, message)
}

/// What a request asks, checked.
#[derive(Debug)]
struct Asked {
    image: Image,
    min_confidence: f32,
    max_labels: Option<usize>,
    filters: GeneralLabels,
}

fn asked(body: Value) -> Result<Asked, Failure> {
    let request: DetectLabelsRequest = serde_json::from_value(body).map_err(|e| {
        invalid(format!(
            "not a DetectLabels request: {}",
            bounded(&e.to_string(), 200)
        ))
    })?;
    let min_confidence = request.min_confidence.unwrap_or(DEFAULT_MIN_CONFIDENCE);
    if !(0.0..=100.0).contains(&min_confidence) {
        return Err(invalid(format!(
            "MinConfidence {min_confidence}: it is within 0..=100"
        )));
    }
    for feature in request.features.iter().flatten() {
        if feature != "GENERAL_LABELS" {
            return Err(invalid(format!(
                "Features {}: this function offers GENERAL_LABELS only",
                quote(feature)
            )));
        }
    }
    let settings = request.settings.unwrap_or_default();
    if settings.image_properties.is_some() {
        return Err(invalid(
            "Settings.ImageProperties: this function offers GENERAL_LABELS only",
        ));
    }
    let filters = settings.general_labels.unwrap_or_default();
    for list in [
        &filters.label_inclusion_filters,
        &filters.label_exclusion_filters,
        &filters.label_category_inclusion_filters,
        &filters.label_category_exclusion_filters,
    ] {
        if list.len() > MAX_FILTER_NAMES {
            return Err(invalid(format!(
                "a filter of {} names; at most {MAX_FILTER_NAMES}",
                list.len()
            )));
        }
    }
    Ok(Asked {
        image: request.image,
        min_confidence,
        max_labels: request.max_labels.map(|n| n as usize),
        filters,
    })
}

/// Answers a `DetectLabels` request object: the response object's JSON.
pub async fn detect_labels(
    service: &Service<'_>,
    body: Value,
    record: &mut Record,
) -> Result<String, Failure> {
    let asked = asked(body)?;
    let bytes = match (asked.image.bytes, asked.image.s3_object) {
        (Some(b64), None) => base64_text::decode_base64(&b64)?,
        (None, Some(object)) => service
            .batch
            .fetch_object(&ObjectRef {
                bucket: object.bucket,
                key: object.name,
                version_id: object.version,
                etag: None,
                size: None,
            })
            .await?
            .to_vec(),
        _ => {
            return Err(Failure::new(
                ErrorCode::MissingImage,
                "Image has one of Bytes (base64) and S3Object",
            ))
        }
    };
    record.bytes = Some(bytes.len());
    let options = DetectOptions {
        score_threshold: Some(asked.min_confidence / 100.0),
        ..DetectOptions::default()
    };
    let response = service.detect(&bytes, &options, record)?;
    let manifest = service.detector.manifest();
    let labels = labels(&response, manifest, &asked.filters, asked.max_labels);
    serde_json::to_string(&DetectLabelsResponse {
        labels,
        label_model_version: format!("{} {}", manifest.name, manifest.version),
    })
    .map_err(|e| Failure::internal(e.to_string()))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DetectLabelsResponse {
    labels: Vec<Label>,
    label_model_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Label {
    name: String,
    confidence: f32,
    instances: Vec<Instance>,
    parents: Vec<Named>,
    aliases: Vec<Named>,
    categories: Vec<Named>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Instance {
    bounding_box: BoundingBox,
    confidence: f32,
}

/// Fractions of the upright image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct BoundingBox {
    width: f32,
    height: f32,
    left: f32,
    top: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Named {
    name: String,
}

/// `traffic light` -> `Traffic Light`: Rekognition's names are in title case.
fn title_case(name: &str) -> String {
    name.split(' ')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One label per class found, best first, filtered and cut to `max_labels`.
fn labels(
    response: &Response,
    manifest: &Manifest,
    filters: &GeneralLabels,
    max_labels: Option<usize>,
) -> Vec<Label> {
    let (w, h) = (
        response.image.width.max(1) as f32,
        response.image.height.max(1) as f32,
    );
    let mut labels: Vec<(usize, Label)> = Vec::new();
    // Detections come best first, so a label's first instance is its best.
    for d in &response.detections {
        let b = &d.bbox;
        let instance = Instance {
            bounding_box: BoundingBox {
                width: ((b.x_max - b.x_min) / w).clamp(0.0, 1.0),
                height: ((b.y_max - b.y_min) / h).clamp(0.0, 1.0),
                left: (b.x_min / w).clamp(0.0, 1.0),
                top: (b.y_min / h).clamp(0.0, 1.0),
            },
            confidence: d.score * 100.0,
        };
        match labels.iter_mut().find(|(class, _)| *class == d.class_id) {
            Some((_, label)) => label.instances.push(instance),
            None => {
                let name = title_case(&d.label);
                let category = manifest
                    .category_id(d.class_id)
                    .and_then(supercategory)
                    .map(title_case);
                let parents = category
                    .iter()
                    .filter(|c| **c != name)
                    .map(|c| Named { name: c.clone() })
                    .collect();
                labels.push((
                    d.class_id,
                    Label {
                        name,
                        confidence: instance.confidence,
                        instances: vec![instance],
                        parents,
                        aliases: Vec::new(),
                        categories: category.into_iter().map(|name| Named { name }).collect(),
                    },
                ));
            }
        }
    }
    let named = |list: &[String], name: &str| list.iter().any(|n| n.eq_ignore_ascii_case(name));
    let in_category =
        |list: &[String], label: &Label| label.categories.iter().any(|c| named(list, &c.name));
    let mut kept: Vec<Label> = labels
        .into_iter()
        .map(|(_, label)| label)
        .filter(|l| {
            (filters.label_inclusion_filters.is_empty()
                || named(&filters.label_inclusion_filters, &l.name))
                && !named(&filters.label_exclusion_filters, &l.name)
                && (filters.label_category_inclusion_filters.is_empty()
                    || in_category(&filters.label_category_inclusion_filters, l))
                && !in_category(&filters.label_category_exclusion_filters, l)
        })
        .collect();
    kept.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    if let Some(max) = max_labels {
        kept.truncate(max);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::response::{BoundingBox as Box_, Detection, ImageSize, ModelRef, Timings};
    use aws_lambda_events::http::header::{HeaderMap, HeaderValue};
    use aws_lambda_events::http::Method;

    fn manifest() -> Manifest {
        Manifest::from_toml(crate::core::embedded::MANIFEST).expect("the embedded manifest")
    }

    fn request(target: Option<&str>) -> Request {
        let mut headers = HeaderMap::new();
        if let Some(t) = target {
            headers.insert("x-amz-target", HeaderValue::from_str(t).unwrap());
        }
        Request {
            method: Method::POST,
            path: "/".into(),
            stage: None,
            headers,
            query: vec![],
            body: None,
            is_base64: false,
        }
    }

    #[test]
    fn the_target_header_names_the_operation_whatever_the_path() {
        let target = |t| route(&request(t));
        assert_eq!(
            target(Some("RekognitionService.DetectLabels")),
            Some(Route::DetectLabels)
        );
        assert_eq!(
            target(Some("RekognitionService.DetectFaces")),
            Some(Route::Unknown("DetectFaces".into()))
        );
        assert_eq!(target(Some("DynamoDB_20120810.GetItem")), None);
        assert_eq!(target(None), None);
    }

    #[test]
    fn each_code_is_the_exception_rekognition_raises_for_it() {
        use ErrorCode as C;
        for (code, name, status) in [
            (C::NotAnImage, "InvalidImageFormatException", 400),
            (C::InvalidImage, "InvalidImageFormatException", 400),
            (C::UnsupportedFormat, "InvalidImageFormatException", 400),
            (C::InvalidBase64, "InvalidImageFormatException", 400),
            (C::EmptyImage, "InvalidImageFormatException", 400),
            (C::ImageTooLarge, "ImageTooLargeException", 400),
            (C::ObjectTooLarge, "ImageTooLargeException", 400),
            (C::ObjectNotFound, "InvalidS3ObjectException", 400),
            (C::StorageUnavailable, "InvalidS3ObjectException", 400),
            (C::InvalidParameter, "InvalidParameterException", 400),
            (C::InvalidJson, "InvalidParameterException", 400),
            (C::MissingImage, "InvalidParameterException", 400),
            (C::InferenceFailed, "InternalServerError", 500),
            (C::InternalError, "InternalServerError", 500),
        ] {
            assert_eq!(exception(code), (name, status), "{code}");
        }
        let reply = error(Failure::new(C::NotAnImage, "text"));
        assert_eq!(reply.status, 400);
        assert!(reply
            .headers
            .contains(&("content-type", CONTENT_TYPE.to_string())));
        let crate::aws::lambda::reply::Body::Json(text) = &reply.body else {
            panic!("JSON")
        };
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            v,
            json!({"__type": "InvalidImageFormatException", "Message": "not_an_image: text"})
        );
    }

    #[test]
    fn requests_are_checked_as_rekognition_checks_them() {
        let ok = asked(json!({"Image": {"Bytes": "aGk="}})).unwrap();
        assert_eq!(ok.min_confidence, 55.0);
        assert_eq!(ok.max_labels, None);
        let full = asked(json!({
            "Image": {"S3Object": {"Bucket": "b", "Name": "k", "Version": "v"}},
            "MaxLabels": 3, "MinConfidence": 70, "Features": ["GENERAL_LABELS"],
            "Settings": {"GeneralLabels": {"LabelInclusionFilters": ["Cat"]}}
        }))
        .unwrap();
        assert_eq!((full.min_confidence, full.max_labels), (70.0, Some(3)));
        assert_eq!(full.filters.label_inclusion_filters, ["Cat"]);
        for bad in [
            json!({}),
            json!({"Image": {"Bytes": "aGk="}, "MinConfidence": 101}),
            json!({"Image": {"Bytes": "aGk="}, "MinConfidence": -1}),
            json!({"Image": {"Bytes": "aGk="}, "MaxLabels": -1}),
            json!({"Image": {"Bytes": "aGk="}, "Unknown": 1}),
            json!({"Image": {"Bytes": "aGk=", "Other": 1}}),
            json!({"Image": {"Bytes": "aGk="}, "Features": ["IMAGE_PROPERTIES"]}),
            json!({"Image": {"Bytes": "aGk="}, "Settings": {"ImageProperties": {"MaxDominantColors": 3}}}),
            json!({"Image": {"Bytes": "aGk="}, "Settings": {"GeneralLabels": {"LabelInclusionFilters": vec!["x"; 101]}}}),
            json!({"Image": {"S3Object": {"Bucket": "b"}}}),
        ] {
            let e = asked(bad.clone()).expect_err(&bad.to_string());
            assert_eq!(e.code(), ErrorCode::InvalidParameter, "{bad}: {e}");
        }
    }

    fn detection(label: &str, score: f32, x: f32) -> Detection {
        let m = manifest();
        Detection {
            label: label.into(),
            class_id: m.class_id(label).unwrap(),
            score,
            bbox: Box_ {
                x_min: x,
                y_min: 50.0,
                x_max: x + 100.0,
                y_max: 150.0,
            },
        }
    }

    fn response(detections: Vec<Detection>) -> Response {
        Response {
            model: ModelRef {
                name: "m".into(),
                version: "1".into(),
                input_width: 416,
                input_height: 416,
            },
            image: ImageSize {
                width: 400,
                height: 200,
            },
            detections,
            timings_ms: Timings::default(),
            annotated: None,
        }
    }

    #[test]
    fn one_label_per_class_with_its_instances_in_fractions_and_its_coco_parents() {
        let m = manifest();
        let found = response(vec![
            detection("person", 0.9, 0.0),
            detection("cat", 0.8, 100.0),
            detection("person", 0.5, 200.0),
            detection("traffic light", 0.25, 300.0),
        ]);
        let labels = labels(&found, &m, &GeneralLabels::default(), None);
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["Person", "Cat", "Traffic Light"]);
        let person = &labels[0];
        assert_eq!(person.confidence, 90.0);
        assert_eq!(person.instances.len(), 2);
        assert_eq!(person.instances[1].confidence, 50.0);
        assert_eq!(
            person.instances[1].bounding_box,
            BoundingBox {
                width: 0.25,
                height: 0.5,
                left: 0.5,
                top: 0.25
            }
        );
        assert!(person.parents.is_empty(), "a person is its own category");
        assert_eq!(
            person.categories,
            [Named {
                name: "Person".into()
            }]
        );
        assert_eq!(
            labels[1].parents,
            [Named {
                name: "Animal".into()
            }]
        );
        assert_eq!(
            labels[2].categories,
            [Named {
                name: "Outdoor".into()
            }]
        );

        let filter = |f: GeneralLabels, max| labels_of(&found, &m, &f, max);
        fn labels_of(
            r: &Response,
            m: &Manifest,
            f: &GeneralLabels,
            max: Option<usize>,
        ) -> Vec<String> {
            super::labels(r, m, f, max)
                .into_iter()
                .map(|l| l.name)
                .collect()
        }
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(filter(GeneralLabels::default(), Some(1)), ["Person"]);
        assert_eq!(
            filter(GeneralLabels::default(), Some(0)),
            Vec::<String>::new()
        );
        assert_eq!(
            filter(
                GeneralLabels {
                    label_inclusion_filters: names(&["cat", "Traffic Light"]),
                    ..Default::default()
                },
                None
            ),
            ["Cat", "Traffic Light"]
        );
        assert_eq!(
            filter(
                GeneralLabels {
                    label_exclusion_filters: names(&["Person"]),
                    label_category_exclusion_filters: names(&["outdoor"]),
                    ..Default::default()
                },
                None
            ),
            ["Cat"]
        );
        assert_eq!(
            filter(
                GeneralLabels {
                    label_category_inclusion_filters: names(&["Animal", "Person"]),
                    ..Default::default()
                },
                None
            ),
            ["Person", "Cat"]
        );
    }

    #[test]
    fn names_are_in_title_case() {
        assert_eq!(title_case("traffic light"), "Traffic Light");
        assert_eq!(title_case("cat"), "Cat");
        assert_eq!(title_case("tv"), "Tv");
    }
}
