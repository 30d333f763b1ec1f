//! Event shapes: telling them apart, reading them into one [`Request`], answering in the same shape.
//!
//! Why not `lambda_http`: a direct invocation with a bad image must fail as a Lambda function error
//! (`errorType` = the code, for Step Functions' `Catch`), and `lambda_http` turns every event into an
//! HTTP request and every answer into an HTTP response, which discards that.

use aws_lambda_events::alb::{AlbTargetGroupRequest, AlbTargetGroupResponse};
use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::header::{HeaderMap, HeaderName, HeaderValue};
use aws_lambda_events::http::{Method, StatusCode};
use aws_lambda_events::query_map::QueryMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::cors::AllowedOrigins;
use super::objects::ObjectSource;
use super::reply::{Body as ReplyBody, Reply};
use crate::core::error::Failure;
use crate::core::error_code::ErrorCode;

/// The invocation sources this function answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An HTTP request from one of the HTTP front doors.
    Http(HttpKind),
    /// A direct invocation: `{"image": "<base64>", ...options}`, or `image_url`, `s3` or `images`.
    Direct,
    /// A direct invocation in Rekognition's shape: a `DetectLabels` request, `{"Image": {...}, ...}`.
    DirectRekognition,
    /// An event naming S3 objects: S3, SQS, EventBridge, or a batch of keys.
    Objects(ObjectSource),
}

/// The HTTP front doors, each with its own event and response shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpKind {
    /// API Gateway REST API, Lambda proxy integration.
    RestApi,
    /// API Gateway HTTP API with payload format 1.0 (the REST shape with `"version": "1.0"`).
    HttpApiV1,
    /// API Gateway HTTP API with payload format 2.0.
    HttpApiV2,
    /// A Lambda function URL (payload format 2.0 on a `*.lambda-url.*` domain).
    FunctionUrl,
    /// An Application Load Balancer target group.
    Alb,
}

impl EventKind {
    /// The name the log line gives the source.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Http(HttpKind::RestApi) => "apigw_rest",
            EventKind::Http(HttpKind::HttpApiV1) => "apigw_http_v1",
            EventKind::Http(HttpKind::HttpApiV2) => "apigw_http_v2",
            EventKind::Http(HttpKind::FunctionUrl) => "function_url",
            EventKind::Http(HttpKind::Alb) => "alb",
            EventKind::Direct => "direct",
            EventKind::DirectRekognition => "direct_rekognition",
            EventKind::Objects(source) => source.name(),
        }
    }
}

/// Tells the event shape from the payload itself.
pub fn classify(event: &Value) -> Option<EventKind> {
    let obj = event.as_object()?;
    let ctx = obj.get("requestContext").and_then(Value::as_object);
    let version = obj.get("version").and_then(Value::as_str);
    if let Some(ctx) = ctx {
        let http = if ctx.contains_key("elb") {
            HttpKind::Alb
        } else if ctx.get("http").is_some_and(Value::is_object) {
            let domain = ctx.get("domainName").and_then(Value::as_str).unwrap_or("");
            if domain.contains(".lambda-url.") {
                HttpKind::FunctionUrl
            } else {
                HttpKind::HttpApiV2
            }
        } else if obj.contains_key("httpMethod") {
            if version == Some("1.0") {
                HttpKind::HttpApiV1
            } else {
                HttpKind::RestApi
            }
        } else {
            return None;
        };
        return Some(EventKind::Http(http));
    }
    if let Some(source) = super::objects::classify(obj) {
        return Some(EventKind::Objects(source));
    }
    let names_an_image = super::image_source::FIELDS
        .iter()
        .any(|f| obj.contains_key(*f));
    if names_an_image && !obj.contains_key("httpMethod") {
        return Some(EventKind::Direct);
    }
    if obj.contains_key("Image") {
        return Some(EventKind::DirectRekognition);
    }
    None
}

/// An HTTP request, whatever event it came in.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    /// The API Gateway stage, which may prefix the path.
    pub stage: Option<String>,
    pub headers: HeaderMap,
    /// Decoded query parameters, in order; a repeated key appears once per value.
    pub query: Vec<(String, String)>,
    pub body: Option<String>,
    pub is_base64: bool,
}

impl Request {
    /// The media type of the body, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        let raw = self.header("content-type")?;
        let main = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        (!main.is_empty()).then_some(main)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn typed<T: DeserializeOwned>(kind: HttpKind, event: Value) -> Result<T, Failure> {
    serde_json::from_value(event).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidEvent,
            format!(
                "malformed {} event: {}",
                EventKind::Http(kind).name(),
                crate::core::error::bounded(&e.to_string(), 200)
            ),
        )
    })
}

pub fn parse(kind: HttpKind, event: Value) -> Result<Request, Failure> {
    Ok(match kind {
        HttpKind::RestApi | HttpKind::HttpApiV1 => {
            let e: ApiGatewayProxyRequest = typed(kind, event)?;
            let query = query_pairs(
                &e.multi_value_query_string_parameters,
                &e.query_string_parameters,
            );
            Request {
                method: e.http_method.clone(),
                path: e.path.unwrap_or_default(),
                stage: e.request_context.stage,
                headers: merge(e.headers, e.multi_value_headers),
                query,
                body: e.body,
                is_base64: e.is_base64_encoded,
            }
        }
        HttpKind::HttpApiV2 | HttpKind::FunctionUrl => {
            let e: ApiGatewayV2httpRequest = typed(kind, event)?;
            // HTTP API joins repeated keys with commas in queryStringParameters; rawQueryString keeps them.
            let query = match e.raw_query_string.as_deref() {
                Some(raw) if !raw.is_empty() => parse_query(raw),
                _ => pairs(e.query_string_parameters.iter()),
            };
            Request {
                method: e.request_context.http.method.clone(),
                path: e
                    .raw_path
                    .or(e.request_context.http.path)
                    .unwrap_or_default(),
                stage: e.request_context.stage,
                headers: e.headers,
                query,
                body: e.body,
                is_base64: e.is_base64_encoded,
            }
        }
        HttpKind::Alb => {
            let e: AlbTargetGroupRequest = typed(kind, event)?;
            // ALB passes query strings exactly as sent, still percent-encoded: decode them as the query
            // string they came from (ALB split it at `&` and the first `=`, so joining them back is exact).
            let raw = query_pairs(
                &e.multi_value_query_string_parameters,
                &e.query_string_parameters,
            );
            let joined: Vec<String> = raw.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let query = parse_query(&joined.join("&"));
            Request {
                method: e.http_method.clone(),
                path: e.path.unwrap_or_default(),
                stage: None,
                headers: merge(e.headers, e.multi_value_headers),
                query,
                body: e.body,
                is_base64: e.is_base64_encoded,
            }
        }
    })
}

/// The multi-value parameters when the event has them (they hold every repeat), else the single ones.
fn query_pairs(multi: &QueryMap, single: &QueryMap) -> Vec<(String, String)> {
    if multi.iter().next().is_some() {
        pairs(multi.iter())
    } else {
        pairs(single.iter())
    }
}

fn pairs<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    it.map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Single- and multi-value headers in one map (ALB and REST APIs may send either or both).
fn merge(mut single: HeaderMap, multi: HeaderMap) -> HeaderMap {
    for name in multi.keys() {
        if !single.contains_key(name) {
            for v in multi.get_all(name) {
                single.append(name.clone(), v.clone());
            }
        }
    }
    single
}

/// `application/x-www-form-urlencoded` pairs: `+` is a space, `%XX` a byte, malformed escapes stay as
/// they are, empty pairs are skipped.
fn parse_query(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The answer's headers; `origin` is the request's `Origin`, answered from `cors`.
fn headers(reply: &Reply, cors: Option<&AllowedOrigins>, origin: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    match &reply.body {
        ReplyBody::Empty => {}
        ReplyBody::Json(_) => put("content-type", "application/json"),
        ReplyBody::Text { content_type, .. } | ReplyBody::Binary { content_type, .. } => {
            put("content-type", content_type)
        }
    }
    if let Some(allow) = reply.allow {
        put("allow", allow);
    }
    for (name, value) in &reply.headers {
        put(name, value);
    }
    if cors.is_some_and(|c| c.varies()) {
        put("vary", "Origin");
    }
    if let Some(allowed) = cors.and_then(|c| c.allow(origin)) {
        put("access-control-allow-origin", allowed);
        put("access-control-allow-methods", "GET, POST, OPTIONS");
        put(
            "access-control-allow-headers",
            "content-type, authorization, x-api-key, x-amz-target, inference-header-content-length",
        );
        put("access-control-max-age", "600");
        put(
            "access-control-expose-headers",
            "x-detection-count, x-detection-labels, x-model, inference-header-content-length",
        );
    }
    h
}

/// The response in the shape the event came in. Fails only where the event type's serializer does
/// (a header value that is not UTF-8, which text headers never are): the caller answers that as a
/// 500 of its own and logs the status it sends.
pub fn respond(
    kind: HttpKind,
    reply: Reply,
    cors: Option<&AllowedOrigins>,
    origin: Option<&str>,
) -> Result<Value, Failure> {
    let headers = headers(&reply, cors, origin);
    // A picture travels base64-encoded, flagged so the front door sends the bytes.
    let (body, base64) = match reply.body {
        ReplyBody::Empty => (None, false),
        ReplyBody::Json(text) | ReplyBody::Text { text, .. } => (Some(Body::Text(text)), false),
        ReplyBody::Binary { bytes, .. } => (Some(Body::Binary(bytes)), true),
    };
    let status = i64::from(reply.status);
    let value = match kind {
        HttpKind::RestApi | HttpKind::HttpApiV1 => {
            let mut r = ApiGatewayProxyResponse::default();
            r.status_code = status;
            r.headers = headers;
            r.body = body;
            r.is_base64_encoded = base64;
            serde_json::to_value(r)
        }
        HttpKind::HttpApiV2 | HttpKind::FunctionUrl => {
            // `cookies` is always present: the function URL emulator rejects a response without it.
            let mut r = ApiGatewayV2httpResponse::default();
            r.status_code = status;
            r.headers = headers;
            r.body = body;
            r.is_base64_encoded = base64;
            serde_json::to_value(r)
        }
        HttpKind::Alb => {
            let mut r = AlbTargetGroupResponse::default();
            r.status_code = status;
            let reason = StatusCode::from_u16(reply.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            r.status_description = Some(format!("{} {reason}", reply.status));
            // Targets with multi-value headers enabled read only multiValueHeaders; others only headers.
            r.multi_value_headers = headers.clone();
            r.headers = headers;
            r.body = body;
            r.is_base64_encoded = base64;
            serde_json::to_value(r)
        }
    };
    value.map_err(|e| {
        Failure::internal(format!(
            "writing the {} response: {e}",
            EventKind::Http(kind).name()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_by_payload() {
        let v2 = json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}, "domainName": "x.execute-api.us-east-1.amazonaws.com"}});
        let url = json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}, "domainName": "abc.lambda-url.eu-west-1.on.aws"}});
        let rest = json!({"httpMethod": "POST", "requestContext": {"stage": "prod"}});
        let http_v1 = json!({"version": "1.0", "httpMethod": "POST", "requestContext": {"stage": "$default"}});
        let alb =
            json!({"httpMethod": "POST", "requestContext": {"elb": {"targetGroupArn": "arn"}}});
        let direct = json!({"image": "aGk="});
        assert_eq!(classify(&v2), Some(EventKind::Http(HttpKind::HttpApiV2)));
        assert_eq!(classify(&url), Some(EventKind::Http(HttpKind::FunctionUrl)));
        assert_eq!(classify(&rest), Some(EventKind::Http(HttpKind::RestApi)));
        assert_eq!(
            classify(&http_v1),
            Some(EventKind::Http(HttpKind::HttpApiV1))
        );
        assert_eq!(classify(&alb), Some(EventKind::Http(HttpKind::Alb)));
        assert_eq!(classify(&direct), Some(EventKind::Direct));
        for other in [
            json!({}),
            json!([1]),
            json!("x"),
            json!({"Records": []}),
            json!({"requestContext": {}}),
        ] {
            assert_eq!(classify(&other), None, "{other}");
        }
    }

    #[test]
    fn query_strings_decode() {
        let percent_decode = |v: &str| parse_query(&format!("v={v}")).remove(0).1;
        assert_eq!(
            percent_decode("traffic%20light%2Cperson"),
            "traffic light,person"
        );
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(
            parse_query("score_threshold=0.5&classes=cat,dog&&flag"),
            vec![
                ("score_threshold".into(), "0.5".into()),
                ("classes".into(), "cat,dog".into()),
                ("flag".into(), "".into())
            ]
        );
    }
}
