//! Adapter errors and the one mapping from error codes to HTTP statuses.

use serde_json::{json, Value};

use super::Reply;

/// An error answered to the caller: HTTP status, stable code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The HTTP status of every error code. Codes not listed here are bugs and answer 500.
pub fn status_of(code: &str) -> u16 {
    match code {
        "empty_body" | "empty_image" | "invalid_base64" | "invalid_json" | "invalid_multipart"
        | "missing_image" | "invalid_parameter" | "invalid_event" => 400,
        "not_found" => 404,
        "method_not_allowed" => 405,
        "image_too_large" => 413,
        "unsupported_media_type" | "unsupported_format" => 415,
        "not_an_image" | "invalid_image" => 422,
        _ => 500,
    }
}

/// Media types accepted by `POST /detect`, for 415 messages and the README.
pub const ACCEPTED_MEDIA_TYPES: &str = "image/jpeg, image/png, image/webp, image/gif, image/bmp, \
     application/octet-stream, application/json, multipart/form-data";

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: status_of(code),
            code,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new("internal_error", message)
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            "not_found",
            format!("no route for {path:?}; routes: POST /detect, GET /model, GET /health"),
        )
    }

    pub fn method_not_allowed(method: &str, allow: &str) -> ApiError {
        ApiError::new(
            "method_not_allowed",
            format!("{method} is not allowed here; allowed: {allow}"),
        )
    }

    pub fn invalid_event(event: &Value) -> ApiError {
        let seen = match event {
            Value::Object(m) => {
                let keys: Vec<&str> = m.keys().map(String::as_str).take(12).collect();
                format!("an object with keys {keys:?}")
            }
            Value::Null => "null".to_string(),
            Value::Array(_) => "an array".to_string(),
            Value::String(_) => "a string".to_string(),
            other => format!("{other}"),
        };
        ApiError::new(
            "invalid_event",
            format!(
                "unrecognised event: expected an API Gateway REST (v1) or HTTP API (v1/v2) proxy event, a Lambda \
                 function URL event, an ALB target-group event, or a direct invocation {{\"image\": \"<base64>\", \
                 ...options}}; got {seen}"
            ),
        )
    }

    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }

    pub(crate) fn into_reply(self) -> Reply {
        Reply {
            status: self.status,
            body: self.body().to_string(),
            allow: None,
            error: Some((self.code, self.message)),
        }
    }
}

impl From<&crate::Error> for ApiError {
    fn from(e: &crate::Error) -> ApiError {
        ApiError::new(e.code(), e.to_string())
    }
}

/// Direct invocations fail as Lambda function errors: `errorType` is the stable code, so Step Functions
/// can `Catch` on it.
impl From<ApiError> for lambda_runtime::Diagnostic {
    fn from(e: ApiError) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: e.code.to_string(),
            error_message: e.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_code_has_a_4xx_or_a_deliberate_500() {
        use crate::Error as E;
        let cases = [
            (E::EmptyImage, 400),
            (E::NotAnImage, 422),
            (
                E::UnsupportedFormat {
                    format: "TIFF".into(),
                },
                415,
            ),
            (
                E::InvalidImage {
                    format: "PNG",
                    detail: "x".into(),
                },
                422,
            ),
            (E::ImageTooLarge { detail: "x".into() }, 413),
            (
                E::InvalidParameter {
                    name: "a".into(),
                    detail: "b".into(),
                },
                400,
            ),
            (E::Inference("x".into()), 500),
            (E::InvalidModel("x".into()), 500),
            (E::Backend("x".into()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(&e).status, status, "{e}");
            assert_eq!(e.is_client_error(), status < 500, "{e}");
        }
    }
}
