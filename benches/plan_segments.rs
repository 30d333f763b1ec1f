//! The plan build in segments (`segments.rs`, what the binary does: cut as read, each segment typed on
//! its own) against the whole graph planned at once and against the cut made after typing the whole
//! graph: build (from the model as read, type inference included) on one thread and on every core,
//! inference, and what the cuts cost the plan (operators that differ) and the outputs (largest
//! difference), in one process, interleaved.
//!
//!     cargo bench --bench plan_segments [-- MODEL.onnx [PARTS...]]
//!
//! With no model, the embedded one; with no parts, the number the engine chooses (`parts_for`). The
//! model's input is taken to be 1x3x416x416.

use std::collections::BTreeMap;
use std::time::Instant;

use object_detector::core::embedded;
use object_detector::core::engine::segments::{self, SegmentError, SegmentedPlan};
use object_detector::core::engine::{f32_values, tract};
use object_detector::core::image_decode::decode;
use object_detector::{DecodeLimits, Detector};
use tract_onnx::prelude::*;

const BUILDS: usize = 7;
const RUNS: usize = 31;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// How many of each operator the planned segments hold, sources and constants left out (a cut adds
/// those by construction).
fn operators(plans: &[tract::Plan]) -> BTreeMap<String, isize> {
    let mut count = BTreeMap::new();
    for plan in plans {
        for node in plan.model().nodes() {
            let name = node.op().name().to_string();
            if name != "Source" && name != "Const" {
                *count.entry(name).or_default() += 1;
            }
        }
    }
    count
}

fn run(plan: &SegmentedPlan<tract::Plan>, input: &Tensor) -> TractResult<TVec<TValue>> {
    plan.run(tvec!(input.clone().into()), |p, inputs| p.run(inputs))
}

/// How a build cuts the model: as read, before type inference, or once typed; into how many parts.
#[derive(Debug, Clone, Copy)]
enum Route {
    CutAsRead(usize),
    CutTyped(usize),
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::CutAsRead(1) => write!(f, "1 (whole graph)"),
            Route::CutAsRead(p) => write!(f, "{p}, cut as read"),
            Route::CutTyped(p) => write!(f, "{p}, cut typed"),
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let onnx = match args.first() {
        Some(file) => std::fs::read(file)?,
        None => embedded::MODEL.to_vec(),
    };
    let detector = Detector::embedded()?;
    let shape = [1, 3, 416, 416];
    let inference = tract::inference_model(&onnx, None, &shape, 1)?;
    let nodes = segments::cuttable_nodes(&inference)?;
    let mut parts: Vec<usize> = args
        .iter()
        .skip(1)
        .map(|a| a.parse())
        .collect::<std::result::Result<_, _>>()?;
    if parts.is_empty() {
        parts.push(segments::parts_for(nodes));
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let rewrites = tract::Rewrites::default();
    // From the model as read to the plan: the type inference is part of every build. Cut as read
    // (what the engine does), each segment is typed on its own; cut typed, the whole graph is typed
    // first (the engine before 7 December 2026).
    let build = |route: Route, threads: usize| -> Result<(SegmentedPlan<tract::Plan>, f64)> {
        let start = Instant::now();
        let plan_one = |m| tract::plan(m, rewrites);
        let plan = match route {
            Route::CutAsRead(parts) => {
                segments::plan_segments(&inference, parts, threads, plan_one)
            }
            Route::CutTyped(parts) => {
                let typed = inference.clone().into_typed()?;
                segments::plan_segments(&typed, parts, threads, plan_one)
            }
        }
        .map_err(|e| match e {
            SegmentError::Typing(e) => {
                Box::<dyn std::error::Error + Send + Sync>::from(e.to_string())
            }
            SegmentError::Planning(e) => e.into(),
        })?;
        Ok((plan, ms(start)))
    };
    // [whole graph, then each number of parts cut as read, then cut typed]; each built on one thread
    // and on every core.
    let variants: Vec<Route> = std::iter::once(Route::CutAsRead(1))
        .chain(parts.iter().map(|&p| Route::CutAsRead(p)))
        .chain(parts.iter().map(|&p| Route::CutTyped(p)))
        .collect();
    let mut one_thread = vec![Vec::new(); variants.len()];
    let mut all_cores = vec![Vec::new(); variants.len()];
    let mut plans = Vec::new();
    for round in 0..BUILDS {
        for (i, &route) in variants.iter().enumerate() {
            let (plan, t) = build(route, 1)?;
            one_thread[i].push(t);
            all_cores[i].push(build(route, cores)?.1);
            if round == 0 {
                plans.push(plan);
            }
        }
    }

    let photo = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/images/coffee.jpg");
    let rgb = decode(&std::fs::read(photo)?, &DecodeLimits::default())?.rgb;
    let (input, _) = detector.preprocess(&rgb)?;
    let mut runs = vec![Vec::new(); variants.len()];
    for _ in 0..RUNS {
        for (i, plan) in plans.iter().enumerate() {
            let start = Instant::now();
            run(plan, &input)?;
            runs[i].push(ms(start));
        }
    }
    let reference = run(&plans[0], &input)?;
    let whole_ops = operators(plans[0].plans());

    println!(
        "{nodes} nodes as read (constants left out), {cores} cores; medians of {BUILDS} builds and {RUNS} runs, interleaved (ms)"
    );
    println!("| parts | build, 1 thread | ratio | build, {cores} threads | ratio | inference | ratio | operators not in the whole plan | largest output difference |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let base = [
        median(&mut one_thread[0]),
        median(&mut all_cores[0]),
        median(&mut runs[0]),
    ];
    for (i, route) in variants.iter().enumerate() {
        let row = [
            median(&mut one_thread[i]),
            median(&mut all_cores[i]),
            median(&mut runs[i]),
        ];
        let ops = operators(plans[i].plans());
        let mut differ = Vec::new();
        for name in whole_ops.keys().chain(ops.keys()) {
            let d = ops.get(name).copied().unwrap_or(0) - whole_ops.get(name).copied().unwrap_or(0);
            if d != 0
                && !differ
                    .iter()
                    .any(|s: &String| s.starts_with(&format!("{name} ")))
            {
                differ.push(format!("{name} {d:+}"));
            }
        }
        let outputs = run(&plans[i], &input)?;
        let mut diff = 0f32;
        for (a, b) in reference.iter().zip(outputs.iter()) {
            for (x, y) in f32_values(a)?.iter().zip(f32_values(b)?.iter()) {
                diff = diff.max((x - y).abs());
            }
        }
        println!(
            "| {route} | {:.1} | {:.3} | {:.1} | {:.3} | {:.2} | {:.3} | {} | {diff:e} |",
            row[0],
            row[0] / base[0],
            row[1],
            row[1] / base[0],
            row[2],
            row[2] / base[2],
            if differ.is_empty() {
                "none".to_string()
            } else {
                differ.join(", ")
            },
        );
    }
    Ok(())
}
