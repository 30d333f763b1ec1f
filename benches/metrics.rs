//! What the CloudWatch metrics add to a request: taking what they need from the response
//! (`DetectionStats::of`), writing the request's EMF record (and per-class ones), and the write of those lines
//! to a file (`/dev/null`, as the function writes them to its stdout pipe). Criterion times each; the
//! summary at the end sets the whole per-request cost against a warm `detect` of the same photo, both
//! measured in this run.
//!
//!     cargo bench --bench metrics

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use object_detector::aws::metrics::{
    DetectionStats, FunctionId, Metrics, MetricsConfig, Observation,
};
use object_detector::core::response::ModelRef;
use object_detector::{DetectOptions, Detector};

fn metrics(per_class: bool) -> Metrics {
    Metrics::new(
        MetricsConfig {
            per_class,
            ..MetricsConfig::default()
        },
        &ModelRef {
            name: "picodet-s-416-coco".into(),
            version: "paddledetection-2.3+int8w.1".into(),
            input_width: 416,
            input_height: 416,
        },
        80.0,
        Some(FunctionId {
            name: "object-detector-DetectorFunction-AbCdEf123456".into(),
            version: "12".into(),
        }),
    )
}

/// The per-request work, as `App::handle_recorded` and `App::handle` do it.
fn per_request(metrics: &Metrics, response: &object_detector::Response, out: &mut impl Write) {
    let observation = Observation {
        latency_ms: Some(78.0),
        cold_start: false,
        detected: Some(DetectionStats::of(response)),
        error: None,
        request_id: Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789".into()),
    };
    for record in metrics.records(&observation) {
        writeln!(out, "{record}").unwrap();
    }
    out.flush().unwrap();
}

fn bench(c: &mut Criterion) {
    let detector = Detector::embedded().unwrap();
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/images/coffee.png"
    ))
    .unwrap();
    let options = DetectOptions::default();
    let response = detector.detect(&photo, &options).unwrap();
    let mut null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let plain = metrics(false);
    let per_class = metrics(true);

    let mut group = c.benchmark_group("metrics");
    group.bench_function("detected_of", |b| {
        b.iter(|| DetectionStats::of(black_box(&response)))
    });
    let observation = Observation {
        latency_ms: Some(78.0),
        detected: Some(DetectionStats::of(&response)),
        request_id: Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789".into()),
        ..Observation::default()
    };
    group.bench_function("records", |b| {
        b.iter(|| plain.records(black_box(&observation)))
    });
    group.bench_function("records_per_class", |b| {
        b.iter(|| per_class.records(black_box(&observation)))
    });
    group.bench_function("per_request_written", |b| {
        b.iter(|| per_request(&plain, black_box(&response), &mut null))
    });
    group.finish();

    // One run, both sides: the whole per-request metrics work against a warm detect.
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e3
    };
    let detect_ms = median(
        (0..30)
            .map(|_| {
                time(&mut || {
                    black_box(detector.detect(&photo, &options).unwrap());
                })
            })
            .collect(),
    );
    let metrics_ms = |m: &Metrics, null: &mut std::fs::File| {
        median(
            (0..2000)
                .map(|_| time(&mut || per_request(m, &response, null)))
                .collect(),
        )
    };
    let plain_ms = metrics_ms(&plain, &mut null);
    let per_class_ms = metrics_ms(&per_class, &mut null);
    let records = per_class.records(&observation);
    println!(
        "\nper request ({} detections, {} labels): metrics {:.4} ms, with per-class records {:.4} ms; \
         warm detect {:.1} ms; ratio {:.5} / {:.5}; record {} bytes",
        response.detections.len(),
        records.len() - 1,
        plain_ms,
        per_class_ms,
        detect_ms,
        plain_ms / detect_ms,
        per_class_ms / detect_ms,
        plain.records(&observation)[0].len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
