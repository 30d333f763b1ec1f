//! Per-stage benchmarks of the detection core on the embedded model: decode, preprocess, inference,
//! postprocess, and the whole `detect`, on the photos benches/compare.py uses: a 550x367 JPEG, a 640x480
//! PNG and a 4000x2500 JPEG upscaled from a real photo. At the end it prints the median `timings_ms` the
//! response reports for the same photos, so the two can be compared in one run. `annotate` is drawing and
//! encoding the annotated JPEG (1280 px, quality 85) from a decode at the picture's size;
//! `detect_annotated` the whole `detect` with `format=jpeg`, to set against `detect`.
//!
//!     cargo bench --bench stages

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use object_detector::core::annotate;
use object_detector::core::image_decode::{decode, decode_at_least};
use object_detector::core::options::Format;
use object_detector::core::response::Encoding;
use object_detector::{DecodeLimits, DetectOptions, Detector};

struct Photo {
    name: &'static str,
    bytes: Vec<u8>,
}

/// The photos benches/compare.py uses, made the same way from the committed skimage photos.
fn photos() -> Vec<Photo> {
    let load = |rel: &str| {
        let bytes = std::fs::read(format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        decode(&bytes, &DecodeLimits::default()).unwrap().rgb
    };
    let jpeg = |img: &image::RgbImage, quality| {
        let mut out = Vec::new();
        img.write_with_encoder(JpegEncoder::new_with_quality(
            Cursor::new(&mut out),
            quality,
        ))
        .unwrap();
        out
    };
    let (coffee, chelsea) = (
        load("tests/images/coffee.png"),
        load("tests/images/chelsea.png"),
    );
    let small = image::imageops::resize(&coffee, 550, 367, FilterType::Lanczos3);
    let medium = image::imageops::resize(&coffee, 720, 480, FilterType::Lanczos3);
    let medium = image::imageops::crop_imm(&medium, 40, 0, 640, 480).to_image();
    let mut png = Vec::new();
    medium
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let large = image::imageops::resize(&chelsea, 4000, 2660, FilterType::CatmullRom);
    let large = image::imageops::crop_imm(&large, 0, 80, 4000, 2500).to_image();
    vec![
        Photo {
            name: "jpeg_550x367",
            bytes: jpeg(&small, 90),
        },
        Photo {
            name: "png_640x480",
            bytes: png,
        },
        Photo {
            name: "jpeg_4000x2500",
            bytes: jpeg(&large, 92),
        },
    ]
}

fn stages(c: &mut Criterion) {
    let detector = Detector::embedded().unwrap();
    let limits = DecodeLimits::default();
    let options = DetectOptions::default();
    let annotated = DetectOptions {
        format: Some(Format::Picture(Encoding::Jpeg)),
        ..DetectOptions::default()
    };
    let photos = photos();
    for photo in &photos {
        let mut group = c.benchmark_group(photo.name);
        group.sample_size(20);
        // As `detect` decodes: large JPEGs at the smallest DCT scale the letterbox allows.
        let needed = |w, h| {
            let g = detector.preprocessor().geometry((w, h));
            (g.resized_width, g.resized_height)
        };
        group.bench_function("decode", |b| {
            b.iter(|| decode_at_least(black_box(&photo.bytes), &limits, needed).unwrap())
        });
        let decoded = decode_at_least(&photo.bytes, &limits, needed).unwrap();
        let image_size = (decoded.width, decoded.height);
        group.bench_function("preprocess", |b| {
            b.iter(|| {
                detector
                    .preprocessor()
                    .run_scaled(black_box(&decoded.rgb), image_size)
                    .unwrap()
            })
        });
        let (input, geometry) = detector
            .preprocessor()
            .run_scaled(&decoded.rgb, image_size)
            .unwrap();
        group.bench_function("inference", |b| {
            b.iter_batched(
                || input.clone(),
                |input| detector.infer(input).unwrap(),
                BatchSize::LargeInput,
            )
        });
        let outputs = detector.infer(input.clone()).unwrap();
        group.bench_function("postprocess", |b| {
            b.iter(|| {
                detector
                    .decode_outputs(black_box(&outputs), &geometry, &options)
                    .unwrap()
            })
        });
        group.bench_function("detect", |b| {
            b.iter(|| detector.detect(black_box(&photo.bytes), &options).unwrap())
        });
        // The annotated picture: decoded at the size it needs, drawn and encoded as `detect` does.
        let spec = annotated
            .resolve(detector.manifest())
            .unwrap()
            .annotation
            .unwrap();
        let needed_with_picture = |w, h| {
            let (mw, mh) = needed(w, h);
            let (cw, ch) = annotate::canvas_size((w, h), spec.max_side);
            (mw.max(cw), mh.max(ch))
        };
        let for_picture = decode_at_least(&photo.bytes, &limits, needed_with_picture).unwrap();
        let detections = detector.detect(&photo.bytes, &options).unwrap().detections;
        group.bench_function("annotate", |b| {
            b.iter_batched(
                || for_picture.rgb.clone(),
                |rgb| annotate::render(rgb, image_size, &detections, &spec).unwrap(),
                BatchSize::LargeInput,
            )
        });
        group.bench_function("detect_annotated", |b| {
            b.iter(|| {
                detector
                    .detect(black_box(&photo.bytes), &annotated)
                    .unwrap()
            })
        });
        group.finish();
    }
    // What the response reports, for the same photos: medians over 30 calls.
    println!("\ntimings_ms reported by detect (median of 30):");
    println!(
        "{:<16} {:>8} {:>11} {:>10} {:>12} {:>8}",
        "photo", "decode", "preprocess", "inference", "postprocess", "total"
    );
    for photo in &photos {
        let runs: Vec<_> = (0..30)
            .map(|_| detector.detect(&photo.bytes, &options).unwrap().timings_ms)
            .collect();
        let median = |f: fn(&object_detector::core::response::Timings) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let t = [
            median(|t| t.decode),
            median(|t| t.preprocess),
            median(|t| t.inference),
            median(|t| t.postprocess),
            median(|t| t.total),
        ];
        println!(
            "{:<16} {:>8.2} {:>11.2} {:>10.2} {:>12.2} {:>8.2}",
            photo.name, t[0], t[1], t[2], t[3], t[4]
        );
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
