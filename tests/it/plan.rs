//! The plan build's own declutter (`tract::declutter`: the passes but `ChangeAxes` first, then all of
//! them) plans the graph tract's one-round declutter plans: on every committed detector, the same
//! operators and the same outputs, bit for bit, on a real photo's input tensor.

use crate::common::{int8, read};
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
