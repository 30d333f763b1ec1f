//! The detection core: image bytes and options in, detections (or a typed error) out. Nothing in this
//! folder knows about AWS: the adapters in `src/aws/` and the binaries call it, never the reverse.
//! `coco` scores detections against COCO-format ground truth (`detect eval`).

pub mod annotate;
pub mod coco;
pub mod detector;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod error_code;
pub mod export;
pub mod heads;
pub mod image_decode;
pub mod manifest;
pub mod memory;
pub mod nms;
pub mod options;
pub mod preprocess;
pub mod response;
pub mod threads;
