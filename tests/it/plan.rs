//! The plan build's own steps against tract's, on every committed detector and a real photo's input
//! tensor: the two-round declutter (`tract::declutter`: the passes but `ChangeAxes` first, then all of
//! them) plans the graph tract's one-round declutter plans, the same operators and outputs bit for
//! bit; the plan in segments (`tract::plan_segments`: cut as read, each segment typed on its own)
//! computes what the whole graph's plan computes.

use crate::common::{int8, largest_difference, read};
use object_detector::core::engine::segments::{self, GraphKind};
use object_detector::core::engine::{f32_values, tract};
use object_detector::core::image_decode::decode;
use object_detector::DecodeLimits;
use tract_onnx::prelude::*;

const MODELS: [&str; 3] = [
    "model/nanodet-g-416.int8.onnx",
    "model/picodet-s-416-coco.int8.onnx",
    "model/picodet-s-416-coco.fp32.onnx",
];

/// The operator names of a model, sorted: the same multiset means the same operators were planned.
fn operators(model: &TypedModel) -> Vec<String> {
    let mut ops: Vec<String> = model
        .nodes()
        .iter()
        .map(|n| n.op.name().to_string())
        .collect();
    ops.sort();
    ops
}

fn run(model: TypedModel, input: &Tensor) -> Vec<Vec<u32>> {
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    plan.run(tvec!(input.clone().into()))
        .unwrap()
        .iter()
        .map(|o| f32_values(o).unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn two_round_declutter_plans_what_tracts_declutter_plans() {
    let photo = decode(&read("tests/images/coffee.jpg"), &DecodeLimits::default()).unwrap();
    let (input, _) = int8().preprocess(&photo.rgb).unwrap();
    for file in MODELS {
        let typed = tract::typed_model(&read(file), None, &[1, 3, 416, 416]).unwrap();
        let one_round = typed.clone().into_decluttered().unwrap();
        let mut two_rounds = typed;
        tract::declutter(&mut two_rounds).unwrap();
        assert_eq!(operators(&two_rounds), operators(&one_round), "{file}");
        assert!(
            run(two_rounds, &input) == run(one_round, &input),
            "{file}: outputs differ"
        );
    }
}

/// The planned operators but sources and constants, each with its count.
fn computing_operators(models: &[&TypedModel]) -> std::collections::BTreeMap<String, i64> {
    let mut count = std::collections::BTreeMap::new();
    for model in models {
        for node in model.nodes() {
            let name = node.op.name().to_string();
            if name != "Source" && name != "Const" {
                *count.entry(name).or_default() += 1;
            }
        }
    }
    count
}

/// The plan the engine runs, cut into segments planned on two threads (`segments.rs`), computes what
/// the whole graph planned at once computes, with the same operators but for at most two where a cut
/// keeps tract from fusing across it (on PicoDet-S: one reshape and one packing, measured by `cargo
/// bench --bench plan_segments`).
#[test]
fn the_segmented_plan_computes_what_the_whole_plan_computes() {
    let photo = decode(&read("tests/images/coffee.jpg"), &DecodeLimits::default()).unwrap();
    let (input, _) = int8().preprocess(&photo.rgb).unwrap();
    let config = object_detector::core::engine::RunConfig {
        plan_threads: 2,
        ..Default::default()
    };
    for file in MODELS {
        let as_read =
            tract::inference_model(&read(file), None, &[1, 3, 416, 416], config.plan_threads)
                .unwrap();
        let nodes = segments::cuttable_nodes(&as_read).unwrap();
        let typed = as_read.clone().into_typed().unwrap();
        let whole = tract::plan(typed.clone(), tract::Rewrites::default()).unwrap();
        let segmented = tract::plan_segments(&as_read, &config).unwrap();
        assert_eq!(
            segmented.plans().len(),
            segments::parts_for(nodes),
            "{file}"
        );
        let typed_outputs: Vec<&TypedFact> = typed
            .output_outlets()
            .unwrap()
            .iter()
            .map(|&o| typed.outlet_fact(o).unwrap())
            .collect();
        let segment_outputs: Vec<&TypedFact> = segmented.output_facts().iter().collect();
        assert_eq!(segment_outputs, typed_outputs, "{file}: output facts");
        // The cut chooser sees every convolution, as read and typed (a renamed operator would blind it).
        let convolutions_as_read = as_read
            .nodes()
            .iter()
            .filter(|n| InferenceModel::is_convolution(n.op.as_ref()))
            .count();
        let convolutions_typed = typed
            .nodes()
            .iter()
            .filter(|n| TypedModel::is_convolution(n.op.as_ref()))
            .count();
        assert!(convolutions_as_read > 10, "{file}: {convolutions_as_read}");
        assert_eq!(convolutions_as_read, convolutions_typed, "{file}");

        let whole_ops = computing_operators(&[whole.model()]);
        let models: Vec<&TypedModel> = segmented.plans().iter().map(|p| p.model()).collect();
        let ops = computing_operators(&models);
        let differ: i64 = whole_ops
            .keys()
            .chain(ops.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|k| (ops.get(k).unwrap_or(&0) - whole_ops.get(k).unwrap_or(&0)).abs())
            .sum();
        assert!(differ <= 2, "{file}: {ops:?} against {whole_ops:?}");

        let expected = whole.run(tvec!(input.clone().into())).unwrap();
        let got = segmented
            .run(tvec!(input.clone().into()), |p, inputs| p.run(inputs))
            .unwrap();
        assert_eq!(got.len(), expected.len(), "{file}");
        for (i, (a, b)) in got.iter().zip(expected.iter()).enumerate() {
            let worst = largest_difference(a, b, &format!("{file} output {i}"));
            assert!(worst <= 1e-4, "{file} output {i}: differs by {worst}");
        }
    }
}
