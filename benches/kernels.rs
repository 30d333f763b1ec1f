//! One family of the project's kernels against tract's own operators, on the embedded model and one
//! photo: both plans built by the engine's steps in one process (everything else as the engine has it
//! on this machine), runs interleaved, medians and their ratio, and the same for the plan build.
//!
//!     cargo bench --bench kernels [-- window|pointwise] [photo.jpg]
//!
//! `window` (the default): depthwise convolutions and max pools (`depthwise.rs`, `max_pool.rs`);
//! `pointwise`: 1x1 convolutions (`pointwise.rs`).

use std::time::Instant;

use object_detector::core::embedded;
use object_detector::core::engine::{f32_values, tract};
use object_detector::core::image_decode::decode;
use object_detector::{DecodeLimits, Detector};
use tract_onnx::prelude::*;

const RUNS: usize = 41;
const BUILDS: usize = 5;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> TractResult<()> {
    // `cargo bench` passes `--bench`; the rest are the family and the photo.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let family = match args.first().map(String::as_str) {
        Some(f @ ("window" | "pointwise")) => f.to_string(),
        _ => "window".to_string(),
    };
    let photo = args
        .iter()
        .find(|a| *a != &family)
        .cloned()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/images/coffee.jpg").into());
    let detector = Detector::embedded()?;
    let shape = detector.preprocessor().input_shape();
    let input_name = detector.manifest().input.name.as_deref();
    // [the project's kernels, tract's own]
    let variants = [true, false].map(|on| {
        let mut rewrites = tract::Rewrites::default();
        match family.as_str() {
            "pointwise" => rewrites.pointwise = on,
            _ => rewrites.window_kernels = on,
        }
        rewrites
    });
    let mut builds = [Vec::new(), Vec::new()];
    let mut plans = Vec::new();
    for round in 0..BUILDS {
        for (i, rewrites) in variants.into_iter().enumerate() {
            let start = Instant::now();
            let plan = tract::plan(
                tract::typed_model(embedded::MODEL, input_name, &shape)?,
                rewrites,
            )?;
            builds[i].push(start.elapsed().as_secs_f64() * 1e3);
            if round == 0 {
                plans.push(plan);
            }
        }
    }
    let rgb = decode(&std::fs::read(&photo)?, &DecodeLimits::default())?.rgb;
    let (input, _) = detector.preprocess(&rgb)?;
    let mut runs = [Vec::new(), Vec::new()];
    let mut outputs = Vec::new();
    for round in 0..RUNS {
        for (i, plan) in plans.iter().enumerate() {
            let start = Instant::now();
            let out = plan.run(tvec!(input.clone().into()))?;
            runs[i].push(start.elapsed().as_secs_f64() * 1e3);
            if round == 0 {
                outputs.push(out);
            }
        }
    }
    // How far apart the two plans' raw outputs are: the kernels sum in another order.
    let mut worst = 0f32;
    for (a, b) in outputs[0].iter().zip(&outputs[1]) {
        let (a, b) = (f32_values(a)?, f32_values(b)?);
        worst = a
            .iter()
            .zip(b.iter())
            // NaN against anything counts as infinitely far (`f32::max` would skip it).
            .fold(worst, |m, (x, y)| {
                let d = (x - y).abs();
                if d.is_nan() {
                    f32::INFINITY
                } else {
                    m.max(d)
                }
            });
    }
    let [ours, theirs] = runs.each_mut().map(|v| median(v));
    let [build_ours, build_theirs] = builds.each_mut().map(|v| median(v));
    println!(
        "{photo}, {family} kernels: medians of {RUNS} interleaved runs, {BUILDS} plan builds each"
    );
    println!("                 project's kernels   tract's   ratio");
    println!(
        "inference      {ours:>12.2} ms   {theirs:>7.2} ms   {:.3}",
        ours / theirs
    );
    println!(
        "plan build     {build_ours:>12.2} ms   {build_theirs:>7.2} ms   {:.3}",
        build_ours / build_theirs
    );
    println!("largest difference between the two plans' raw outputs: {worst:.2e}");
    Ok(())
}
