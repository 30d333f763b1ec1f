//! Shared by the integration tests: the detectors (built once per test binary) and file helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use object_detector::detector::embedded;
use object_detector::{Detector, Manifest};

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> Vec<u8> {
    let p: PathBuf = root().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The embedded (int8) model, as the Lambda and the CLI run it.
pub fn int8() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| Detector::embedded().expect("embedded model loads"))
}

/// The fp32 export with the embedded manifest: what the reference outputs were made with.
pub fn fp32() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| {
        let manifest = Manifest::from_toml(embedded::MANIFEST).unwrap();
        Detector::new(&read("model/nanodet-g-416.fp32.onnx"), manifest).expect("fp32 model loads")
    })
}
