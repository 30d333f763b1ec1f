//! Per-operator profile of the optimized tract plan on one photo: where inference time goes, grouped
//! by operator kind, medians over several runs.
//!
//!     cargo bench --bench profile_ops [-- photo.jpg]
//!
//! Uses the embedded model, or `MODEL_PATH`/`MODEL_MANIFEST` like the binaries.

use std::collections::BTreeMap;
use std::time::Instant;

use object_detector::core::detector::ModelSource;
use object_detector::core::engine::tract;
use object_detector::core::image_decode::decode;
use object_detector::{DecodeLimits, Settings};
use tract_onnx::prelude::*;

const RUNS: usize = 11;

fn main() -> TractResult<()> {
    // `cargo bench` passes `--bench`; the photo is the first argument that is not a flag.
    let photo = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/images/coffee.jpg").into());
    let settings = Settings::from_env()?;
    let detector = settings.detector()?;
    let onnx_bytes = match &settings.model {
        ModelSource::Files { model, .. } => std::fs::read(model)?,
        ModelSource::Embedded => object_detector::core::embedded::MODEL.to_vec(),
    };
    // The plan the detector runs, built by the engine's own steps, as one graph: the detector plans it in
    // segments (`tract::plan_segments`), with the same operators but at most two (tests/it/plan.rs).
    let shape = detector.preprocessor().input_shape();
    let input_name = detector.manifest().input.name.as_deref();
    let plan = tract::plan(
        tract::typed_model(&onnx_bytes, input_name, &shape)?,
        tract::Rewrites::for_config(&settings.run),
    )?;

    let rgb = decode(&std::fs::read(&photo)?, &DecodeLimits::default())?.rgb;
    let (input, _) = detector.preprocess(&rgb)?;
    let mut state = tract_onnx::tract_core::plan::SimpleState::new(&plan)?;
    // node id -> one duration per run
    let mut per_node: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut totals = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        state.run_plan_with_eval(
            tvec!(input.clone().into()),
            |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                per_node
                    .entry(node.id)
                    .or_default()
                    .push(t.elapsed().as_secs_f64() * 1e3);
                out
            },
        )?;
        totals.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let total = median(&mut totals);
    let model = plan.model();
    let mut by_kind: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    let mut rows = Vec::new();
    let nodes = per_node.len();
    for (id, times) in per_node.iter_mut() {
        let node = model.node(*id);
        let ms = median(times);
        let kind = node.op().name().to_string();
        let e = by_kind.entry(kind.clone()).or_default();
        e.0 += 1;
        e.1 += ms;
        rows.push((ms, *id, kind, node.name.clone()));
    }
    println!("{photo}: plan run median {total:.2} ms over {RUNS} runs, {nodes} nodes");
    println!("\nby operator kind (ms, share of the run):");
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    for (kind, (count, ms)) in kinds {
        println!(
            "  {kind:<28} x{count:<4} {ms:>8.2}  {:>5.1}%",
            100.0 * ms / total
        );
    }
    println!("\nslowest nodes:");
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (ms, id, kind, name) in rows.iter().take(15) {
        println!("  #{id:<4} {kind:<24} {ms:>7.2}  {name}");
        // What the operator says of itself: for a matrix product, the kernel tract picked.
        for line in model.node(*id).op().info().unwrap_or_default() {
            println!("          {line}");
        }
    }
    Ok(())
}
