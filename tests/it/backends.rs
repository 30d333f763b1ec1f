//! The other ways to run the model against the default (tract, one thread): Winograd convolutions
//! (`DETECTOR_WINOGRAD=on`), ONNX Runtime (feature `onnxruntime`; the
//! library named by ORT_DYLIB_PATH, which tools/test.sh points at the onnxruntime wheel) and tract on
//! two threads (feature `multithread`). Each must find what the default finds.
//!
//!     ORT_DYLIB_PATH=.venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0 \
//!       cargo test --all-features --test it backends

use crate::common;

use object_detector::core::embedded;
use object_detector::core::engine::RunConfig;
use object_detector::core::image_decode::decode;
use object_detector::{DecodeLimits, DetectOptions, Detector, Manifest};

const PHOTOS: [&str; 7] = [
    "astronaut.png",
    "camera.png",
    "chelsea.jpg",
    "chelsea.png",
    "coffee.jpg",
    "coffee.png",
    "rocket.png",
];

fn embedded_with(config: RunConfig) -> Detector {
    Detector::with_config(
        config.clone(),
        embedded::MODEL,
        Manifest::from_toml(embedded::MANIFEST).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{config:?}: {e}"))
}

/// Raw outputs within `raw_tol` of the default's on every photo, and the same detections: labels and
/// order, scores within 1e-3, boxes within 0.5 px (a low threshold, so there are many to compare).
fn assert_same_as_default(variant: &Detector, raw_tol: f32) {
    let default = common::int8();
    let options = DetectOptions {
        score_threshold: Some(0.2),
        ..Default::default()
    };
    let mut compared = 0;
    for photo in PHOTOS {
        let bytes = common::read(&format!("tests/images/{photo}"));
        let rgb = decode(&bytes, &DecodeLimits::default()).unwrap().rgb;
        let (input, _) = default.preprocess(&rgb).unwrap();
        let a = default.infer(input.clone()).unwrap();
        let b = variant.infer(input).unwrap();
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let diff = common::largest_difference(x, y, &format!("{photo}: output {i}"));
            assert!(diff <= raw_tol, "{photo}: output {i} differs by {diff}");
        }

        let want = default.detect(&bytes, &options).unwrap().detections;
        let got = variant.detect(&bytes, &options).unwrap().detections;
        assert_eq!(got.len(), want.len(), "{photo}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            let gb = [g.bbox.x_min, g.bbox.y_min, g.bbox.x_max, g.bbox.y_max];
            let wb = [w.bbox.x_min, w.bbox.y_min, w.bbox.x_max, w.bbox.y_max];
            assert_eq!(g.label, w.label, "{photo}");
            assert!((g.score - w.score).abs() < 1e-3, "{photo}: {g:?} vs {w:?}");
            assert!(
                gb.iter().zip(wb).all(|(a, b)| (a - b).abs() < 0.5),
                "{photo}: {g:?} vs {w:?}"
            );
        }
        compared += want.len();
    }
    assert!(compared >= 10, "only {compared} detections compared");
}

#[cfg(feature = "onnxruntime")]
mod onnxruntime {
    use super::*;
    use object_detector::core::engine::Backend;

    fn config(threads: usize) -> RunConfig {
        let library = std::env::var_os("ORT_DYLIB_PATH");
        assert!(
            library.is_some(),
            "set ORT_DYLIB_PATH to the onnxruntime library (tools/test.sh uses the wheel's)"
        );
        RunConfig {
            backend: Backend::OnnxRuntime,
            threads,
            onnxruntime_library: library.map(Into::into),
            ..RunConfig::default()
        }
    }

    #[test]
    fn embedded_model_finds_what_tract_finds() {
        let detector = embedded_with(config(1));
        assert_eq!(detector.run_config().backend, Backend::OnnxRuntime);
        // Same float weights (the int8 fold runs before both), different kernels.
        assert_same_as_default(&detector, 1e-3);
    }

    #[test]
    fn two_threads_find_the_same() {
        assert_same_as_default(&embedded_with(config(2)), 1e-3);
    }

    /// Every decoder family, including data-dependent row counts and int64 classes from an in-graph
    /// NMS, which ONNX Runtime reports with symbolic dimensions.
    #[test]
    fn every_decoder_family_matches_the_numpy_reference() {
        for name in common::FAMILIES {
            let dir = "tests/models";
            let manifest = Manifest::from_toml(
                &String::from_utf8(common::read(&format!("{dir}/{name}.toml"))).unwrap(),
            )
            .unwrap();
            let onnx = common::read(&format!("{dir}/{name}.onnx"));
            let detector = Detector::with_config(config(1), &onnx, manifest)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            common::assert_matches_decoder_reference(name, &detector);
        }
    }

    #[test]
    fn a_manifest_that_does_not_fit_fails_at_load_as_with_tract() {
        // One label more than the model's classes: the output shape, from ONNX Runtime's metadata,
        // is named with the shape the manifest needs.
        let text = String::from_utf8(common::read("tests/models/yolox.toml")).unwrap();
        let manifest = Manifest::from_toml(&text.replace(r#""d"]"#, r#""d", "e"]"#)).unwrap();
        let onnx = common::read("tests/models/yolox.onnx");
        let e = Detector::with_config(config(1), &onnx, manifest).unwrap_err();
        assert_eq!(e.code(), "invalid_model", "{e}");
        let e = e.to_string();
        assert!(e.contains("[1, 84, 9]") && e.contains("[1, 84, 10]"), "{e}");
    }

    #[test]
    fn an_input_size_the_model_does_not_take_fails_at_load() {
        let text = String::from_utf8(common::read("tests/models/yolox.toml")).unwrap();
        let manifest = Manifest::from_toml(&text.replace("width = 64", "width = 96")).unwrap();
        let onnx = common::read("tests/models/yolox.onnx");
        let e = Detector::with_config(config(1), &onnx, manifest).unwrap_err();
        assert_eq!(e.code(), "invalid_model", "{e}");
        assert!(e.to_string().contains("[1, 3, 64, 96]"), "{e}");
    }

    #[test]
    fn garbage_is_an_invalid_model_not_a_crash() {
        let manifest = Manifest::from_toml(embedded::MANIFEST).unwrap();
        let e = Detector::with_config(config(1), b"not onnx at all", manifest).unwrap_err();
        assert_eq!(e.code(), "invalid_model", "{e}");
    }
}

#[test]
fn a_model_that_does_not_load_keeps_what_caused_it() {
    use object_detector::core::error::Failure;
    use std::error::Error as _;
    // A missing file: the I/O error itself is the source.
    let e = Detector::from_files(
        std::path::Path::new("tests/models/nope.onnx"),
        std::path::Path::new("tests/models/yolox.toml"),
    )
    .unwrap_err();
    let io = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("no I/O error behind {e:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    // Bytes tract cannot read: tract's error is kept, and reported after ours.
    let manifest = Manifest::from_toml(embedded::MANIFEST).unwrap();
    let e = Detector::new(b"not onnx at all", manifest).unwrap_err();
    let cause = e.source().expect("tract's error");
    let reported = Failure::from(&e);
    assert_eq!(
        reported.message(),
        format!("{e}: {}", object_detector::core::error::chain(cause))
    );
}

#[test]
fn tract_with_winograd_convolutions_finds_what_its_own_find() {
    let detector = embedded_with(RunConfig {
        winograd: true,
        ..RunConfig::default()
    });
    assert!(detector.run_config().winograd);
    assert_same_as_default(&detector, 1e-4);
}

#[cfg(feature = "multithread")]
#[test]
fn tract_on_two_threads_finds_what_one_thread_finds() {
    let detector = embedded_with(RunConfig {
        threads: 2,
        ..RunConfig::default()
    });
    assert_eq!(detector.run_config().threads, 2);
    assert_same_as_default(&detector, 1e-4);
}
