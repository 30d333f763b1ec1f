//! What an HTTP request gets back before it is put in its event's shape (status, body, headers), and how
//! a detection becomes one: the JSON response, the JSON response with the picture as base64
//! `annotated_image`, or the annotated picture itself, chosen by the `format` option or, without one, by
//! an `Accept` header that names an image type explicitly.

use base64::Engine as _;
use serde::Serialize;

use crate::core::error::Failure;
use crate::core::options::Format;
use crate::core::response::Encoding;
use crate::core::response::Response;

/// Lambda's synchronous response limit (6 MB), less room for the rest of the response (status,
/// headers, the JSON beside a base64 picture), and base64's 4/3: the largest picture an answer carries.
pub const PICTURE_BUDGET: usize = (6 * 1024 * 1024 - 256 * 1024) / 4 * 3;

/// Labels named in `X-Detection-Labels`, at most; the full list is the JSON's.
const HEADER_LABELS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    Empty,
    Json(String),
    /// Text of another media type: the demo page.
    Text {
        text: String,
        content_type: &'static str,
    },
    /// Bytes of a media type: an annotated picture, a binary tensor answer.
    Binary {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
}

/// One outcome of an HTTP-shaped request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Body,
    pub allow: Option<&'static str>,
    /// Headers of this answer beside the content type, CORS and `Allow`.
    pub headers: Vec<(&'static str, String)>,
    /// The error answered, for the log line.
    pub error: Option<Failure>,
}

impl Reply {
    pub fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            body: Body::Json(body),
            allow: None,
            headers: Vec::new(),
            error: None,
        }
    }

    /// `204 No Content` (CORS preflight).
    pub fn no_content(allow: &'static str) -> Reply {
        Reply {
            status: 204,
            body: Body::Empty,
            allow: Some(allow),
            headers: Vec::new(),
            error: None,
        }
    }
}

/// An error's answer: its status and `{"error": {"code", "message"}}`.
impl From<Failure> for Reply {
    fn from(e: Failure) -> Reply {
        let body = serde_json::json!({ "error": e });
        let mut reply = Reply::json(e.status(), body.to_string());
        reply.error = Some(e);
        reply
    }
}

/// A failure as one string, `{"error": "<code>: <message>"}`, with the code's status: the error shape
/// TF Serving's REST API and the Open Inference Protocol share.
pub fn one_string_error(failure: Failure) -> Reply {
    let body = serde_json::json!({ "error": failure.to_string() });
    let mut reply = Reply::json(failure.status(), body.to_string());
    reply.error = Some(failure);
    reply
}

/// The picture format an `Accept` header names explicitly (`image/jpeg` or `image/png`, first listed
/// wins, `q=0` refuses); never for `*/*` or `image/*`, which curl and browsers send by default.
pub fn format_from_accept(accept: Option<&str>) -> Option<Format> {
    accept?.split(',').find_map(|item| {
        let mut parts = item.split(';');
        let media = parts.next()?.trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        match media.as_str() {
            _ if refused => None,
            "image/jpeg" | "image/jpg" => Some(Format::Picture(Encoding::Jpeg)),
            "image/png" => Some(Format::Picture(Encoding::Png)),
            _ => None,
        }
    })
}

/// The JSON response: the detections, and the picture as base64 `annotated_image` when there is one.
pub fn json_body(response: &Response) -> Result<String, Failure> {
    #[derive(Serialize)]
    struct WithPicture<'a> {
        #[serde(flatten)]
        response: &'a Response,
        annotated_image: String,
    }
    let text = match &response.annotated {
        None => serde_json::to_string(response),
        Some(picture) => serde_json::to_string(&WithPicture {
            response,
            annotated_image: base64::engine::general_purpose::STANDARD.encode(&picture.bytes),
        }),
    };
    text.map_err(|e| Failure::internal(e.to_string()))
}

/// The answer to a detection, in `format`.
pub fn detection(mut response: Response, format: Format) -> Result<Reply, Failure> {
    if format == Format::Json {
        return Ok(Reply::json(200, json_body(&response)?));
    }
    let Some(picture) = response.annotated.take() else {
        return Err(Failure::internal("the picture asked for was not drawn"));
    };
    let mut labels: Vec<&str> = Vec::new();
    for d in &response.detections {
        if labels.len() < HEADER_LABELS && !labels.contains(&d.label.as_str()) {
            labels.push(&d.label);
        }
    }
    let model = &response.model;
    Ok(Reply {
        status: 200,
        body: Body::Binary {
            content_type: picture.encoding.content_type(),
            bytes: picture.bytes,
        },
        allow: None,
        headers: vec![
            ("x-detection-count", response.detections.len().to_string()),
            ("x-detection-labels", labels.join(",")),
            ("x-model", format!("{} {}", model.name, model.version)),
        ],
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_names_a_picture_only_explicitly() {
        for (accept, want) in [
            (None, None),
            (Some("*/*"), None),
            (Some("image/*"), None),
            (Some("application/json"), None),
            (Some("image/jpeg"), Some(Format::Picture(Encoding::Jpeg))),
            (Some("IMAGE/PNG"), Some(Format::Picture(Encoding::Png))),
            (
                Some("text/html, image/png;q=0.9, */*;q=0.8"),
                Some(Format::Picture(Encoding::Png)),
            ),
            (
                Some("image/png;q=0, image/jpeg"),
                Some(Format::Picture(Encoding::Jpeg)),
            ),
            (Some("image/webp, image/avif, image/*"), None),
        ] {
            assert_eq!(format_from_accept(accept), want, "{accept:?}");
        }
    }
}
