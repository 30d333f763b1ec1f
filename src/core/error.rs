//! The one error type of the detection core. Each variant has a stable [`ErrorCode`]; the code's HTTP
//! status lives in that table, and only the Lambda adapter uses it.

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
    #[error("invalid model: {0}")]
    InvalidModel(String),

    /// The configured inference backend cannot run in this build or process (start-up only).
    #[error("backend unavailable: {0}")]
    Backend(String),

    /// An environment variable with a value it cannot take (start-up only).
    #[error("{variable}: {detail}")]
    Setting {
        variable: &'static str,
        detail: String,
    },

    /// The model failed while running a plan that loaded and validated: a bug, not bad input.
    #[error("inference failed: {0}")]
    Inference(String),

    /// Any other fault of the service (a resize or tensor build that cannot fail on a valid image).
    #[error("internal error: {0}")]
    Internal(String),
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
            Error::InvalidModel(_) => ErrorCode::InvalidModel,
            Error::Backend(_) => ErrorCode::BackendUnavailable,
            Error::Setting { .. } => ErrorCode::InvalidSetting,
            Error::Inference(_) => ErrorCode::InferenceFailed,
            Error::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// True when the caller's input caused the error (a 4xx), false for faults of the service itself.
    pub fn is_client_error(&self) -> bool {
        self.code().is_client_error()
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
/// [`Failure::new`], which caps it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    fn from(e: &Error) -> Failure {
        Failure::new(e.code(), e.to_string())
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
