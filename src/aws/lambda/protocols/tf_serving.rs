//! TF Serving's REST API, answered as a TensorFlow Object Detection API export answers it, so a client
//! written for TF Serving changes only its URL:
//!
//! - `POST .../v1/models/{name}[/versions/{v}|/labels/{l}]:predict` with `{"instances": [...]}` (rows:
//!   each `{"b64": ...}` or an object of one input holding `{"b64": ...}`) or `{"inputs": ...}`
//!   (columnar), at most [`MAX_IMAGES_PER_REQUEST`] images, options in the query string as on `/detect`;
//!   answered `{"predictions": [...]}` or `{"outputs": {...}}` with `detection_boxes` (`[ymin, xmin,
//!   ymax, xmax]` as fractions of the upright image), `detection_scores`, `detection_classes` (COCO
//!   category ids, 1-based, as floats) and `num_detections`;
//! - `GET .../v1/models/{name}[/versions/{v}|/labels/{l}]`: the model's status;
//! - `GET .../v1/models/{name}[...]/metadata`: its signature;
//! - errors as `{"error": "<code>: <message>"}` with the status of the code's table.
//!
//! The function serves one model, the manifest's name, as version [`VERSION`]; any label names it.

use serde::Serialize;
use serde_json::{json, Value};

use crate::aws::lambda::base64_text;
use crate::aws::lambda::body;
use crate::aws::lambda::events::Request;
use crate::aws::lambda::record::Record;
use crate::aws::lambda::reply::{self, Reply};
use crate::aws::lambda::service::{of_image, refuse_detect_only, Service};
use crate::core::error::{quote, Failure};
use crate::core::error_code::ErrorCode;
use crate::core::manifest::Manifest;
use crate::core::options::MAX_IMAGES_PER_REQUEST;
use crate::core::response::Response;

/// The version number the served model answers to.
pub const VERSION: i64 = 1;

/// The one signature, as TF Serving names a model's default.
const SIGNATURE: &str = "serving_default";

/// The input the signature describes: encoded images, as Object Detection API exports name it.
const INPUT: &str = "encoded_image_string_tensor";

/// A TF Serving route: the model named, which of its versions, and what is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub model: String,
    pub version: Selector,
    pub endpoint: Endpoint,
}

/// How the path picks a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Latest,
    Version(String),
    Label(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET`: the model's version status.
    Status,
    /// `GET .../metadata`: its signature.
    Metadata,
    /// `POST ...:predict`.
    Predict,
    /// `POST ...:classify` or `:regress`, which a detection model has no signature for.
    Unsupported(&'static str),
}

impl Route {
    pub fn name(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Status => "tf_serving_status",
            Endpoint::Metadata => "tf_serving_metadata",
            Endpoint::Predict => "tf_serving_predict",
            Endpoint::Unsupported(_) => "tf_serving_unsupported",
        }
    }

    pub fn allow(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Status | Endpoint::Metadata => "GET, HEAD, OPTIONS",
            Endpoint::Predict | Endpoint::Unsupported(_) => "POST, OPTIONS",
        }
    }

    pub fn is_detection(&self) -> bool {
        self.endpoint == Endpoint::Predict
    }
}

/// The route of a path's segments when they hold `v1/models/{name}...`, whatever precedes it.
pub fn route(segments: &[&str]) -> Option<Route> {
    let at = segments.windows(2).position(|w| w == ["v1", "models"])?;
    let rest = &segments[at + 2..];
    let (last, verb) = match rest.last()?.split_once(':') {
        Some((base, verb)) => (base, Some(verb)),
        None => (*rest.last()?, None),
    };
    let mut parts: Vec<&str> = rest[..rest.len() - 1].to_vec();
    parts.push(last);
    let metadata = parts.len() > 1 && parts.last() == Some(&"metadata");
    if metadata {
        parts.pop();
    }
    let (model, version) = match parts.as_slice() {
        [model] => (*model, Selector::Latest),
        [model, "versions", v] => (*model, Selector::Version((*v).to_string())),
        [model, "labels", l] => (*model, Selector::Label((*l).to_string())),
        _ => return None,
    };
    let endpoint = match (metadata, verb) {
        (true, None) => Endpoint::Metadata,
        (false, None) => Endpoint::Status,
        (false, Some("predict")) => Endpoint::Predict,
        (false, Some("classify")) => Endpoint::Unsupported("classify"),
        (false, Some("regress")) => Endpoint::Unsupported("regress"),
        _ => return None,
    };
    (!model.is_empty()).then(|| Route {
        model: model.to_string(),
        version,
        endpoint,
    })
}

/// A failure in TF Serving's shape: `{"error": "<code>: <message>"}`, the code's status.
pub fn error(failure: Failure) -> Reply {
    reply::one_string_error(failure)
}

pub async fn answer(
    service: &Service<'_>,
    route: &Route,
    request: &Request,
    record: &mut Record,
) -> Reply {
    respond(service, route, request, record).unwrap_or_else(error)
}

fn respond(
    service: &Service<'_>,
    route: &Route,
    request: &Request,
    record: &mut Record,
) -> Result<Reply, Failure> {
    let manifest = service.detector.manifest();
    served(manifest, route)?;
    match route.endpoint {
        Endpoint::Status => Ok(Reply::json(200, status())),
        Endpoint::Metadata => Ok(Reply::json(200, metadata(manifest))),
        Endpoint::Unsupported(verb) => Err(Failure::new(
            ErrorCode::InvalidParameter,
            format!(
                "{}: the model has one signature, `{SIGNATURE}`, a predict signature; use \
                 :predict, not :{verb}",
                quote(&route.model)
            ),
        )),
        Endpoint::Predict => predict(service, request, record),
    }
}

/// Whether the route names the served model and version: TF Serving's 404 when not.
fn served(manifest: &Manifest, route: &Route) -> Result<(), Failure> {
    let not_found = |what: String| {
        Failure::new(
            ErrorCode::NotFound,
            format!(
                "Servable not found for request: {what}; this function serves {} version {VERSION}",
                quote(&manifest.name)
            ),
        )
    };
    let requested = match &route.version {
        Selector::Latest | Selector::Label(_) => None,
        Selector::Version(v) => Some(v.parse::<i64>().map_err(|_| {
            Failure::new(
                ErrorCode::InvalidParameter,
                format!("version {}: a version is a number", quote(v)),
            )
        })?),
    };
    if route.model != manifest.name {
        return Err(not_found(match requested {
            Some(v) => format!("Specific({}, {v})", route.model),
            None => format!("Latest({})", route.model),
        }));
    }
    match requested {
        Some(v) if v != VERSION => Err(not_found(format!("Specific({}, {v})", route.model))),
        _ => Ok(()),
    }
}

/// `GET .../v1/models/{name}`: one version, available.
fn status() -> String {
    json!({
        "model_version_status": [{
            "version": VERSION.to_string(),
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }]
    })
    .to_string()
}

/// `GET .../metadata`: the model spec and its one signature (an encoded-image input, the four
/// outputs of an Object Detection API export; `-1` where the size varies).
fn metadata(manifest: &Manifest) -> String {
    let tensor = |dtype: &str, dims: &[i64], name: &str| {
        json!({
            "dtype": dtype,
            "tensor_shape": {
                "dim": dims.iter().map(|d| json!({"size": d.to_string(), "name": ""})).collect::<Vec<_>>(),
                "unknown_rank": false,
            },
            "name": format!("{name}:0"),
        })
    };
    json!({
        "model_spec": {"name": manifest.name, "signature_name": "", "version": VERSION.to_string()},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: {
            "inputs": {INPUT: tensor("DT_STRING", &[-1], INPUT)},
            "outputs": {
                "detection_boxes": tensor("DT_FLOAT", &[-1, -1, 4], "detection_boxes"),
                "detection_scores": tensor("DT_FLOAT", &[-1, -1], "detection_scores"),
                "detection_classes": tensor("DT_FLOAT", &[-1, -1], "detection_classes"),
                "num_detections": tensor("DT_FLOAT", &[-1], "num_detections"),
            },
            "method_name": "tensorflow/serving/predict",
        }}}},
    })
    .to_string()
}

/// How the request laid its images out, which is how the answer lays its outputs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `{"instances": [...]}` -> `{"predictions": [...]}`.
    Row,
    /// `{"inputs": ...}` -> `{"outputs": {...}}`.
    Columnar,
}

/// A predict request's images, as sent.
#[derive(Debug, PartialEq)]
struct Images {
    layout: Layout,
    images: Vec<Vec<u8>>,
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(ErrorCode::InvalidParameter, message)
}

/// Reads a predict body: `signature_name` (absent, empty or `serving_default`) and exactly one of
/// `instances` and `inputs`.
fn images(body: Value) -> Result<Images, Failure> {
    let Value::Object(map) = body else {
        return Err(Failure::new(
            ErrorCode::InvalidJson,
            "the body must be a JSON object with `instances` or `inputs`",
        ));
    };
    let mut instances = None;
    let mut inputs = None;
    for (key, value) in map {
        match key.as_str() {
            "signature_name" => match value.as_str() {
                Some("" | SIGNATURE) => {}
                _ => {
                    return Err(invalid(format!(
                        "signature_name {}: the model's one signature is `{SIGNATURE}`",
                        bounded_json(&value)
                    )))
                }
            },
            "instances" => instances = Some(value),
            "inputs" => inputs = Some(value),
            other => {
                return Err(invalid(format!(
                    "unknown field {}: a predict body has `instances` or `inputs`, and \
                     `signature_name`",
                    quote(other)
                )))
            }
        }
    }
    let (layout, items) = match (instances, inputs) {
        (Some(_), Some(_)) => {
            return Err(invalid("a predict body has `instances` or `inputs`, not both"))
        }
        (None, None) => return Err(Failure::new(
            ErrorCode::MissingImage,
            "a predict body has `instances` (rows) or `inputs` (columnar) holding {\"b64\": ...} images",
        )),
        (Some(rows), None) => (Layout::Row, rows_of(rows)?),
        (None, Some(columns)) => (Layout::Columnar, columns_of(columns)?),
    };
    if items.is_empty() {
        return Err(Failure::new(
            ErrorCode::MissingImage,
            "no images: the list is empty",
        ));
    }
    if items.len() > MAX_IMAGES_PER_REQUEST {
        return Err(invalid(format!(
            "{} images; at most {MAX_IMAGES_PER_REQUEST} per request",
            items.len()
        )));
    }
    let images = items
        .iter()
        .enumerate()
        .map(|(i, item)| encoded_image(item).map_err(|e| of_image(i, e)))
        .collect::<Result<_, _>>()?;
    Ok(Images { layout, images })
}

/// `instances`: a list, each item one image.
fn rows_of(rows: Value) -> Result<Vec<Value>, Failure> {
    match rows {
        Value::Array(items) => Ok(items),
        _ => Err(invalid("`instances` must be a list, one item per image")),
    }
}

/// `inputs`: the one input's list of images, bare or under its name, or one image.
fn columns_of(columns: Value) -> Result<Vec<Value>, Failure> {
    match columns {
        Value::Array(items) => Ok(items),
        Value::Object(map) if map.contains_key("b64") => Ok(vec![Value::Object(map)]),
        Value::Object(map) if map.len() == 1 => {
            let (_, value) = map.into_iter().next().expect("one entry");
            match value {
                Value::Array(items) => Ok(items),
                one @ Value::Object(_) => Ok(vec![one]),
                _ => Err(invalid(
                    "the input in `inputs` must be a list of {\"b64\": ...} images",
                )),
            }
        }
        Value::Object(map) => Err(invalid(format!(
            "`inputs` names {} inputs; the model has one, `{INPUT}`",
            map.len()
        ))),
        _ => Err(invalid(
            "`inputs` must be a list of {\"b64\": ...} images, or an object naming the input",
        )),
    }
}

/// One image: `{"b64": "..."}`, or an object of one input holding it (`{"image_bytes": {"b64":
/// ...}}`).
fn encoded_image(item: &Value) -> Result<Vec<u8>, Failure> {
    let not_encoded = || {
        invalid(
            "an image is {\"b64\": \"<base64 of the encoded file>\"} (or an object of one input \
             holding it); pixel arrays are not taken",
        )
    };
    let Value::Object(map) = item else {
        return Err(not_encoded());
    };
    let b64 = match map.get("b64") {
        Some(b64) if map.len() == 1 => b64,
        Some(_) => return Err(not_encoded()),
        None if map.len() == 1 => match map.values().next() {
            Some(Value::Object(inner)) if inner.len() == 1 => {
                inner.get("b64").ok_or_else(not_encoded)?
            }
            _ => return Err(not_encoded()),
        },
        None => return Err(not_encoded()),
    };
    let text = b64
        .as_str()
        .ok_or_else(|| Failure::new(ErrorCode::InvalidBase64, "`b64` must be a string"))?;
    base64_text::decode_base64(text)
}

/// A JSON value for a message, cut short.
fn bounded_json(value: &Value) -> String {
    crate::core::error::bounded(&value.to_string(), 64)
}

fn predict(
    service: &Service<'_>,
    request: &Request,
    record: &mut Record,
) -> Result<Reply, Failure> {
    let options = body::options_from_query(&request.query)?;
    refuse_detect_only(&options, "a predict request answers detections only")?;
    let raw = body::raw_bytes(request)?;
    if raw.trim_ascii().is_empty() {
        return Err(Failure::new(
            ErrorCode::EmptyBody,
            "the request has no body: send {\"instances\": [{\"b64\": \"<base64>\"}]}",
        ));
    }
    let value = body::json_value(&raw, "the body")?;
    let Images { layout, images } = images(value)?;
    record.bytes = Some(images.iter().map(Vec::len).sum());
    let manifest = service.detector.manifest();
    let predictions: Vec<Prediction> = service
        .detect_each(&images, &options, record)?
        .iter()
        .map(|response| Prediction::of(response, manifest))
        .collect();
    Ok(Reply::json(200, predict_body(layout, &predictions)?))
}

/// One image's outputs, as an Object Detection API export names them (the Open Inference Protocol's
/// answer has the same four).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// `[ymin, xmin, ymax, xmax]`, fractions of the upright image.
    pub detection_boxes: Vec<[f32; 4]>,
    pub detection_scores: Vec<f32>,
    /// COCO category ids (1-based), as floats as the export has them.
    pub detection_classes: Vec<f32>,
    pub num_detections: f32,
}

impl Prediction {
    pub fn of(response: &Response, manifest: &Manifest) -> Prediction {
        let (w, h) = (
            response.image.width.max(1) as f32,
            response.image.height.max(1) as f32,
        );
        let fraction = |v: f32, side: f32| (v / side).clamp(0.0, 1.0);
        let detections = &response.detections;
        Prediction {
            detection_boxes: detections
                .iter()
                .map(|d| {
                    let b = &d.bbox;
                    [
                        fraction(b.y_min, h),
                        fraction(b.x_min, w),
                        fraction(b.y_max, h),
                        fraction(b.x_max, w),
                    ]
                })
                .collect(),
            detection_scores: detections.iter().map(|d| d.score).collect(),
            detection_classes: detections
                .iter()
                .map(|d| category(manifest, d.class_id) as f32)
                .collect(),
            num_detections: detections.len() as f32,
        }
    }
}

/// The class's COCO category id when the manifest gives them, else its index from 1.
fn category(manifest: &Manifest, class_id: usize) -> u64 {
    manifest
        .category_id(class_id)
        .unwrap_or(class_id as u64 + 1)
}

/// Columnar outputs: each output's values for every image, in order.
#[derive(Debug, Serialize)]
struct Columns<'a> {
    detection_boxes: Vec<&'a [[f32; 4]]>,
    detection_scores: Vec<&'a [f32]>,
    detection_classes: Vec<&'a [f32]>,
    num_detections: Vec<f32>,
}

fn columns(predictions: &[Prediction]) -> Columns<'_> {
    Columns {
        detection_boxes: predictions.iter().map(|p| &p.detection_boxes[..]).collect(),
        detection_scores: predictions
            .iter()
            .map(|p| &p.detection_scores[..])
            .collect(),
        detection_classes: predictions
            .iter()
            .map(|p| &p.detection_classes[..])
            .collect(),
        num_detections: predictions.iter().map(|p| p.num_detections).collect(),
    }
}

/// The predict answer's JSON, written from the f32 values as they are (shortest form), not widened.
fn predict_body(layout: Layout, predictions: &[Prediction]) -> Result<String, Failure> {
    #[derive(Serialize)]
    struct Rows<'a> {
        predictions: &'a [Prediction],
    }
    #[derive(Serialize)]
    struct Outputs<'a> {
        outputs: Columns<'a>,
    }
    match layout {
        Layout::Row => serde_json::to_string(&Rows { predictions }),
        Layout::Columnar => serde_json::to_string(&Outputs {
            outputs: columns(predictions),
        }),
    }
    .map_err(|e| Failure::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::response::{BoundingBox, Detection, ImageSize, ModelRef, Timings};

    fn route_of(path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        route(&segments)
    }

    fn tf(model: &str, version: Selector, endpoint: Endpoint) -> Option<Route> {
        Some(Route {
            model: model.into(),
            version,
            endpoint,
        })
    }

    #[test]
    fn every_path_form_of_the_rest_api_is_routed() {
        use Endpoint::*;
        use Selector::*;
        let v = |s: &str| Version(s.into());
        let l = |s: &str| Label(s.into());
        for (path, want) in [
            ("/v1/models/m", tf("m", Latest, Status)),
            ("/v1/models/m/versions/1", tf("m", v("1"), Status)),
            ("/v1/models/m/labels/stable", tf("m", l("stable"), Status)),
            ("/v1/models/m/metadata", tf("m", Latest, Metadata)),
            (
                "/v1/models/m/versions/7/metadata",
                tf("m", v("7"), Metadata),
            ),
            (
                "/v1/models/m/labels/canary/metadata",
                tf("m", l("canary"), Metadata),
            ),
            ("/v1/models/m:predict", tf("m", Latest, Predict)),
            ("/v1/models/m/versions/1:predict", tf("m", v("1"), Predict)),
            (
                "/v1/models/m/labels/stable:predict",
                tf("m", l("stable"), Predict),
            ),
            (
                "/v1/models/m:classify",
                tf("m", Latest, Unsupported("classify")),
            ),
            (
                "/v1/models/m:regress",
                tf("m", Latest, Unsupported("regress")),
            ),
            // A model named like a keyword is still a model.
            ("/v1/models/metadata", tf("metadata", Latest, Status)),
            ("/base/v1/models/m:predict", tf("m", Latest, Predict)),
            ("/v1/models/m:explain", None),
            ("/v1/models/m/metadata:predict", None),
            ("/v1/models/:predict", None),
            ("/v1/models/m/versions", None),
            ("/v1/models/m/other/1", None),
            ("/v1/models", None),
            ("/v2/models/m", None),
        ] {
            assert_eq!(route_of(path), want, "{path}");
        }
    }

    fn manifest() -> Manifest {
        Manifest::from_toml(crate::core::embedded::MANIFEST).expect("the embedded manifest")
    }

    fn served_as(path: &str) -> Result<(), Failure> {
        let m = manifest();
        let route = route_of(&path.replace("NAME", &m.name)).expect("a route");
        served(&m, &route)
    }

    #[test]
    fn only_the_served_model_and_version_are_found() {
        assert_eq!(served_as("/v1/models/NAME"), Ok(()));
        assert_eq!(served_as("/v1/models/NAME/versions/1"), Ok(()));
        assert_eq!(served_as("/v1/models/NAME/labels/anything"), Ok(()));
        let other = served_as("/v1/models/resnet:predict").unwrap_err();
        assert_eq!(other.code(), ErrorCode::NotFound);
        assert!(
            other
                .message()
                .starts_with("Servable not found for request: Latest(resnet)"),
            "{other}"
        );
        let version = served_as("/v1/models/NAME/versions/2").unwrap_err();
        assert_eq!(version.code(), ErrorCode::NotFound);
        assert!(version.message().contains(", 2)"), "{version}");
        let bad = served_as("/v1/models/NAME/versions/x").unwrap_err();
        assert_eq!(bad.code(), ErrorCode::InvalidParameter);
    }

    const PNG_B64: &str = "iVBORw0KGgo=";

    #[test]
    fn rows_and_columns_of_encoded_images_are_read() {
        let png = base64_text::decode_base64(PNG_B64).unwrap();
        let b64 = json!({ "b64": PNG_B64 });
        for (body, layout, count) in [
            (json!({"instances": [b64, b64]}), Layout::Row, 2),
            (
                json!({"signature_name": "serving_default", "instances": [{"image_bytes": b64}]}),
                Layout::Row,
                1,
            ),
            (json!({"inputs": [b64]}), Layout::Columnar, 1),
            (
                json!({"inputs": {"image_bytes": [b64, b64, b64]}}),
                Layout::Columnar,
                3,
            ),
            (json!({"inputs": {"image_bytes": b64}}), Layout::Columnar, 1),
            (
                json!({"inputs": b64, "signature_name": ""}),
                Layout::Columnar,
                1,
            ),
        ] {
            let read = images(body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(read.layout, layout, "{body}");
            assert_eq!(read.images, vec![png.clone(); count], "{body}");
        }
    }

    #[test]
    fn malformed_predict_bodies_get_their_code() {
        let b64 = json!({ "b64": PNG_B64 });
        let many: Vec<Value> = vec![b64.clone(); MAX_IMAGES_PER_REQUEST + 1];
        for (body, code) in [
            (json!([1]), ErrorCode::InvalidJson),
            (json!({}), ErrorCode::MissingImage),
            (json!({"instances": []}), ErrorCode::MissingImage),
            (
                json!({"instances": [b64], "inputs": [b64]}),
                ErrorCode::InvalidParameter,
            ),
            (json!({"instances": b64}), ErrorCode::InvalidParameter),
            (json!({"instances": many}), ErrorCode::InvalidParameter),
            (
                json!({"instances": [[[[0, 0, 0]]]]}),
                ErrorCode::InvalidParameter,
            ),
            (json!({"instances": ["raw"]}), ErrorCode::InvalidParameter),
            (json!({"instances": [{"b64": 7}]}), ErrorCode::InvalidBase64),
            (
                json!({"instances": [{"b64": "***"}]}),
                ErrorCode::InvalidBase64,
            ),
            (
                json!({"instances": [{"a": b64, "b": b64}]}),
                ErrorCode::InvalidParameter,
            ),
            (
                json!({"instances": [b64], "signature_name": "other"}),
                ErrorCode::InvalidParameter,
            ),
            (
                json!({"instances": [b64], "extra": 1}),
                ErrorCode::InvalidParameter,
            ),
            (
                json!({"inputs": {"a": [b64], "b": [b64]}}),
                ErrorCode::InvalidParameter,
            ),
            (json!({"inputs": 3}), ErrorCode::InvalidParameter),
        ] {
            let e = images(body.clone()).expect_err(&body.to_string());
            assert_eq!(e.code(), code, "{body}: {e}");
        }
        let second = images(json!({"instances": [b64, {"b64": "***"}]})).unwrap_err();
        assert!(second.message().starts_with("image 1: "), "{second}");
    }

    #[test]
    fn a_prediction_is_in_fractions_of_the_upright_image_with_coco_ids() {
        let m = manifest();
        let cat = m.class_id("cat").expect("a COCO model");
        let response = Response {
            model: ModelRef {
                name: m.name.clone(),
                version: m.version.clone(),
                input_width: 416,
                input_height: 416,
            },
            image: ImageSize {
                width: 400,
                height: 200,
            },
            detections: vec![Detection {
                label: "cat".into(),
                class_id: cat,
                score: 0.75,
                bbox: BoundingBox {
                    x_min: 100.0,
                    y_min: 50.0,
                    x_max: 400.0,
                    y_max: 150.0,
                },
            }],
            timings_ms: Timings::default(),
            annotated: None,
        };
        let p = Prediction::of(&response, &m);
        assert_eq!(p.detection_boxes, vec![[0.25, 0.25, 0.75, 1.0]]);
        assert_eq!(p.detection_scores, vec![0.75]);
        assert_eq!(p.detection_classes, vec![17.0], "COCO's id for cat");
        assert_eq!(p.num_detections, 1.0);
        let two = [p.clone(), p];
        let columns: Value =
            serde_json::from_str(&predict_body(Layout::Columnar, &two).unwrap()).unwrap();
        let outputs = &columns["outputs"];
        assert_eq!(outputs["num_detections"], json!([1.0, 1.0]));
        assert_eq!(
            outputs["detection_boxes"][1][0],
            json!([0.25, 0.25, 0.75, 1.0])
        );
        assert_eq!(outputs["detection_classes"], json!([[17.0], [17.0]]));
        // f32 values in their shortest form, as the native response writes them.
        let third = Prediction {
            detection_scores: vec![1.0 / 3.0],
            ..two[0].clone()
        };
        let rows = predict_body(Layout::Row, &[third]).unwrap();
        assert!(rows.contains("\"detection_scores\":[0.33333334]"), "{rows}");
    }

    #[test]
    fn errors_are_one_string_with_the_code_and_the_tables_status() {
        let reply = error(Failure::new(ErrorCode::NotAnImage, "the bytes are text"));
        assert_eq!(reply.status, 422);
        let crate::aws::lambda::reply::Body::Json(text) = &reply.body else {
            panic!("a JSON body")
        };
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v, json!({"error": "not_an_image: the bytes are text"}));
        assert!(reply.error.is_some(), "logged");
    }

    #[test]
    fn metadata_describes_one_encoded_image_input_and_four_outputs() {
        let m = manifest();
        let v: Value = serde_json::from_str(&metadata(&m)).unwrap();
        assert_eq!(v["model_spec"]["name"], json!(m.name));
        let sig = &v["metadata"]["signature_def"]["signature_def"][SIGNATURE];
        assert_eq!(sig["inputs"][INPUT]["dtype"], "DT_STRING");
        let outputs = sig["outputs"].as_object().unwrap();
        let names: Vec<&str> = outputs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "detection_boxes",
                "detection_scores",
                "detection_classes",
                "num_detections"
            ]
        );
        let s: Value = serde_json::from_str(&status()).unwrap();
        assert_eq!(s["model_version_status"][0]["state"], "AVAILABLE");
    }
}
