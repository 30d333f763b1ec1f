//! tract's plan build stage by stage for any ONNX file with a 416x416 NCHW input: parse (with the
//! project's weight fold), type inference, declutter (the engine's two rounds, `tract::declutter`),
//! optimize, into a runnable plan; the node count
//! after each stage; medians of 5 builds, each model in turn. Where a new model's cold start goes.
//!
//!     cargo bench --bench plan_stages -- model/nanodet-g-416.int8.onnx model/picodet-s-416-coco.int8.onnx

use std::time::{Duration, Instant};

use object_detector::core::engine::tract;
use tract_onnx::prelude::*;

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// One build: each stage's time and the node count after it.
fn build(onnx: &[u8]) -> [(Duration, usize); 5] {
    let t = Instant::now();
    let inference = tract::inference_model(onnx, None, &[1, 3, 416, 416], 1).expect("parses");
    let parsed = (t.elapsed(), inference.nodes().len());
    let t = Instant::now();
    let typed = inference.into_typed().expect("types");
    let typed_at = (t.elapsed(), typed.nodes().len());
    let t = Instant::now();
    let mut model = typed;
    tract::declutter(&mut model).expect("declutters");
    let decluttered = (t.elapsed(), model.nodes().len());
    let t = Instant::now();
    model.optimize().expect("optimizes");
    let optimized = (t.elapsed(), model.nodes().len());
    let t = Instant::now();
    let plan = model.into_runnable().expect("plans");
    let planned = (t.elapsed(), plan.model().nodes().len());
    [parsed, typed_at, decluttered, optimized, planned]
}

fn main() {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if files.is_empty() {
        eprintln!("usage: cargo bench --bench plan_stages -- MODEL.onnx...");
        std::process::exit(2);
    }
    println!(
        "| model | parse | type | declutter | optimize | plan | total ms | nodes after each |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for file in &files {
        let onnx = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let builds: Vec<_> = (0..RUNS).map(|_| build(&onnx)).collect();
        let stage = |i: usize| median(builds.iter().map(|b| b[i].0).collect());
        let stages: Vec<f64> = (0..5).map(stage).collect();
        let nodes: Vec<String> = builds[0].iter().map(|(_, n)| n.to_string()).collect();
        println!(
            "| {file} | {} | {:.1} | {} |",
            stages
                .iter()
                .map(|ms| format!("{ms:.1}"))
                .collect::<Vec<_>>()
                .join(" | "),
            stages.iter().sum::<f64>(),
            nodes.join(" / ")
        );
    }
}
