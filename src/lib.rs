//! Object detection on images with an ONNX detector run by tract: the core shared by the Lambda
//! function, the `detect` CLI and the benchmarks.
//!
//! - [`core`]: decoding, the model, its heads, the response. Nothing in it knows about AWS.
//! - [`aws`]: the Lambda adapter, the S3 client, the batch path and the CloudWatch metrics, over the core.
//! - [`settings`]: the environment, read once at the top; it builds the parts of both.
//!
//! ```no_run
//! let detector = object_detector::Detector::embedded()?;
//! let bytes = std::fs::read("photo.jpg").unwrap();
//! let response = detector.detect(&bytes, &Default::default())?;
//! println!("{}", serde_json::to_string(&response).unwrap());
//! # Ok::<(), object_detector::Error>(())
//! ```

pub mod aws;
pub mod core;
pub mod settings;

pub use crate::core::detector::Detector;
pub use crate::core::error::{Error, Result};
pub use crate::core::error_code::ErrorCode;
pub use crate::core::image_decode::DecodeLimits;
pub use crate::core::manifest::Manifest;
pub use crate::core::options::DetectOptions;
pub use crate::core::response::Response;
pub use crate::settings::Settings;
