//! The function's own protocol: `POST /detect` (image bytes, JSON with base64, multipart forms),
//! `GET /model`, `GET /health`, and the page to try it (`GET /`, `GET /demo`).

use serde_json::json;

use aws_lambda_events::http::Method;

use crate::aws::lambda::body;
use crate::aws::lambda::events::Request;
use crate::aws::lambda::image_source::Images;
use crate::aws::lambda::record::Record;
use crate::aws::lambda::reply::{self, Reply};
use crate::aws::lambda::service::Service;
use crate::core::detector::Detector;
use crate::core::error::Failure;
use crate::core::error_code::ErrorCode;
use crate::core::image_decode::SUPPORTED_FORMATS;
use crate::core::options::{DetectOptions, Format};
use crate::core::response::decimal;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Detect,
    Model,
    Health,
    Demo,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Detect => "detect",
            Route::Model => "model",
            Route::Health => "health",
            Route::Demo => "demo",
        }
    }

    pub fn allow(self) -> &'static str {
        match self {
            Route::Detect => "POST, OPTIONS",
            Route::Model | Route::Health | Route::Demo => "GET, HEAD, OPTIONS",
        }
    }
}

/// The route of a request. Only the last path segment counts, so a REST stage (`/prod/detect`), a custom
/// domain's base path (`/vision/v1/detect`) or a function URL's bare `/` all work. The root is `/detect`
/// for a POST and the page for a browser's GET.
pub fn route(request: &Request) -> Option<Route> {
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    let root = match segments.last().copied() {
        None => true,
        Some(only) => segments.len() == 1 && request.stage.as_deref() == Some(only),
    };
    if root {
        let page = request.method == Method::GET || request.method == Method::HEAD;
        return Some(if page { Route::Demo } else { Route::Detect });
    }
    match segments.last().copied() {
        Some("detect") => Some(Route::Detect),
        Some("model") => Some(Route::Model),
        Some("health") => Some(Route::Health),
        Some("demo") => Some(Route::Demo),
        _ => None,
    }
}

/// The answer to a route the method is allowed on.
pub async fn answer(
    service: &Service<'_>,
    route: Route,
    request: &Request,
    record: &mut Record,
) -> Reply {
    match route {
        Route::Health => Reply::json(200, json!({"status": "ok"}).to_string()),
        Route::Demo => match service.demo {
            Some(page) => page.reply(),
            None => Reply::from(Failure::new(
                ErrorCode::NotFound,
                "no page here (DEMO_PAGE=off); POST images to /detect",
            )),
        },
        Route::Model => Reply::json(200, service.model_info.to_string()),
        Route::Detect => detect(service, request, record)
            .await
            .unwrap_or_else(Reply::from),
    }
}

async fn detect(
    service: &Service<'_>,
    request: &Request,
    record: &mut Record,
) -> Result<Reply, Failure> {
    let query = body::options_from_query(&request.query)?;
    let (images, options) = body::from_http(request).await?;
    // Options in the body win over the query string; the query fills what the body leaves unset;
    // without a `format`, an Accept header naming an image type asks for the picture (of one image).
    let mut options = options.or(query);
    if options.format.is_none() && matches!(images, Images::One(_)) {
        options.format = reply::format_from_accept(request.header("accept"));
    }
    let format = options.format.unwrap_or_default();
    match detect_images(service, images, &options, record).await? {
        Detected::One(response) => reply::detection(response, format),
        Detected::List(text) => Ok(Reply::json(200, text)),
    }
}

/// What `/detect` found: one image's response, or the `{"results": [...]}` of a list.
pub enum Detected {
    One(crate::Response),
    List(String),
}

/// A `/detect` request's images (from HTTP or a direct invocation), read and detected. A list runs
/// one image after another on the warm plan, each read just before its detection; an item that fails
/// is answered in its place by its error, and the others are answered. Options are checked first, so
/// a bad one fails the request, not each item, and costs no fetch.
pub async fn detect_images(
    service: &Service<'_>,
    images: Images,
    options: &DetectOptions,
    record: &mut Record,
) -> Result<Detected, Failure> {
    // A bad option fails the request before any URL or object is fetched.
    options
        .resolve(service.detector.manifest())
        .map_err(|e| Failure::from(&e))?;
    let items = match images {
        Images::One(source) => {
            let bytes = service.read(source).await?;
            record.bytes = Some(bytes.len());
            return service.detect(&bytes, options, record).map(Detected::One);
        }
        Images::List(items) => items,
    };
    if options.format.is_some_and(|f| f != Format::Json) {
        return Err(Failure::new(
            ErrorCode::InvalidParameter,
            "`format` jpeg or png answers one picture; with `images`, ask for `annotate: true` to get \
             each picture as base64 `annotated_image`",
        ));
    }
    // The pictures share the answer's room.
    let budget = reply::PICTURE_BUDGET / items.len();
    let mut results = Vec::with_capacity(items.len());
    let mut read = 0;
    for item in items {
        let answer = match item {
            Ok(source) => match service.read(source).await {
                Ok(bytes) => {
                    read += bytes.len();
                    service
                        .detect_within(&bytes, options, budget, record)
                        .and_then(|response| reply::json_body(&response))
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        results.push(answer.unwrap_or_else(|e| {
            record.failed_images.push(e.code());
            json!({ "error": e }).to_string()
        }));
    }
    record.bytes = Some(read);
    Ok(Detected::List(format!(
        "{{\"results\":[{}]}}",
        results.join(",")
    )))
}

/// `GET /model`: what the active model is and what it accepts.
pub fn model_info(detector: &Detector) -> String {
    let m = detector.manifest();
    let limits = detector.limits();
    json!({
        "name": m.name,
        "version": m.version,
        "input": {
            "width": m.input.width,
            "height": m.input.height,
        },
        "decoder": m.head.family(),
        "backend": detector.run_config().backend.name(),
        "labels": m.labels,
        "defaults": {
            "score_threshold": decimal(m.defaults.score_threshold),
            "iou_threshold": decimal(m.defaults.iou_threshold),
            "max_detections": m.defaults.max_detections,
        },
        "limits": {
            "max_image_pixels": limits.max_pixels,
            "max_decode_bytes": limits.max_alloc_bytes,
            "max_detections": crate::core::options::MAX_DETECTIONS_LIMIT,
        },
        "formats": SUPPORTED_FORMATS,
        "provenance": m.provenance,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::http::header::HeaderMap;
    use aws_lambda_events::http::Method;

    fn req(path: &str, stage: Option<&str>) -> Request {
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

    #[test]
    fn routes_ignore_stage_and_base_path() {
        for (path, stage, want) in [
            ("/detect", None, Some(Route::Detect)),
            ("/prod/detect", Some("prod"), Some(Route::Detect)),
            ("/vision/v1/detect/", None, Some(Route::Detect)),
            ("/", None, Some(Route::Detect)),
            ("", None, Some(Route::Detect)),
            ("/prod", Some("prod"), Some(Route::Detect)),
            ("/model", None, Some(Route::Model)),
            ("/api/health", None, Some(Route::Health)),
            ("/detects", None, None),
            ("/prod", None, None),
            ("/favicon.ico", None, None),
            ("/demo", None, Some(Route::Demo)),
        ] {
            assert_eq!(route(&req(path, stage)), want, "{path} {stage:?}");
        }
        // A browser's GET on the root gets the page; on /detect, still /detect (and its 405).
        let get = |path: &str, stage: Option<&str>| {
            let mut r = req(path, stage);
            r.method = Method::GET;
            route(&r)
        };
        assert_eq!(get("/", None), Some(Route::Demo));
        assert_eq!(get("/prod", Some("prod")), Some(Route::Demo));
        assert_eq!(get("/prod/", Some("prod")), Some(Route::Demo));
        assert_eq!(get("/detect", None), Some(Route::Detect));
    }
}
