//! Object detection on images with an ONNX detector run by tract: the core shared by the Lambda
//! function, the `detect` CLI and the benchmarks. Nothing here knows about AWS.
//!
//! ```no_run
//! let detector = object_detector::Detector::embedded()?;
//! let bytes = std::fs::read("photo.jpg").unwrap();
//! let response = detector.detect(&bytes, &Default::default())?;
//! println!("{}", serde_json::to_string(&response).unwrap());
//! # Ok::<(), object_detector::Error>(())
//! ```

pub mod annotate;
pub mod batch;
pub mod detector;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod error_code;
pub mod heads;
pub mod image_decode;
pub mod lambda;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod nms;
pub mod options;
pub mod preprocess;
pub mod response;
pub mod s3;
pub mod settings;

pub use detector::Detector;
pub use error::{Error, Result};
pub use error_code::ErrorCode;
pub use image_decode::DecodeLimits;
pub use manifest::Manifest;
pub use options::DetectOptions;
pub use response::Response;
pub use settings::Settings;
