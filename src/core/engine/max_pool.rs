//! Max pooling, the project's own kernel in place of tract's: each output row is the element-wise
//! maximum of k x k contiguous slices of a padded, stride-phase-split copy of the channel
//! (`strided_plane.rs`), which the compiler vectorises. tract's takes 2.7 ms for PP-PicoDet-S's one 3x3
//! stride-2 pool over 24 x 208 x 208 (7% of its inference, `cargo bench --bench profile_ops`).
//!
//! Applied to the decluttered model before tract optimizes it, for f32 pools on NCHW maps with a batch
//! of one or CHW ones (tract's declutter drops the unit batch axis), any window and stride, explicit padding (never part of a maximum, as ONNX asks), no dilation and no
//! index output.

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::MaxPool as TractMaxPool;

use super::rewrites::rewrite_each;
use super::strided_plane::{
    channels_first, eval_window, window_output_facts, StridedPlane, Window,
};

/// Rewrites every max pool [`MaxPool`] takes; returns how many. Anything else is left as it was.
pub fn rewrite_max_pools(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each::<TractMaxPool>(model, |model, node, op| {
        let Some(op) = eligible(model, node, op)? else {
            return Ok(None);
        };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, op, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(node.id, 0), y)?;
        Ok(Some(patch))
    })
}

/// The replacement of a pool this kernel takes.
fn eligible(
    model: &TypedModel,
    node: &TypedNode,
    op: &TractMaxPool,
) -> TractResult<Option<MaxPool>> {
    let spec = &op.pool_spec;
    if op.with_index_outputs.is_some()
        || spec.kernel_shape.len() != 2
        || spec.dilations().iter().any(|&d| d != 1)
        || node.inputs.len() != 1
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some((shape, batch_axis)) = channels_first(input, spec.data_format) else {
        return Ok(None);
    };
    let padding = spec.computed_padding(&shape[1..]);
    let strides = spec.strides();
    let window = Window {
        height: shape[1],
        width: shape[2],
        kernel_h: spec.kernel_shape[0],
        kernel_w: spec.kernel_shape[1],
        stride_h: strides[0],
        stride_w: strides[1],
        pad_top: padding[0].pad_before,
        pad_left: padding[1].pad_before,
        out_h: padding[0].convoluted,
        out_w: padding[1].convoluted,
    };
    Ok(window.is_valid().then_some(MaxPool {
        window,
        batch_axis,
        channels: shape[0],
    }))
}

/// `[1, channels, height, width]` to `[1, channels, out_h, out_w]` (without the first axis when
/// `batch_axis` is false): the maximum of each window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPool {
    window: Window,
    batch_axis: bool,
    channels: usize,
}

impl Op for MaxPool {
    fn name(&self) -> StaticName {
        "ProjectMaxPool".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        eval_window(
            inputs,
            self.window,
            self.channels,
            self.batch_axis,
            |x, y| {
                pool(x, y, self.window);
                Ok(())
            },
        )
    }
}

impl TypedOp for MaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        window_output_facts(inputs, self.window, self.channels, self.batch_axis)
    }

    as_op!();
}

/// The pooling itself: `x` `[channels, height, width]` into `y` `[channels, out_h, out_w]`. The pad
/// is negative infinity, so it never wins: every window holds at least one real value
/// (`Window::is_valid`). Compiled for AVX2 as well, chosen at run time where the CPU has it.
fn pool(x: &[f32], y: &mut [f32], w: Window) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above), all `pool_avx2` asks.
        return unsafe { pool_avx2(x, y, w) };
    }
    pool_with(x, y, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool_avx2(x: &[f32], y: &mut [f32], w: Window) {
    pool_with(x, y, w)
}

#[inline(always)]
fn pool_with(x: &[f32], y: &mut [f32], w: Window) {
    let mut plane = StridedPlane::new(w);
    for (input, output) in x
        .chunks_exact(w.height * w.width)
        .zip(y.chunks_exact_mut(w.out_h * w.out_w))
    {
        plane.fill(input, f32::NEG_INFINITY);
        for (oy, out) in output.chunks_exact_mut(w.out_w).enumerate() {
            out.fill(f32::NEG_INFINITY);
            for ky in 0..w.kernel_h {
                let r = oy * w.stride_h + ky;
                for kx in 0..w.kernel_w {
                    for (o, &v) in out.iter_mut().zip(plane.taps(r, kx)) {
                        // Not f32::max, whose NaN rule keeps the compiler from one max instruction.
                        *o = if v > *o { v } else { *o };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::strided_plane::test_support::{run, square_window};
    use super::*;

    /// A model of one max pool of a `[1, channels, h, w]` input (NCHW), or of a `[channels, h, w]`
    /// one (CHW) when `batch_axis` is false.
    fn pool_model(
        channels: usize,
        h: usize,
        w: usize,
        k: usize,
        stride: usize,
        batch_axis: bool,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let (shape, pool_spec) = square_window(channels, (h, w), k, stride, batch_axis);
        let x = model.add_source("x", f32::fact(&shape)).unwrap();
        let op = TractMaxPool {
            pool_spec,
            with_index_outputs: None,
        };
        let y = model.wire_node("pool", op, &[x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    #[test]
    fn max_pools_agree_with_tracts_own() {
        for (channels, h, w, k, stride) in [
            (3, 8, 8, 3, 2),
            (2, 7, 9, 3, 2),
            (2, 6, 5, 3, 1),
            (1, 1, 1, 3, 2),
            (2, 9, 9, 5, 2),
        ] {
            // Negative values too, so a zero pad would show.
            let values: Vec<f32> = (0..channels * h * w)
                .map(|i| ((i * 7919 + 17) % 1009) as f32 / 100.0 - 12.0)
                .collect();
            for batch_axis in [true, false] {
                let shape: &[usize] = if batch_axis {
                    &[1, channels, h, w]
                } else {
                    &[channels, h, w]
                };
                let input = tensor1(&values).into_shape(shape).unwrap();
                let want = run(pool_model(channels, h, w, k, stride, batch_axis), &input);
                let mut model = pool_model(channels, h, w, k, stride, batch_axis);
                assert_eq!(rewrite_max_pools(&mut model).unwrap(), 1);
                assert!(model.nodes.iter().any(|n| n.op_is::<MaxPool>()));
                assert_eq!(
                    run(model, &input),
                    want,
                    "{shape:?}, {k}x{k} stride {stride}"
                );
            }
        }
    }
}
