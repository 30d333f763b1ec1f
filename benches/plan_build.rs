//! Where the plan build (cold start) goes, and whether a pre-decluttered NNEF model (tract's own
//! format, with its ONNX extensions) embedded instead of the ONNX file would build faster and stay
//! exact. Both routes run interleaved in one process on the embedded model; medians of each stage,
//! then the ratio NNEF / ONNX and the largest output difference on a real photo.
//!
//!     cargo bench --bench plan_build

use std::io::Cursor;
use std::time::{Duration, Instant};

use object_detector::embedded;
use object_detector::engine::{f32_values, tract};
use object_detector::image_decode::decode;
use object_detector::{DecodeLimits, Detector};
use tract_onnx::prelude::*;

const RUNS: usize = 15;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let detector = Detector::embedded().unwrap();
    let shape = detector.preprocessor().input_shape();
    let input_name = detector.manifest().input.name.as_deref();
    let nnef = tract_nnef::nnef().with_onnx();

    // The engine's own first step: parse, fold the int8 weights, build the graph, fix the input.
    let inference_model = || tract::inference_model(embedded::MODEL, input_name, &shape).unwrap();
    // The NNEF archive: the ONNX route up to the decluttered typed model, serialized once.
    let typed = inference_model()
        .into_typed()
        .unwrap()
        .into_decluttered()
        .unwrap();
    let mut archive = Vec::new();
    nnef.write_to_tar(&typed, &mut archive).unwrap();

    let onnx_route = || {
        let t0 = Instant::now();
        let model = inference_model();
        let t1 = Instant::now();
        let typed = model.into_typed().unwrap();
        let t2 = Instant::now();
        let optimized = typed.into_optimized().unwrap();
        let t3 = Instant::now();
        let plan = optimized.into_runnable().unwrap();
        let t4 = Instant::now();
        (plan, [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0])
    };
    let nnef_route = || {
        let t0 = Instant::now();
        let model = nnef.model_for_read(&mut Cursor::new(&archive)).unwrap();
        let t1 = Instant::now();
        let optimized = model.into_optimized().unwrap();
        let t2 = Instant::now();
        let plan = optimized.into_runnable().unwrap();
        let t3 = Instant::now();
        (plan, [t1 - t0, t2 - t1, t3 - t2, t3 - t0])
    };

    let mut onnx_times: Vec<Vec<Duration>> = vec![Vec::new(); 5];
    let mut nnef_times: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    let (mut onnx_plan, mut nnef_plan) = (None, None);
    for _ in 0..RUNS {
        let (plan, t) = onnx_route();
        t.iter().zip(&mut onnx_times).for_each(|(d, v)| v.push(*d));
        onnx_plan = Some(plan);
        let (plan, t) = nnef_route();
        t.iter().zip(&mut nnef_times).for_each(|(d, v)| v.push(*d));
        nnef_plan = Some(plan);
    }
    let onnx_ms: Vec<f64> = onnx_times.into_iter().map(median).collect();
    let nnef_ms: Vec<f64> = nnef_times.into_iter().map(median).collect();

    // Same photo through both plans: the outputs must agree.
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/images/coffee.jpg"
    ))
    .unwrap();
    let rgb = decode(&bytes, &DecodeLimits::default()).unwrap().rgb;
    let (input, _) = detector.preprocess(&rgb).unwrap();
    let a = onnx_plan.unwrap().run(tvec!(input.clone().into())).unwrap();
    let b = nnef_plan.unwrap().run(tvec!(input.into())).unwrap();
    let mut max_diff = 0f32;
    for (x, y) in a.iter().zip(b.iter()) {
        let (x, y) = (f32_values(x).unwrap(), f32_values(y).unwrap());
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(y.iter()) {
            max_diff = max_diff.max((p - q).abs());
        }
    }

    println!("plan build of the embedded model, median of {RUNS} runs each, interleaved (ms)");
    println!("  ONNX route (what the binary does)");
    for (name, v) in [
        "parse protobuf + fold weights + to graph",
        "type inference (into_typed)",
        "declutter + optimize (into_optimized)",
        "plan (into_runnable)",
        "total",
    ]
    .iter()
    .zip(&onnx_ms)
    {
        println!("    {name:<44} {v:>8.1}");
    }
    println!(
        "  NNEF route (decluttered typed model, {} bytes as an uncompressed tar; ONNX file {} bytes)",
        archive.len(),
        embedded::MODEL.len()
    );
    for (name, v) in [
        "read tar + to typed graph",
        "optimize (into_optimized)",
        "plan (into_runnable)",
        "total",
    ]
    .iter()
    .zip(&nnef_ms)
    {
        println!("    {name:<44} {v:>8.1}");
    }
    println!(
        "  ratio NNEF / ONNX, total: {:.2}; largest output difference on coffee.jpg: {max_diff:e}",
        nnef_ms[3] / onnx_ms[4]
    );
}
