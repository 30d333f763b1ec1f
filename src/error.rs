//! The one error type of the detection core, with a stable machine code per failure.
//!
//! Codes are part of the public contract (clients branch on them), so a variant's code never changes once
//! released. The HTTP status for each code is decided by the Lambda adapter, not here.

use thiserror::Error;

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

    /// A supported format whose data is corrupt or cut short.
    #[error("the {format} image could not be decoded: {detail}")]
    InvalidImage {
        format: &'static str,
        detail: String,
    },

    /// Dimensions or decoded size over the configured limits, found from the header before decoding pixels.
    #[error("{detail}")]
    ImageTooLarge { detail: String },

    /// A request option outside its documented range.
    #[error("invalid parameter `{name}`: {detail}")]
    InvalidParameter { name: String, detail: String },

    /// The model or its manifest is unusable: raised at start-up only.
    #[error("invalid model: {0}")]
    InvalidModel(String),

    /// The configured inference backend cannot run in this build or process (start-up only).
    #[error("backend unavailable: {0}")]
    Backend(String),

    /// tract failed while running a plan that loaded and validated: a bug, not bad input.
    #[error("inference failed: {0}")]
    Inference(String),
}

impl Error {
    /// The stable, documented machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyImage => "empty_image",
            Error::NotAnImage => "not_an_image",
            Error::UnsupportedFormat { .. } => "unsupported_format",
            Error::InvalidImage { .. } => "invalid_image",
            Error::ImageTooLarge { .. } => "image_too_large",
            Error::InvalidParameter { .. } => "invalid_parameter",
            Error::InvalidModel(_) => "invalid_model",
            Error::Inference(_) => "inference_failed",
            Error::Backend(_) => "backend_unavailable",
        }
    }

    /// True when the caller's input caused the error (a 4xx), false for faults of the service itself.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Error::InvalidModel(_) | Error::Inference(_) | Error::Backend(_)
        )
    }

    pub(crate) fn parameter(name: &str, detail: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name: name.to_string(),
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
