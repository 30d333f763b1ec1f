//! Embeds the model named by `DETECTOR_MODEL_MANIFEST` (default `model/picodet-s-416-coco.toml`): the
//! manifest's `file` key names the ONNX beside it. Swapping the embedded model is this one variable.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DETECTOR_MODEL_MANIFEST");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let manifest = std::env::var_os("DETECTOR_MODEL_MANIFEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("model/picodet-s-416-coco.toml"));
    let manifest = if manifest.is_absolute() {
        manifest
    } else {
        root.join(manifest)
    };
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("DETECTOR_MODEL_MANIFEST {}: {e}", manifest.display()));
    let table: toml::Table = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not valid TOML: {e}", manifest.display()));
    let file = table
        .get("file")
        .and_then(|f| f.as_str())
        .unwrap_or_else(|| {
            panic!(
                "{}: an embedded manifest needs `file = \"model.onnx\"`",
                manifest.display()
            )
        });
    let model = manifest.parent().unwrap_or(Path::new(".")).join(file);
    assert!(
        model.is_file(),
        "{}: model file {} not found",
        manifest.display(),
        model.display()
    );
    println!("cargo:rerun-if-changed={}", manifest.display());
    println!("cargo:rerun-if-changed={}", model.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded_model.rs");
    std::fs::write(
        out,
        format!(
            "/// The embedded manifest (TOML).\npub const MANIFEST: &str = include_str!({:?});\n\
             /// The embedded ONNX model.\npub const MODEL: &[u8] = include_bytes!({:?});\n",
            manifest.display().to_string(),
            model.display().to_string()
        ),
    )
    .unwrap();
}
