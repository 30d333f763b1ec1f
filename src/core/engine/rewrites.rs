//! Exact rewrites of operators tract runs slowly into operators it runs fast, applied to the decluttered
//! tract model before it is optimized. They match operators by what they compute, never by node name,
//! so they apply to any model a manifest names:
//!
//! - a bilinear (`linear`, `half_pixel`) resize by 1/2 of an even-sized map is a 2x2, stride-2 average
//!   pool: each output sits exactly between four inputs;
//! - a bilinear resize by 2 is a nearest 2x upsample, an edge pad of one and a fixed depthwise 3x3 filter
//!   (`[1/4, 1/2, 1/4]` along each axis): each output mixes the input it falls in (3/4) and its nearest
//!   neighbour (1/4), and the edge pad gives the clamping ONNX asks for at the borders.
//!
//! tract's linear resize is scalar and plans its sampling on every run; the three replacement operators
//! have vectorised kernels. The results agree to float rounding (the test below and the parity tests).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::Op;
use tract_onnx::tract_core::ops::array::{Pad, PadMode};
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::nn::Resize;
use tract_onnx::tract_core::ops::nn::{
    CoordTransformer, DataFormat, Interpolator, NearestUpsample,
};

/// What a matched resize becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replacement {
    /// Bilinear 1/2: a 2x2 stride-2 average pool.
    AveragePool,
    /// Bilinear 2x: nearest 2x, edge pad, depthwise `[1/4, 1/2, 1/4]` filter.
    UpsampleAndFilter,
}

/// Applies `patch_for`'s patch to every node whose operator is an `O` and for which it has one, in
/// evaluation order; returns how many it patched. The loop of every rewrite here and in `winograd.rs`.
pub(super) fn rewrite_each<O: Op>(
    model: &mut TypedModel,
    patch_for: impl Fn(&TypedModel, &TypedNode, &O) -> TractResult<Option<TypedModelPatch>>,
) -> TractResult<usize> {
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = node.op_as::<O>() else {
            continue;
        };
        if let Some(patch) = patch_for(model, node, op)? {
            patch.apply(model)?;
            count += 1;
        }
    }
    Ok(count)
}

/// Rewrites every resize it recognises; returns how many. Anything else is left as it was.
pub fn rewrite_resizes(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each::<Resize>(model, |model, node, op| {
        Ok(match recognise(model, node, op)? {
            None => None,
            Some((Replacement::AveragePool, channels)) => {
                Some(average_pool(model, node, channels)?)
            }
            Some((Replacement::UpsampleAndFilter, channels)) => {
                Some(upsample_and_filter(model, node, channels)?)
            }
        })
    })
}

/// The replacement for a resize of a concrete NCHW-shaped f32 map by exactly 1/2 or 2 on the last two
/// axes (from its `scales` input, or `sizes` that say the same), with its channel count.
fn recognise(
    model: &TypedModel,
    node: &TypedNode,
    op: &Resize,
) -> TractResult<Option<(Replacement, usize)>> {
    if op.interpolator != Interpolator::Linear
        || op.coord_transformer != CoordTransformer::HalfPixel
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let output = model.outlet_fact(OutletId::new(node.id, 0))?;
    let (Some(input_shape), Some(output_shape)) =
        (input.shape.as_concrete(), output.shape.as_concrete())
    else {
        return Ok(None);
    };
    if input.datum_type != f32::datum_type() || input_shape.len() != 4 {
        return Ok(None);
    }
    // With a `scales` input the sampling follows the scales; with `sizes`, the ratio of the lengths.
    let scales: Vec<f32> = match op.optional_scales_input {
        Some(ix) => match &model.outlet_fact(node.inputs[ix])?.konst {
            Some(k) if k.len() == 4 => k
                .cast_to::<f32>()?
                .try_as_plain_ram()?
                .as_slice::<f32>()?
                .to_vec(),
            _ => return Ok(None),
        },
        None => input_shape
            .iter()
            .zip(output_shape)
            .map(|(&i, &o)| o as f32 / i as f32)
            .collect(),
    };
    let (h, w) = (input_shape[2], input_shape[3]);
    let replacement = if scales == [1.0, 1.0, 0.5, 0.5]
        && h % 2 == 0
        && w % 2 == 0
        && output_shape == [input_shape[0], input_shape[1], h / 2, w / 2]
    {
        Replacement::AveragePool
    } else if scales == [1.0, 1.0, 2.0, 2.0]
        && output_shape == [input_shape[0], input_shape[1], h * 2, w * 2]
    {
        Replacement::UpsampleAndFilter
    } else {
        return Ok(None);
    };
    Ok(Some((replacement, input_shape[1])))
}

fn pool_spec(kernel: usize, stride: usize, channels: usize) -> PoolSpec {
    PoolSpec {
        data_format: DataFormat::NCHW,
        kernel_shape: tvec![kernel, kernel],
        padding: PaddingSpec::Valid,
        dilations: None,
        strides: Some(tvec![stride, stride]),
        input_channels: channels,
        output_channels: channels,
    }
}

fn average_pool(
    model: &TypedModel,
    node: &TypedNode,
    channels: usize,
) -> TractResult<TypedModelPatch> {
    let op = SumPool {
        pool_spec: pool_spec(2, 2, channels),
        count_include_pad: false,
        normalize: true,
    };
    TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)
}

fn upsample_and_filter(
    model: &TypedModel,
    node: &TypedNode,
    channels: usize,
) -> TractResult<TypedModelPatch> {
    let mut patch = TypedModelPatch::default();
    let name = &node.name;
    let x = patch.tap_model(model, node.inputs[0])?;
    let up = patch.wire_node(
        format!("{name}.nearest"),
        NearestUpsample {
            scales: tvec![1, 1, 2, 2],
        },
        &[x],
    )?[0];
    let padded = patch.wire_node(
        format!("{name}.edge_pad"),
        Pad {
            pads: vec![(0, 0), (0, 0), (1, 1), (1, 1)],
            mode: PadMode::Edge,
        },
        &[up],
    )?[0];
    let taps = [0.25f32, 0.5, 0.25];
    let filter: Vec<f32> = (0..channels)
        .flat_map(|_| taps.iter().flat_map(|a| taps.iter().map(move |b| a * b)))
        .collect();
    let kernel = patch.add_const(
        format!("{name}.filter"),
        tensor1(&filter).into_shape(&[channels, 1, 3, 3])?,
    )?;
    let bias = patch.add_const(format!("{name}.bias"), tensor1(&vec![0f32; channels]))?;
    let conv = Conv {
        pool_spec: pool_spec(3, 1, channels),
        kernel_fmt: KernelFormat::OIHW,
        group: channels,
        q_params: None,
    };
    let out = patch.wire_node(name, conv, &[padded, kernel, bias])?[0];
    patch.shunt_outside(model, OutletId::new(node.id, 0), out)?;
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::nn::Nearest;

    /// A model of one half-pixel bilinear resize by `scale` on a `shape` input, given as `scales`.
    fn resize_model(shape: &[usize], scale: f32) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).unwrap();
        let scales = model
            .add_const("scales", tensor1(&[1.0f32, 1.0, scale, scale]))
            .unwrap();
        let op = Resize {
            coord_transformer: CoordTransformer::HalfPixel,
            interpolator: Interpolator::Linear,
            nearest: Nearest::Floor,
            optional_scales_input: Some(1),
            optional_sizes_input: None,
        };
        let y = model.wire_node("resize", op, &[x, scales]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    fn run(model: TypedModel, input: &Tensor) -> Tensor {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let out = plan.run(tvec!(input.clone().into())).unwrap();
        out[0].clone().into_tensor()
    }

    fn pseudo_random(shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        let values: Vec<f32> = (0..len)
            .map(|i| ((i * 7919 + 13) % 1009) as f32 / 97.0 - 5.0)
            .collect();
        tensor1(&values).into_shape(shape).unwrap()
    }

    #[test]
    fn bilinear_halving_and_doubling_become_fast_operators_with_the_same_result() {
        for (shape, scale, expected) in [
            (vec![1, 3, 8, 6], 0.5, "SumPool"),
            (vec![1, 5, 26, 26], 0.5, "SumPool"),
            (vec![1, 3, 5, 7], 2.0, "NearestUpsample"),
            (vec![1, 4, 13, 13], 2.0, "NearestUpsample"),
        ] {
            let input = pseudo_random(&shape);
            let reference = run(resize_model(&shape, scale), &input);
            let mut rewritten = resize_model(&shape, scale);
            assert_eq!(
                rewrite_resizes(&mut rewritten).unwrap(),
                1,
                "{shape:?} x{scale}"
            );
            assert!(
                rewritten.nodes().iter().all(|n| !n.op_is::<Resize>()),
                "{shape:?} x{scale}: a resize is left"
            );
            assert!(
                rewritten.nodes().iter().any(|n| n.op().name() == expected),
                "{shape:?} x{scale}: no {expected}"
            );
            let got = run(rewritten, &input);
            assert_eq!(got.shape(), reference.shape());
            let values = |t: &Tensor| {
                t.try_as_plain_ram()
                    .unwrap()
                    .as_slice::<f32>()
                    .unwrap()
                    .to_vec()
            };
            let worst = values(&got)
                .iter()
                .zip(values(&reference))
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "{shape:?} x{scale}: off by {worst}");
        }
    }

    #[test]
    fn other_resizes_are_left_alone() {
        // An odd map halved (the outputs do not sit between four inputs) and a 3x enlargement.
        for (shape, scale) in [(vec![1, 2, 7, 8], 0.5), (vec![1, 2, 4, 4], 3.0)] {
            let mut model = resize_model(&shape, scale);
            assert_eq!(
                rewrite_resizes(&mut model).unwrap(),
                0,
                "{shape:?} x{scale}"
            );
        }
        let mut nearest = resize_model(&[1, 2, 4, 4], 2.0);
        for node in nearest.nodes_mut() {
            if let Some(op) = node.op_as_mut::<Resize>() {
                op.interpolator = Interpolator::Nearest;
            }
        }
        assert_eq!(rewrite_resizes(&mut nearest).unwrap(), 0);
    }
}
