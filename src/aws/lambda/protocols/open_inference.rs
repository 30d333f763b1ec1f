//! The Open Inference Protocol (KServe's v2 protocol, which Triton, OpenVINO Model Server and KServe
//! clients speak) over HTTP, with its binary tensor data extension:
//!
//! - `GET .../v2/health/live`, `.../v2/health/ready`, `.../v2/models/{m}[/versions/{v}]/ready`: 200,
//!   empty body;
//! - `GET .../v2`: the server's metadata; `GET .../v2/models/{m}[/versions/{v}]`: the model's, one
//!   `BYTES` input of encoded images (shape `[-1]`) and four outputs: `detection_boxes` FP32 `[N, K, 4]`
//!   (`[ymin, xmin, ymax, xmax]` in fractions of the upright image), `detection_scores` and
//!   `detection_classes` FP32 `[N, K]` (COCO ids, as TF Serving's), `num_detections` INT32 `[N]`, where K is
//!   the most detections of any image and shorter rows are padded with zeros;
//! - `POST .../v2/models/{m}[/versions/{v}]/infer`: the images as JSON `data` (base64 strings) or as binary
//!   tensor data (`Inference-Header-Content-Length`, each input's `binary_data_size`, BYTES elements each
//!   after its 4-byte little-endian length; a header length of 0 makes the whole body one image); the
//!   detection options in the request's `parameters`; each output as JSON `data` or binary, as the request
//!   asks (`binary_data` per output, `binary_data_output` for all);
//! - errors `{"error": "<code>: <message>"}` with the status of the code's table.
//!
//! The model is the manifest's name, version `1`.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::tf_serving::Prediction;
use crate::aws::lambda::base64_text;
use crate::aws::lambda::body;
use crate::aws::lambda::events::Request;
use crate::aws::lambda::record::Record;
use crate::aws::lambda::reply::{self, Body, Reply};
use crate::aws::lambda::service::{refuse_detect_only, Service};
use crate::core::error::{quote, Failure};
use crate::core::error_code::ErrorCode;
use crate::core::manifest::Manifest;
use crate::core::options::{DetectOptions, MAX_IMAGES_PER_REQUEST};

/// The version the served model answers to.
const VERSION: &str = "1";

/// The input the model metadata names (any one input name is taken).
const INPUT: &str = "image";

/// The binary tensor data extension's header: the length of the JSON that starts the body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The outputs, in the order they are answered when the request names none.
const OUTPUTS: [(&str, &str); 4] = [
    ("detection_boxes", "FP32"),
    ("detection_scores", "FP32"),
    ("detection_classes", "FP32"),
    ("num_detections", "INT32"),
];

/// Request parameters of the protocol itself that say nothing to the detector.
const PROTOCOL_PARAMETERS: [&str; 3] = ["binary_data_output", "priority", "timeout"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    ServerMetadata,
    Live,
    Ready,
    ModelMetadata(Model),
    ModelReady(Model),
    Infer(Model),
}

/// The model and version a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    pub version: Option<String>,
}

impl Route {
    pub fn name(&self) -> &'static str {
        match self {
            Route::ServerMetadata => "oip_server_metadata",
            Route::Live => "oip_live",
            Route::Ready => "oip_ready",
            Route::ModelMetadata(_) => "oip_model_metadata",
            Route::ModelReady(_) => "oip_model_ready",
            Route::Infer(_) => "oip_infer",
        }
    }

    pub fn allow(&self) -> &'static str {
        match self {
            Route::Infer(_) => "POST, OPTIONS",
            _ => "GET, HEAD, OPTIONS",
        }
    }

    pub fn is_detection(&self) -> bool {
        matches!(self, Route::Infer(_))
    }
}

/// The route of a path's segments when they hold `v2` followed by one of the protocol's routes (or
/// nothing), whatever precedes it.
pub fn route(segments: &[&str]) -> Option<Route> {
    (0..segments.len())
        .filter(|&i| segments[i] == "v2")
        .find_map(|i| route_after(&segments[i + 1..]))
}

fn route_after(rest: &[&str]) -> Option<Route> {
    let model = |name: &str, version: Option<&str>| Model {
        name: name.to_string(),
        version: version.map(str::to_string),
    };
    Some(match rest {
        [] => Route::ServerMetadata,
        ["health", "live"] => Route::Live,
        ["health", "ready"] => Route::Ready,
        ["models", m] => Route::ModelMetadata(model(m, None)),
        ["models", m, "versions", v] => Route::ModelMetadata(model(m, Some(v))),
        ["models", m, "ready"] => Route::ModelReady(model(m, None)),
        ["models", m, "versions", v, "ready"] => Route::ModelReady(model(m, Some(v))),
        ["models", m, "infer"] => Route::Infer(model(m, None)),
        ["models", m, "versions", v, "infer"] => Route::Infer(model(m, Some(v))),
        _ => return None,
    })
}

/// A failure as the protocol answers it: `{"error": "<code>: <message>"}`.
pub fn error(failure: Failure) -> Reply {
    reply::one_string_error(failure)
}

pub async fn answer(
    service: &Service<'_>,
    route: &Route,
    request: &Request,
    record: &mut Record,
) -> Reply {
    let manifest = service.detector.manifest();
    let answered = match route {
        Route::ServerMetadata => Ok(Reply::json(
            200,
            json!({
                "name": env!("CARGO_PKG_NAME"),
                "version": env!("CARGO_PKG_VERSION"),
                "extensions": ["binary_tensor_data"],
            })
            .to_string(),
        )),
        Route::Live | Route::Ready => Ok(empty()),
        Route::ModelReady(model) => served(manifest, model).map(|()| empty()),
        Route::ModelMetadata(model) => {
            served(manifest, model).map(|()| Reply::json(200, metadata(manifest)))
        }
        Route::Infer(model) => match served(manifest, model) {
            Ok(()) => infer(service, request, record),
            Err(e) => Err(e),
        },
    };
    answered.unwrap_or_else(error)
}

fn empty() -> Reply {
    Reply {
        status: 200,
        body: Body::Empty,
        allow: None,
        headers: Vec::new(),
        error: None,
    }
}

/// Whether the path names the served model and version.
fn served(manifest: &Manifest, model: &Model) -> Result<(), Failure> {
    let version_ok = model.version.as_deref().is_none_or(|v| v == VERSION);
    if model.name == manifest.name && version_ok {
        return Ok(());
    }
    Err(Failure::new(
        ErrorCode::NotFound,
        format!(
            "unknown model {} version {}; this server serves {} version {VERSION}",
            quote(&model.name),
            quote(model.version.as_deref().unwrap_or("(any)")),
            quote(&manifest.name)
        ),
    ))
}

/// `GET .../v2/models/{m}`.
fn metadata(manifest: &Manifest) -> String {
    let tensor = |name: &str, datatype: &str, shape: &[i64]| json!({"name": name, "datatype": datatype, "shape": shape});
    json!({
        "name": manifest.name,
        "versions": [VERSION],
        "platform": "onnx",
        "inputs": [tensor(INPUT, "BYTES", &[-1])],
        "outputs": [
            tensor("detection_boxes", "FP32", &[-1, -1, 4]),
            tensor("detection_scores", "FP32", &[-1, -1]),
            tensor("detection_classes", "FP32", &[-1, -1]),
            tensor("num_detections", "INT32", &[-1]),
        ],
    })
    .to_string()
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(ErrorCode::InvalidParameter, message)
}

/// An inference request, read.
#[derive(Debug)]
struct Inference {
    id: Option<Value>,
    images: Vec<Vec<u8>>,
    options: DetectOptions,
    /// The outputs asked for, each with whether it goes as binary data.
    outputs: Vec<(&'static str, &'static str, bool)>,
}

/// Splits a body into its JSON header and the binary data after it.
fn split_body<'a>(request: &Request, raw: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), Failure> {
    let Some(length) = request.header(HEADER_LENGTH) else {
        return Ok((raw, &[]));
    };
    let length: usize = length.trim().parse().map_err(|_| {
        invalid(format!(
            "Inference-Header-Content-Length {} is not a length",
            quote(length)
        ))
    })?;
    if length > raw.len() {
        return Err(invalid(format!(
            "Inference-Header-Content-Length {length} is longer than the body ({} bytes)",
            raw.len()
        )));
    }
    Ok(raw.split_at(length))
}

/// Reads an inference request from the body (JSON, binary data after it, or an image alone).
fn inference(request: &Request, raw: &[u8]) -> Result<Inference, Failure> {
    let (header, mut binary) = split_body(request, raw)?;
    if header.is_empty() && request.header(HEADER_LENGTH).is_some() {
        // The raw binary request: no JSON, the whole body is the one input's one element.
        return Ok(Inference {
            id: None,
            images: vec![binary.to_vec()],
            options: DetectOptions::default(),
            outputs: outputs(None, true)?,
        });
    }
    let value = body::json_value(header, "the inference request")?;
    let Value::Object(mut map) = value else {
        return Err(Failure::new(
            ErrorCode::InvalidJson,
            "the inference request must be a JSON object with `inputs`",
        ));
    };
    let id = map.remove("id");
    let parameters = match map.remove("parameters") {
        None => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => return Err(invalid("`parameters` must be an object")),
    };
    let inputs = match map.remove("inputs") {
        Some(Value::Array(inputs)) => inputs,
        Some(_) => return Err(invalid("`inputs` must be a list")),
        None => {
            return Err(Failure::new(
                ErrorCode::MissingImage,
                "the inference request has no `inputs`",
            ))
        }
    };
    let requested = map.remove("outputs");
    if let Some(key) = map.keys().next() {
        return Err(invalid(format!(
            "unknown field {}: an inference request has `id`, `parameters`, `inputs` and `outputs`",
            quote(key)
        )));
    }
    let [input] = inputs.as_slice() else {
        return Err(invalid(format!(
            "{} inputs; the model has one, `{INPUT}`, of encoded images",
            inputs.len()
        )));
    };
    let images = images(input, &mut binary)?;
    if !binary.is_empty() {
        return Err(invalid(format!(
            "{} bytes of binary data after the inputs' `binary_data_size`",
            binary.len()
        )));
    }
    let mut options = DetectOptions::default();
    let mut binary_output = false;
    for (name, value) in parameters {
        match name.as_str() {
            "binary_data_output" => binary_output = value.as_bool().unwrap_or(false),
            p if PROTOCOL_PARAMETERS.contains(&p) => {}
            option if DetectOptions::NAMES.contains(&option) => options
                .set_json(option, value)
                .map_err(|e| Failure::from(&e))?,
            other => {
                return Err(Failure::from(&DetectOptions::unknown(
                    "parameter",
                    other,
                    &PROTOCOL_PARAMETERS,
                )))
            }
        }
    }
    refuse_detect_only(&options, "an inference answers tensors only")?;
    Ok(Inference {
        id,
        images,
        options,
        outputs: outputs(requested, binary_output)?,
    })
}

/// The input's images: its `data` (base64 strings, nested or flat) or its `binary_data_size` bytes of
/// `binary`, taken from the front of it.
fn images(input: &Value, binary: &mut &[u8]) -> Result<Vec<Vec<u8>>, Failure> {
    let datatype = input.get("datatype").and_then(Value::as_str).unwrap_or("");
    if datatype != "BYTES" {
        return Err(invalid(format!(
            "input datatype {}: the model takes BYTES, encoded image files",
            quote(datatype)
        )));
    }
    let shape: Vec<u64> = match input.get("shape").and_then(Value::as_array) {
        Some(dims) => dims
            .iter()
            .map(|d| d.as_u64().ok_or_else(|| invalid("`shape` holds sizes")))
            .collect::<Result<_, _>>()?,
        None => return Err(invalid("the input has no `shape`")),
    };
    let size = input
        .get("parameters")
        .and_then(|p| p.get("binary_data_size"));
    let images = match (size, input.get("data")) {
        (Some(size), None) => {
            let size = size
                .as_u64()
                .and_then(|s| usize::try_from(s).ok())
                .ok_or_else(|| invalid("`binary_data_size` is a byte count"))?;
            if size > binary.len() {
                return Err(invalid(format!(
                    "`binary_data_size` {size} is more than the {} bytes of binary data",
                    binary.len()
                )));
            }
            let (mine, rest) = binary.split_at(size);
            *binary = rest;
            elements(mine)?
        }
        (None, Some(data)) => {
            let mut flat = Vec::new();
            flatten(data, &mut flat)?;
            flat.iter()
                .map(|s| base64_text::decode_base64(s))
                .collect::<Result<_, _>>()?
        }
        _ => return Err(invalid(
            "the input has `data` (base64 strings) or `parameters.binary_data_size`, one of them",
        )),
    };
    let count: u64 = shape.iter().product();
    if count != images.len() as u64 {
        return Err(invalid(format!(
            "shape {shape:?} holds {count} elements, the data {}",
            images.len()
        )));
    }
    if images.is_empty() {
        return Err(Failure::new(
            ErrorCode::MissingImage,
            "no images: the input is empty",
        ));
    }
    if images.len() > MAX_IMAGES_PER_REQUEST {
        return Err(invalid(format!(
            "{} images; at most {MAX_IMAGES_PER_REQUEST} per request",
            images.len()
        )));
    }
    Ok(images)
}

/// JSON `data` of strings, nested in lists as the shape is or flat.
fn flatten<'a>(data: &'a Value, out: &mut Vec<&'a str>) -> Result<(), Failure> {
    match data {
        Value::String(s) => out.push(s),
        Value::Array(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        _ => {
            return Err(invalid(
                "BYTES `data` holds strings: the base64 of each encoded image",
            ))
        }
    }
    Ok(())
}

/// BYTES elements in binary form: each a 4-byte little-endian length, then that many bytes.
fn elements(mut data: &[u8]) -> Result<Vec<Vec<u8>>, Failure> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (length, rest) = data
            .split_first_chunk::<4>()
            .ok_or_else(|| invalid("binary BYTES data cut inside an element's length"))?;
        let length = u32::from_le_bytes(*length) as usize;
        if length > rest.len() {
            return Err(invalid(format!(
                "a binary BYTES element of {length} bytes, with {} left",
                rest.len()
            )));
        }
        let (element, rest) = rest.split_at(length);
        out.push(element.to_vec());
        data = rest;
        if out.len() > MAX_IMAGES_PER_REQUEST {
            break; // the count check names the limit
        }
    }
    Ok(out)
}

/// The outputs asked for (all four when none are named), each with whether it goes as binary data.
fn outputs(
    requested: Option<Value>,
    binary_by_default: bool,
) -> Result<Vec<(&'static str, &'static str, bool)>, Failure> {
    let Some(requested) = requested else {
        return Ok(OUTPUTS
            .iter()
            .map(|&(name, datatype)| (name, datatype, binary_by_default))
            .collect());
    };
    let Value::Array(items) = requested else {
        return Err(invalid("`outputs` must be a list"));
    };
    items
        .iter()
        .map(|item| {
            let name = item.get("name").and_then(Value::as_str).unwrap_or("");
            let &(name, datatype) = OUTPUTS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                invalid(format!(
                    "unknown output {}; the model's are detection_boxes, detection_scores, \
                     detection_classes, num_detections",
                    quote(name)
                ))
            })?;
            let binary = item
                .get("parameters")
                .and_then(|p| p.get("binary_data"))
                .and_then(Value::as_bool)
                .unwrap_or(binary_by_default);
            Ok((name, datatype, binary))
        })
        .collect()
}

fn infer(service: &Service<'_>, request: &Request, record: &mut Record) -> Result<Reply, Failure> {
    let raw = body::raw_bytes(request)?;
    if raw.is_empty() {
        return Err(Failure::new(
            ErrorCode::EmptyBody,
            "the request has no body: send an inference request with the image as a BYTES input",
        ));
    }
    let asked = inference(request, &raw)?;
    record.bytes = Some(asked.images.iter().map(Vec::len).sum());
    let manifest = service.detector.manifest();
    let predictions: Vec<Prediction> = service
        .detect_each(&asked.images, &asked.options, record)?
        .iter()
        .map(|response| Prediction::of(response, manifest))
        .collect();
    response(&asked, &predictions, manifest)
}

/// One output tensor of the answer: its data as JSON or as binary after the JSON.
#[derive(Debug, Serialize)]
struct Output {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Data {
    Floats(Vec<f32>),
    Ints(Vec<i32>),
}

impl Data {
    fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Data::Floats(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::Ints(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// The four outputs as tensors of `N` images by `K` (the most detections of any), zero-padded.
fn tensor(name: &str, predictions: &[Prediction]) -> (Vec<usize>, Data) {
    let n = predictions.len();
    let k = predictions
        .iter()
        .map(|p| p.detection_scores.len())
        .max()
        .unwrap_or(0);
    let padded = |row: &[f32], width: usize| {
        let mut row = row.to_vec();
        row.resize(width, 0.0);
        row
    };
    match name {
        "detection_boxes" => (
            vec![n, k, 4],
            Data::Floats(
                predictions
                    .iter()
                    .flat_map(|p| padded(p.detection_boxes.as_flattened(), k * 4))
                    .collect(),
            ),
        ),
        "detection_scores" => (
            vec![n, k],
            Data::Floats(
                predictions
                    .iter()
                    .flat_map(|p| padded(&p.detection_scores, k))
                    .collect(),
            ),
        ),
        "detection_classes" => (
            vec![n, k],
            Data::Floats(
                predictions
                    .iter()
                    .flat_map(|p| padded(&p.detection_classes, k))
                    .collect(),
            ),
        ),
        _ => (
            vec![n],
            Data::Ints(
                predictions
                    .iter()
                    .map(|p| p.num_detections as i32)
                    .collect(),
            ),
        ),
    }
}

fn response(
    asked: &Inference,
    predictions: &[Prediction],
    manifest: &Manifest,
) -> Result<Reply, Failure> {
    let mut binary = Vec::new();
    let mut outputs = Vec::new();
    for &(name, datatype, as_binary) in &asked.outputs {
        let (shape, data) = tensor(name, predictions);
        if as_binary {
            let bytes = data.to_le_bytes();
            outputs.push(Output {
                name,
                datatype,
                shape,
                parameters: Some(json!({"binary_data_size": bytes.len()})),
                data: None,
            });
            binary.extend(bytes);
        } else {
            outputs.push(Output {
                name,
                datatype,
                shape,
                parameters: None,
                data: Some(data),
            });
        }
    }
    #[derive(Serialize)]
    struct Answer<'a> {
        model_name: &'a str,
        model_version: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        outputs: Vec<Output>,
    }
    let header = serde_json::to_string(&Answer {
        model_name: &manifest.name,
        model_version: VERSION,
        id: asked.id.as_ref(),
        outputs,
    })
    .map_err(|e| Failure::internal(e.to_string()))?;
    if asked.outputs.iter().all(|&(_, _, b)| !b) {
        return Ok(Reply::json(200, header));
    }
    let length = header.len();
    let mut bytes = header.into_bytes();
    bytes.extend(binary);
    Ok(Reply {
        status: 200,
        body: Body::Binary {
            bytes,
            content_type: "application/octet-stream",
        },
        allow: None,
        headers: vec![(HEADER_LENGTH, length.to_string())],
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::http::header::{HeaderMap, HeaderValue};
    use aws_lambda_events::http::Method;

    fn route_of(path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        route(&segments)
    }

    #[test]
    fn every_route_of_the_protocol_is_found_after_any_base_path() {
        let m = |name: &str, version: Option<&str>| Model {
            name: name.into(),
            version: version.map(Into::into),
        };
        for (path, want) in [
            ("/v2", Some(Route::ServerMetadata)),
            ("/base/v2/", Some(Route::ServerMetadata)),
            ("/v2/health/live", Some(Route::Live)),
            ("/v2/health/ready", Some(Route::Ready)),
            ("/v2/models/m", Some(Route::ModelMetadata(m("m", None)))),
            (
                "/v2/models/m/versions/1",
                Some(Route::ModelMetadata(m("m", Some("1")))),
            ),
            ("/v2/models/m/ready", Some(Route::ModelReady(m("m", None)))),
            (
                "/v2/models/m/versions/2/ready",
                Some(Route::ModelReady(m("m", Some("2")))),
            ),
            ("/prod/v2/models/m/infer", Some(Route::Infer(m("m", None)))),
            (
                "/v2/models/m/versions/1/infer",
                Some(Route::Infer(m("m", Some("1")))),
            ),
            ("/v2/health", None),
            ("/v2/models/m/explain", None),
            ("/vision/v2/detect", None),
        ] {
            assert_eq!(route_of(path), want, "{path}");
        }
    }

    fn request(header_length: Option<usize>) -> Request {
        let mut headers = HeaderMap::new();
        if let Some(n) = header_length {
            headers.insert(HEADER_LENGTH, HeaderValue::from(n));
        }
        Request {
            method: Method::POST,
            path: "/v2/models/m/infer".into(),
            stage: None,
            headers,
            query: vec![],
            body: None,
            is_base64: false,
        }
    }

    /// BYTES elements in binary form.
    fn serialized(elements: &[&[u8]]) -> Vec<u8> {
        elements
            .iter()
            .flat_map(|e| {
                (e.len() as u32)
                    .to_le_bytes()
                    .into_iter()
                    .chain(e.iter().copied())
            })
            .collect()
    }

    #[test]
    fn images_come_as_json_base64_as_binary_elements_or_as_the_whole_body() {
        let json_request = json!({
            "id": "42",
            "parameters": {"score_threshold": 0.5, "priority": 1},
            "inputs": [{"name": "x", "shape": [2], "datatype": "BYTES", "data": ["aGk=", "aGVsbG8="]}],
            "outputs": [{"name": "num_detections"}, {"name": "detection_boxes", "parameters": {"binary_data": true}}]
        });
        let read = inference(&request(None), json_request.to_string().as_bytes()).unwrap();
        assert_eq!(read.images, [b"hi".to_vec(), b"hello".to_vec()]);
        assert_eq!(read.id, Some(json!("42")));
        assert_eq!(read.options.score_threshold, Some(0.5));
        assert_eq!(
            read.outputs,
            [
                ("num_detections", "INT32", false),
                ("detection_boxes", "FP32", true)
            ]
        );

        let data = serialized(&[b"one", b"three"]);
        let header = json!({
            "inputs": [{"name": "IMAGE", "shape": [2, 1], "datatype": "BYTES",
                        "parameters": {"binary_data_size": data.len()}}],
            "parameters": {"binary_data_output": true}
        })
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend(&data);
        let read = inference(&request(Some(header.len())), &body).unwrap();
        assert_eq!(read.images, [b"one".to_vec(), b"three".to_vec()]);
        assert_eq!(read.outputs.len(), 4);
        assert!(read.outputs.iter().all(|o| o.2), "binary_data_output");

        let read = inference(&request(Some(0)), b"\xff\xd8raw jpeg").unwrap();
        assert_eq!(read.images, [b"\xff\xd8raw jpeg".to_vec()]);
    }

    #[test]
    fn malformed_inference_requests_get_their_code() {
        let input = |extra: Value| {
            let mut i = json!({"name": "x", "shape": [1], "datatype": "BYTES", "data": ["aGk="]});
            i.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({ "inputs": [i] })
        };
        for (body, header, code) in [
            (
                json!([1]).to_string().into_bytes(),
                None,
                ErrorCode::InvalidJson,
            ),
            (b"{".to_vec(), None, ErrorCode::InvalidJson),
            (
                json!({}).to_string().into_bytes(),
                None,
                ErrorCode::MissingImage,
            ),
            (
                json!({"inputs": []}).to_string().into_bytes(),
                None,
                ErrorCode::InvalidParameter,
            ),
            (
                input(json!({"datatype": "FP32"})).to_string().into_bytes(),
                None,
                ErrorCode::InvalidParameter,
            ),
            (
                input(json!({"shape": [2]})).to_string().into_bytes(),
                None,
                ErrorCode::InvalidParameter,
            ),
            (
                input(json!({"data": [1]})).to_string().into_bytes(),
                None,
                ErrorCode::InvalidParameter,
            ),
            (
                input(json!({"data": ["***"]})).to_string().into_bytes(),
                None,
                ErrorCode::InvalidBase64,
            ),
            (
                input(json!({"shape": [0], "data": []}))
                    .to_string()
                    .into_bytes(),
                None,
                ErrorCode::MissingImage,
            ),
            (
                input(json!({"shape": [17], "data": vec!["aGk="; 17]}))
                    .to_string()
                    .into_bytes(),
                None,
                ErrorCode::InvalidParameter,
            ),
            (
                input(json!({"parameters": {"binary_data_size": 8}}))
                    .to_string()
                    .into_bytes(),
                None,
                ErrorCode::InvalidParameter,
            ),
            (b"{}".to_vec(), Some(10), ErrorCode::InvalidParameter),
        ] {
            let e = inference(&request(header), &body).expect_err(&String::from_utf8_lossy(&body));
            assert_eq!(e.code(), code, "{}: {e}", String::from_utf8_lossy(&body));
        }
        // Option names and outputs are checked here; option values where the detection resolves them.
        for body in [
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}], "parameters": {"threshold": 0.3}}),
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}], "parameters": {"format": "png"}}),
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}], "parameters": {"box_format": "normalized"}}),
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}], "outputs": [{"name": "logits"}]}),
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}], "extra": 1}),
        ] {
            let e = inference(&request(None), body.to_string().as_bytes())
                .expect_err(&body.to_string());
            assert_eq!(e.code(), ErrorCode::InvalidParameter, "{body}: {e}");
        }
        // Binary elements cut short, and binary data left over.
        let mut cut = serialized(&[b"abc"]);
        cut.truncate(5);
        assert!(elements(&cut).is_err());
        assert!(elements(&[1, 0]).is_err());
        let header = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES",
            "parameters": {"binary_data_size": 7}}]})
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend(serialized(&[b"abc"]));
        body.push(0);
        let e = inference(&request(Some(header.len())), &body).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidParameter, "{e}");
    }

    fn prediction(scores: &[f32]) -> Prediction {
        Prediction {
            detection_boxes: scores.iter().map(|&s| [s, s, s, s]).collect(),
            detection_scores: scores.to_vec(),
            detection_classes: scores.iter().map(|_| 17.0).collect(),
            num_detections: scores.len() as f32,
        }
    }

    #[test]
    fn outputs_are_rectangular_tensors_padded_with_zeros_as_json_or_binary() {
        let predictions = [
            prediction(&[0.5, 0.25]),
            prediction(&[]),
            prediction(&[0.75]),
        ];
        let (shape, data) = tensor("detection_scores", &predictions);
        assert_eq!(shape, [3, 2]);
        let Data::Floats(scores) = data else { panic!() };
        assert_eq!(scores, [0.5, 0.25, 0.0, 0.0, 0.75, 0.0]);
        let (shape, data) = tensor("detection_boxes", &predictions);
        assert_eq!(shape, [3, 2, 4]);
        let Data::Floats(boxes) = data else { panic!() };
        assert_eq!(boxes.len(), 24);
        assert_eq!(&boxes[16..20], [0.75; 4]);
        let (shape, data) = tensor("num_detections", &predictions);
        assert_eq!(shape, [3]);
        let Data::Ints(counts) = data else { panic!() };
        assert_eq!(counts, [2, 0, 1]);

        let manifest = Manifest::from_toml(crate::core::embedded::MANIFEST).unwrap();
        let asked = Inference {
            id: Some(json!("7")),
            images: vec![],
            options: DetectOptions::default(),
            outputs: vec![
                ("detection_scores", "FP32", true),
                ("num_detections", "INT32", false),
            ],
        };
        let reply = response(&asked, &predictions, &manifest).unwrap();
        let Body::Binary {
            bytes,
            content_type,
        } = &reply.body
        else {
            panic!("binary")
        };
        assert_eq!(*content_type, "application/octet-stream");
        let length: usize = reply
            .headers
            .iter()
            .find(|h| h.0 == HEADER_LENGTH)
            .unwrap()
            .1
            .parse()
            .unwrap();
        let header: Value = serde_json::from_slice(&bytes[..length]).unwrap();
        assert_eq!(header["id"], "7");
        assert_eq!(header["model_version"], "1");
        assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 24);
        assert_eq!(header["outputs"][1]["data"], json!([2, 0, 1]));
        let floats: Vec<f32> = bytes[length..]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(floats, [0.5, 0.25, 0.0, 0.0, 0.75, 0.0]);

        let json_only = Inference {
            outputs: vec![("detection_classes", "FP32", false)],
            ..asked
        };
        let reply = response(&json_only, &predictions, &manifest).unwrap();
        let Body::Json(text) = &reply.body else {
            panic!("JSON")
        };
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["outputs"][0]["shape"], json!([3, 2]));
        assert_eq!(
            v["outputs"][0]["data"],
            json!([17.0, 17.0, 0.0, 0.0, 17.0, 0.0])
        );
    }

    #[test]
    fn only_the_served_model_and_version_are_found() {
        let m = Manifest::from_toml(crate::core::embedded::MANIFEST).unwrap();
        let model = |name: &str, version: Option<&str>| Model {
            name: name.into(),
            version: version.map(Into::into),
        };
        assert!(served(&m, &model(&m.name, None)).is_ok());
        assert!(served(&m, &model(&m.name, Some("1"))).is_ok());
        for wrong in [model("resnet", None), model(&m.name, Some("2"))] {
            assert_eq!(served(&m, &wrong).unwrap_err().code(), ErrorCode::NotFound);
        }
    }
}
