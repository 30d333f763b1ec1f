//! The model compiled into the binary (see build.rs): its manifest text and ONNX bytes.

include!(concat!(env!("OUT_DIR"), "/embedded_model.rs"));
