//! Winograd convolutions against tract's own, on the embedded model and one photo: both plans built by
//! the engine's steps in one process, runs interleaved, medians and their ratio.
//!
//!     cargo bench --bench winograd [-- photo.jpg]

use std::time::Instant;

use object_detector::core::embedded;
use object_detector::core::engine::tract;
use object_detector::core::image_decode::decode;
use object_detector::{DecodeLimits, Detector};
use tract_onnx::prelude::*;

const RUNS: usize = 31;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> TractResult<()> {
    let photo = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/images/coffee.jpg").into());
    let detector = Detector::embedded()?;
    let shape = detector.preprocessor().input_shape();
    let input_name = detector.manifest().input.name.as_deref();
    let build = |winograd: bool| -> TractResult<(tract::Plan, f64)> {
        let start = Instant::now();
        let plan = tract::plan(
            tract::typed_model(embedded::MODEL, input_name, &shape)?,
            tract::Rewrites {
                winograd,
                ..Default::default()
            },
        )?;
        Ok((plan, start.elapsed().as_secs_f64() * 1e3))
    };
    let mut builds = [Vec::new(), Vec::new()];
    let mut plans = Vec::new();
    for round in 0..5 {
        for (i, winograd) in [true, false].into_iter().enumerate() {
            let (plan, ms) = build(winograd)?;
            builds[i].push(ms);
            if round == 0 {
                plans.push(plan);
            }
        }
    }
    let rgb = decode(&std::fs::read(&photo)?, &DecodeLimits::default())?.rgb;
    let (input, _) = detector.preprocess(&rgb)?;
    let mut runs = [Vec::new(), Vec::new()];
    for _ in 0..RUNS {
        for (i, plan) in plans.iter().enumerate() {
            let start = Instant::now();
            plan.run(tvec!(input.clone().into()))?;
            runs[i].push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let [on, off] = runs.each_mut().map(|v| median(v));
    let [build_on, build_off] = builds.each_mut().map(|v| median(v));
    println!("{photo}: medians of {RUNS} interleaved runs, 5 plan builds each");
    println!("                 winograd   tract im2col   ratio");
    println!(
        "inference      {on:>8.2} ms  {off:>10.2} ms   {:.3}",
        on / off
    );
    println!(
        "plan build     {build_on:>8.2} ms  {build_off:>10.2} ms   {:.3}",
        build_on / build_off
    );
    Ok(())
}
