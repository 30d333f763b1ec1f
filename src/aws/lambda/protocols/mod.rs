//! The HTTP protocols the function speaks, one file each: its routes, its requests read into the
//! core's, its answers and errors in its own shape. Adding one is a file and an arm in [`Route`].
//!
//! Routing reads the whole path. Each protocol looks for its own anchor among the path's segments
//! (`v1/models/...` for TF Serving, `v2/...` for the Open Inference Protocol), so whatever precedes it (a REST API stage, a custom domain's base
//! path, nothing at a function URL's root) is left alone; a path no protocol claims goes to the
//! function's own routes, which look at its last segment.

pub mod native;
pub mod open_inference;
pub mod rekognition;
pub mod tf_serving;

use aws_lambda_events::http::Method;
use percent_encoding::percent_decode_str;

use crate::aws::lambda::events::Request;
use crate::aws::lambda::record::Record;
use crate::aws::lambda::reply::Reply;
use crate::aws::lambda::service::Service;
use crate::core::error::Failure;

/// Where a request goes: a protocol, and the route within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The function's own `/detect`, `/model` and `/health`.
    Native(native::Route),
    /// TF Serving's REST API: `v1/models/{name}...`.
    TfServing(tf_serving::Route),
    /// Rekognition's operations, named by `X-Amz-Target` (the AWS JSON 1.1 protocol).
    Rekognition(rekognition::Route),
    /// The Open Inference Protocol (KServe v2, Triton): `v2/...`.
    OpenInference(open_inference::Route),
}

impl Route {
    /// The route's name in the log line.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Native(r) => r.name(),
            Route::TfServing(r) => r.name(),
            Route::Rekognition(r) => r.name(),
            Route::OpenInference(r) => r.name(),
        }
    }

    /// The `Allow` header's methods.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Native(r) => r.allow(),
            Route::TfServing(r) => r.allow(),
            Route::Rekognition(r) => r.allow(),
            Route::OpenInference(r) => r.allow(),
        }
    }

    /// Whether `method` is one the route answers (a CORS preflight aside).
    pub fn allows(&self, method: &Method) -> bool {
        self.allow()
            .split(", ")
            .any(|m| m != "OPTIONS" && m == method.as_str())
    }

    /// Whether the route runs a detection: what the request metrics count.
    pub fn is_detection(&self) -> bool {
        match self {
            Route::Native(r) => *r == native::Route::Detect,
            Route::TfServing(r) => r.is_detection(),
            Route::Rekognition(r) => r.is_detection(),
            Route::OpenInference(r) => r.is_detection(),
        }
    }

    /// `failure` in the protocol's own error shape.
    pub(crate) fn error(&self, failure: Failure) -> Reply {
        match self {
            Route::Native(_) => Reply::from(failure),
            Route::TfServing(_) => tf_serving::error(failure),
            Route::Rekognition(_) => rekognition::error(failure),
            Route::OpenInference(_) => open_inference::error(failure),
        }
    }
}

/// The route of a request: by its `X-Amz-Target` header (an AWS SDK's call), else by its whole path;
/// `None` when no protocol claims it.
pub fn route(request: &Request) -> Option<Route> {
    if let Some(r) = rekognition::route(request) {
        return Some(Route::Rekognition(r));
    }
    let segments = segments(&request.path);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if let Some(r) = tf_serving::route(&segments) {
        return Some(Route::TfServing(r));
    }
    if let Some(r) = open_inference::route(&segments) {
        return Some(Route::OpenInference(r));
    }
    native::route(request).map(Route::Native)
}

/// The answer to a route, once its method is known to be allowed.
pub async fn answer(
    service: &Service<'_>,
    route: &Route,
    request: &Request,
    record: &mut Record,
) -> Reply {
    match route {
        Route::Native(r) => native::answer(service, *r, request, record).await,
        Route::TfServing(r) => tf_serving::answer(service, r, request, record).await,
        Route::Rekognition(r) => rekognition::answer(service, r, request, record).await,
        Route::OpenInference(r) => open_inference::answer(service, r, request, record).await,
    }
}

/// The path's non-empty segments, percent-decoded (`%3A` is the `:` of `:predict` to some clients).
fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::http::header::HeaderMap;

    fn request(path: &str, stage: Option<&str>) -> Request {
        Request {
            method: Method::POST,
            path: path.into(),
            stage: stage.map(Into::into),
            headers: HeaderMap::new(),
            query: vec![],
            body: None,
            is_base64: false,
        }
    }

    fn tf(model: &str, endpoint: tf_serving::Endpoint) -> Option<Route> {
        Some(Route::TfServing(tf_serving::Route {
            model: model.into(),
            version: tf_serving::Selector::Latest,
            endpoint,
        }))
    }

    #[test]
    fn each_protocol_is_found_after_any_base_path_and_the_native_routes_stay() {
        use tf_serving::Endpoint::{Metadata, Predict, Status};
        let native = |r| Some(Route::Native(r));
        for (path, stage, want) in [
            ("/v1/models/m:predict", None, tf("m", Predict)),
            ("/prod/v1/models/m:predict", Some("prod"), tf("m", Predict)),
            ("/vision/api/v1/models/m%3Apredict", None, tf("m", Predict)),
            ("/v1/models/m", None, tf("m", Status)),
            ("/v1/models/m/metadata", None, tf("m", Metadata)),
            // A model called `model` or `detect` is TF Serving's, not the native route of that name.
            ("/v1/models/model", None, tf("model", Status)),
            ("/v1/models/detect:predict", None, tf("detect", Predict)),
            ("/detect", None, native(native::Route::Detect)),
            ("/vision/v1/detect", None, native(native::Route::Detect)),
            ("/v1/models/m/detect", None, native(native::Route::Detect)),
            ("/model", None, native(native::Route::Model)),
            ("/", None, native(native::Route::Detect)),
            ("/v1/models", None, None),
            ("/v1/models/m/versions", None, None),
            ("/nope", None, None),
        ] {
            assert_eq!(route(&request(path, stage)), want, "{path}");
        }
    }

    #[test]
    fn a_route_allows_its_own_methods_only() {
        let detect = Route::Native(native::Route::Detect);
        assert!(detect.allows(&Method::POST));
        assert!(!detect.allows(&Method::GET));
        assert!(!detect.allows(&Method::OPTIONS));
        let status = tf("m", tf_serving::Endpoint::Status).unwrap();
        assert!(status.allows(&Method::GET) && status.allows(&Method::HEAD));
        assert!(!status.allows(&Method::POST));
        assert!(tf("m", tf_serving::Endpoint::Predict)
            .unwrap()
            .allows(&Method::POST));
    }
}
