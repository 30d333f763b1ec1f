//! The adapter's error: a stable code (with its HTTP status, from the one table in
//! `src/core/error_code.rs`) and a message for people.

use serde_json::{json, Value};

use crate::core::error::{bounded, quote};
use crate::core::error_code::ErrorCode;

/// The longest message an error answer carries, in characters: a backstop behind the quoting rules.
pub const MAX_MESSAGE: usize = 1024;

/// An error answered to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// An error whose message is cut to [`MAX_MESSAGE`] characters, whatever went into it.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError {
            code,
            message: match message.chars().nth(MAX_MESSAGE) {
                None => message,
                Some(_) => bounded(&message, MAX_MESSAGE),
            },
        }
    }

    pub fn status(&self) -> u16 {
        self.code.http_status()
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InternalError, message)
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            ErrorCode::NotFound,
            format!(
                "no route for {}; routes: POST /detect, GET /model, GET /health",
                quote(path)
            ),
        )
    }

    pub fn method_not_allowed(method: &str, allow: &str) -> ApiError {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{} is not allowed here; allowed: {allow}", quote(method)),
        )
    }

    pub fn invalid_event(event: &Value) -> ApiError {
        let seen = match event {
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().take(12).map(|k| quote(k)).collect();
                format!("an object with keys [{}]", keys.join(", "))
            }
            Value::Null => "null".to_string(),
            Value::Array(_) => "an array".to_string(),
            Value::String(_) => "a string".to_string(),
            other => format!("{other}"),
        };
        ApiError::new(
            ErrorCode::InvalidEvent,
            format!(
                "unrecognised event: expected an API Gateway REST (v1) or HTTP API (v1/v2) proxy event, a Lambda \
                 function URL event, an ALB target-group event, a direct invocation {{\"image\": \"<base64>\", \
                 ...options}}, or an event naming S3 objects (S3, SQS, EventBridge, {{\"bucket\", \"keys\"}}); got {seen}"
            ),
        )
    }

    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
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
            error_type: e.code.as_str().to_string(),
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
            (E::ImageTooComplex { detail: "x".into() }, 422),
            (
                E::UnsupportedVariant {
                    format: "JPEG",
                    variant: "12-bit".into(),
                    supported: "8-bit JPEG",
                },
                415,
            ),
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
            (
                E::Setting {
                    variable: "MAX_IMAGE_PIXELS",
                    detail: "x".into(),
                },
                500,
            ),
            (E::Internal("x".into()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(&e).status(), status, "{e}");
            assert_eq!(e.is_client_error(), status < 500, "{e}");
        }
    }
}
