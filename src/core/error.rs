//! The one error type of the detection core. Each variant has a stable [`ErrorCode`]; the code's HTTP
//! status lives in that table, and only the Lambda adapter uses it.

use serde::Serialize;
use thiserror::Error;

use crate::core::error_code::ErrorCode;

#[derive(Debug, Error)]
pub enum Error {
    /// Zero bytes where an image was expected.
    #[error("the image is empty (0 bytes)")]
    EmptyImage,

    /// The bytes carry no signature of any image format.
    #[error("the data is not an image: no known image signature in the first bytes")]
    NotAnImage,

    /// A recognised image format that this service does not decode.
    #[error("{format} images are not supported; send JPEG, PNG, WebP, GIF or BMP")]
    UnsupportedFormat { format: String },

    /// A supported format in a coding variant no decoder here reads (an arithmetic-coded or 12-bit
    /// JPEG), found from its headers.
    #[error("{variant} {format} images are not supported; this service decodes {supported}")]
    UnsupportedVariant {
        format: &'static str,
        variant: String,
        supported: &'static str,
    },

    /// A supported format whose data is corrupt or cut short.
    #[error("the {format} image could not be decoded: {detail}")]
    InvalidImage {
        format: &'static str,
        detail: String,
    },

    /// Dimensions or decoded size over the configured limits, found from the header before decoding pixels.
    #[error("{detail}")]
    ImageTooLarge { detail: String },

    /// A file whose structure asks for more decoding work than allowed (a JPEG with thousands of
    /// scans, a lossless WebP with tens of thousands of prefix-code groups), found before any of it is
    /// decoded.
    #[error("{detail}")]
    ImageTooComplex { detail: String },

    /// An annotated image that would not fit in a response; encoding stopped at the limit.
    #[error("{detail}")]
    ResponseTooLarge { detail: String },

    /// A request option outside its documented range.
    #[error("invalid parameter `{name}`: {detail}")]
    InvalidParameter { name: String, detail: String },

    /// The model or its manifest is unusable: raised at start-up only.
    #[error("invalid model: {what}")]
    InvalidModel {
        what: String,
        #[source]
        cause: Option<Cause>,
    },

    /// The configured inference backend cannot run in this build or process (start-up only).
    #[error("backend unavailable: {what}")]
    Backend {
        what: String,
        #[source]
        cause: Option<Cause>,
    },

    /// An environment variable with a value it cannot take (start-up only).
    #[error("{variable}: {detail}")]
    Setting {
        variable: &'static str,
        detail: String,
    },

    /// The model failed while running a plan that loaded and validated: a bug, not bad input.
    #[error("inference failed: {what}")]
    Inference {
        what: String,
        #[source]
        cause: Option<Cause>,
    },

    /// Any other fault of the service (a resize or tensor build that cannot fail on a valid image).
    #[error("internal error: {what}")]
    Internal {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
}

/// Another library's error behind one of ours (tract's, ONNX Runtime's, an I/O error, an encoder's),
/// kept as the error's [`std::error::Error::source`]; [`chain`] reports both.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `e` and every error behind it, joined by `: `: how an error is reported ([`Failure`] carries this).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

impl Error {
    /// The stable, documented machine code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::EmptyImage => ErrorCode::EmptyImage,
            Error::NotAnImage => ErrorCode::NotAnImage,
            Error::UnsupportedFormat { .. } => ErrorCode::UnsupportedFormat,
            Error::UnsupportedVariant { .. } => ErrorCode::UnsupportedFormat,
            Error::InvalidImage { .. } => ErrorCode::InvalidImage,
            Error::ImageTooComplex { .. } => ErrorCode::ImageTooComplex,
            Error::ImageTooLarge { .. } => ErrorCode::ImageTooLarge,
            Error::ResponseTooLarge { .. } => ErrorCode::ResponseTooLarge,
            Error::InvalidParameter { .. } => ErrorCode::InvalidParameter,
            Error::InvalidModel { .. } => ErrorCode::InvalidModel,
            Error::Backend { .. } => ErrorCode::BackendUnavailable,
            Error::Setting { .. } => ErrorCode::InvalidSetting,
            Error::Inference { .. } => ErrorCode::InferenceFailed,
            Error::Internal { .. } => ErrorCode::InternalError,
        }
    }

    /// True when the caller's input caused the error (a 4xx), false for faults of the service itself.
    pub fn is_client_error(&self) -> bool {
        self.code().is_client_error()
    }

    /// The model or its manifest is unusable.
    pub fn invalid_model(what: impl Into<String>) -> Error {
        Error::InvalidModel {
            what: what.into(),
            cause: None,
        }
    }

    /// The configured backend cannot run.
    pub fn backend(what: impl Into<String>) -> Error {
        Error::Backend {
            what: what.into(),
            cause: None,
        }
    }

    /// A plan that loaded failed while running.
    pub fn inference(what: impl Into<String>) -> Error {
        Error::Inference {
            what: what.into(),
            cause: None,
        }
    }

    /// Any other fault of the service.
    pub fn internal(what: impl Into<String>) -> Error {
        Error::Internal {
            what: what.into(),
            cause: None,
        }
    }

    /// The same error, caused by `cause`; for the variants that keep a cause (the model, backend,
    /// inference and internal ones), others are returned as they are.
    pub fn caused_by(mut self, cause: impl Into<Cause>) -> Error {
        if let Error::InvalidModel { cause: slot, .. }
        | Error::Backend { cause: slot, .. }
        | Error::Inference { cause: slot, .. }
        | Error::Internal { cause: slot, .. } = &mut self
        {
            *slot = Some(cause.into());
        }
        self
    }

    /// The same error with `prefix: ` before what it says (a file's path before what is wrong in
    /// it); for the variants that keep a cause, others are returned as they are.
    pub fn in_context(mut self, prefix: impl std::fmt::Display) -> Error {
        if let Error::InvalidModel { what, .. }
        | Error::Backend { what, .. }
        | Error::Inference { what, .. }
        | Error::Internal { what, .. } = &mut self
        {
            *what = format!("{prefix}: {what}");
        }
        self
    }

    pub(crate) fn parameter(name: &str, detail: impl Into<String>) -> Self {
        // The name may be the client's (an unknown option): escaped and cut like any quote.
        Error::InvalidParameter {
            name: bounded(&name.escape_debug().to_string(), QUOTE_CHARS),
            detail: detail.into(),
        }
    }
}

/// The most characters of client text an error message quotes.
pub const QUOTE_CHARS: usize = 64;

/// Client text as an error message quotes it: in double quotes with control characters escaped, at
/// most [`QUOTE_CHARS`] characters of it, `…` after the quote when it was cut.
pub fn quote(text: &str) -> String {
    let cut = match text.char_indices().nth(QUOTE_CHARS) {
        None => text,
        Some((end, _)) => &text[..end],
    };
    let ellipsis = if cut.len() < text.len() { "…" } else { "" };
    format!("{cut:?}{ellipsis}")
}

/// `text` cut to `max` characters, marked with `…` when cut.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The longest message a [`Failure`] carries, in characters: a backstop behind the quoting rules.
pub const MAX_MESSAGE: usize = 1024;

/// An error as every front door reports it: a stable code and a message for people, at most
/// [`MAX_MESSAGE`] characters. The API's `{"error": {"code", "message"}}`, a batch result's `error`, an
/// object's log line, a function error and the CLI's error line are each made of one. The fields are
/// read through [`Failure::code`] and [`Failure::message`]: a message changes only through
/// [`Failure::new`], which caps it. Serialized as `{"code": ..., "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    /// A failure whose message is cut to [`MAX_MESSAGE`] characters, whatever went into it.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        let message = message.into();
        Failure {
            code,
            message: match message.chars().nth(MAX_MESSAGE) {
                None => message,
                Some(_) => bounded(&message, MAX_MESSAGE),
            },
        }
    }

    /// A fault of the service itself (`internal_error`).
    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(ErrorCode::InternalError, message)
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The code's HTTP status, from the one table.
    pub fn status(&self) -> u16 {
        self.code.http_status()
    }

    pub fn into_message(self) -> String {
        self.message
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Failure {}

impl From<&Error> for Failure {
    /// The message is the error with its causes ([`chain`]).
    fn from(e: &Error) -> Failure {
        Failure::new(e.code(), chain(e))
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_names_of_client_text_are_short_and_escaped() {
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        let long = "é".repeat(10_000);
        let q = quote(&long);
        assert_eq!(q.chars().count(), QUOTE_CHARS + 3);
        assert!(q.ends_with("\"…"));
        let e = Error::parameter(&format!("x\n{}", "y".repeat(10_000)), "unknown option");
        let text = e.to_string();
        assert!(text.len() < 200, "{text}");
        assert!(text.starts_with("invalid parameter `x\\ny"), "{text}");
        assert_eq!(bounded("short", 16), "short");
        assert_eq!(bounded("abcdef", 3), "abc…");
    }

    #[test]
    fn a_failure_message_is_capped_however_it_is_made() {
        let long = "x".repeat(10_000);
        let made = Failure::new(ErrorCode::InvalidImage, long.clone());
        assert_eq!(
            made.message().chars().count(),
            MAX_MESSAGE + 1,
            "the cap and its `…`"
        );
        let converted = Failure::from(Error::InvalidImage {
            format: "PNG",
            detail: long,
        });
        assert_eq!(converted.message().chars().count(), MAX_MESSAGE + 1);
        assert_eq!(converted.code(), ErrorCode::InvalidImage);
        assert_eq!(converted.status(), 422);
        let short = Failure::new(ErrorCode::NotFound, "no route");
        assert_eq!(short.to_string(), "not_found: no route");
    }
}
