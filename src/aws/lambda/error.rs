//! The adapter's errors: the core's [`Failure`] (a stable code, with its HTTP status from the one table
//! in `src/core/error_code.rs`, and a capped message), the ones only the adapter raises (no route, a
//! method a route does not take, an event of no known shape), and a failure as a Lambda function error.

use serde_json::Value;

use crate::core::error::quote;
use crate::core::error_code::ErrorCode;

pub use crate::core::error::Failure;

/// No route for the path.
pub fn not_found(path: &str) -> Failure {
    Failure::new(
        ErrorCode::NotFound,
        format!(
            "no route for {}; routes: POST /detect, GET /model, GET /health",
            quote(path)
        ),
    )
}

/// A route's method it does not take.
pub fn method_not_allowed(method: &str, allow: &str) -> Failure {
    Failure::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed here; allowed: {allow}", quote(method)),
    )
}

/// An event of no shape the function knows.
pub fn invalid_event(event: &Value) -> Failure {
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
    Failure::new(
            ErrorCode::InvalidEvent,
            format!(
                "unrecognised event: expected an API Gateway REST (v1) or HTTP API (v1/v2) proxy event, a Lambda \
                 function URL event, an ALB target-group event, a direct invocation {{\"image\": \"<base64>\", \
                 ...options}}, a Rekognition DetectLabels request {{\"Image\": {{...}}}}, or an event naming S3 objects (S3, SQS, EventBridge, {{\"bucket\", \"keys\"}}); got {seen}"
            ),
        )
}

/// Direct invocations fail as Lambda function errors: `errorType` is the stable code, so Step Functions
/// can `Catch` on it.
impl From<Failure> for lambda_runtime::Diagnostic {
    fn from(e: Failure) -> lambda_runtime::Diagnostic {
        function_error(e, None)
    }
}

/// The function error a direct invocation fails with: `errorType` is `error_type` when given (a
/// protocol's name for the failure, such as Rekognition's exceptions), else the stable code.
pub fn function_error(e: Failure, error_type: Option<&str>) -> lambda_runtime::Diagnostic {
    lambda_runtime::Diagnostic {
        error_type: error_type.unwrap_or(e.code().as_str()).to_string(),
        error_message: e.into_message(),
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
            (E::inference("x"), 500),
            (E::invalid_model("x"), 500),
            (E::backend("x"), 500),
            (
                E::Setting {
                    variable: "MAX_IMAGE_PIXELS",
                    detail: "x".into(),
                },
                500,
            ),
            (E::internal("x"), 500),
        ];
        for (e, status) in cases {
            assert_eq!(Failure::from(&e).status(), status, "{e}");
            assert_eq!(e.is_client_error(), status < 500, "{e}");
        }
    }
}
