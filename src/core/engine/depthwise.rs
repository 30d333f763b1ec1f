//! Depthwise convolutions (one k x k filter per channel: `group` = input channels = output channels), the
//! project's own kernel in place of tract's. tract runs them one output pixel at a time; here each
//! output row is k x k multiply-adds of a contiguous slice of a padded, stride-phase-split copy of the
//! channel (`strided_plane.rs`), which the compiler vectorises. PP-PicoDet-S has 35 of them (3x3 and
//! 5x5, stride 1 and 2), 21% of its inference under tract (`cargo bench --bench profile_ops`).
//!
//! Applied to the decluttered model before tract optimizes it, for f32 convolutions on NCHW maps with a
//! batch of one or CHW ones (tract's declutter drops the unit batch axis), constant weights and bias,
//! any kernel size, stride and explicit padding, no dilation.

use super::rewrites::rewrite_each;
use super::strided_plane::{
    channels_first, eval_window, window_output_facts, StridedPlane, Window,
};
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};

/// Rewrites every depthwise convolution [`DepthwiseConv`] takes; returns how many. Anything else is
/// left as it was.
pub fn rewrite_depthwise(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each::<Conv>(model, |model, node, op| {
        let Some((window, batch_axis)) = eligible(model, node, op)? else {
            return Ok(None);
        };
        let channels = op.group;
        let constant = |ix: usize| -> TractResult<Vec<f32>> {
            let k = model
                .outlet_fact(node.inputs[ix])?
                .konst
                .clone()
                .context("constant")?;
            Ok(k.cast_to::<f32>()?
                .try_as_plain_ram()?
                .as_slice::<f32>()?
                .to_vec())
        };
        let weights = constant(1)?;
        let bias = match constant(2)? {
            b if b.len() == 1 => vec![b[0]; channels],
            b if b.len() == channels => b,
            b => bail!("a bias of {} values for {channels} channels", b.len()),
        };
        let op = DepthwiseConv {
            window,
            batch_axis,
            channels,
            weights: Arc::new(tensor1(&weights)),
            bias: Arc::new(tensor1(&bias)),
        };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, op, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(node.id, 0), y)?;
        Ok(Some(patch))
    })
}

/// The convolution's window, and whether its maps have a (unit) batch axis, when it is one this kernel
/// takes.
fn eligible(
    model: &TypedModel,
    node: &TypedNode,
    op: &Conv,
) -> TractResult<Option<(Window, bool)>> {
    let spec = &op.pool_spec;
    if op.q_params.is_some()
        || op.kernel_fmt != KernelFormat::OIHW
        || spec.kernel_shape.len() != 2
        || spec.dilations().iter().any(|&d| d != 1)
        || node.inputs.len() != 3
        || op.group < 2
        || spec.input_channels != op.group
        || spec.output_channels != op.group
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some((shape, batch_axis)) = channels_first(input, spec.data_format) else {
        return Ok(None);
    };
    let kernel = model.outlet_fact(node.inputs[1])?;
    let bias = model.outlet_fact(node.inputs[2])?;
    let (kh, kw) = (spec.kernel_shape[0], spec.kernel_shape[1]);
    if kernel.konst.is_none()
        || bias.konst.is_none()
        || kernel.shape.as_concrete() != Some(&[op.group, 1, kh, kw][..])
    {
        return Ok(None);
    }
    let padding = spec.computed_padding(&shape[1..]);
    let strides = spec.strides();
    let window = Window {
        height: shape[1],
        width: shape[2],
        kernel_h: kh,
        kernel_w: kw,
        stride_h: strides[0],
        stride_w: strides[1],
        pad_top: padding[0].pad_before,
        pad_left: padding[1].pad_before,
        out_h: padding[0].convoluted,
        out_w: padding[1].convoluted,
    };
    Ok((window.is_valid() && shape[0] == op.group).then_some((window, batch_axis)))
}

/// `[1, channels, height, width]` to `[1, channels, out_h, out_w]` (without the first axis when
/// `batch_axis` is false): each channel convolved with its own `kernel_h x kernel_w` filter
/// (`weights`, `[channels, 1, kh, kw]` in order), plus its bias.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DepthwiseConv {
    window: Window,
    batch_axis: bool,
    channels: usize,
    weights: Arc<Tensor>,
    bias: Arc<Tensor>,
}

impl Op for DepthwiseConv {
    fn name(&self) -> StaticName {
        "ProjectDepthwiseConv".into()
    }

    op_as_typed_op!();
}

impl EvalOp for DepthwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        eval_window(
            inputs,
            self.window,
            self.channels,
            self.batch_axis,
            |x, y| {
                convolve_in_parallel(
                    x,
                    self.weights.try_as_plain_ram()?.as_slice::<f32>()?,
                    self.bias.try_as_plain_ram()?.as_slice::<f32>()?,
                    y,
                    self.window,
                )
            },
        )
    }
}

impl TypedOp for DepthwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        window_output_facts(inputs, self.window, self.channels, self.batch_axis)
    }

    as_op!();
}

/// [`convolve`] on tract's thread pool when the plan runs on more than one thread (`DETECTOR_THREADS`),
/// by shares of whole channels.
fn convolve_in_parallel(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    y: &mut [f32],
    w: Window,
) -> TractResult<()> {
    let (plane, out_plane, taps) = (
        w.height * w.width,
        w.out_h * w.out_w,
        w.kernel_h * w.kernel_w,
    );
    tract_linalg::multithread::par_chunks_mut(y, out_plane, x.len(), |first, share| {
        let channels = share.len() / out_plane;
        convolve(
            &x[first * plane..][..channels * plane],
            &weights[first * taps..][..channels * taps],
            &bias[first..][..channels],
            share,
            w,
        );
        Ok(())
    })
}

/// The convolution itself: `x` `[channels, height, width]` into `y` `[channels, out_h, out_w]`, with
/// fused multiply-adds where the CPU has them (x86_64 with AVX2 and FMA, checked at run time).
fn convolve(x: &[f32], weights: &[f32], bias: &[f32], y: &mut [f32], w: Window) {
    #[cfg(target_arch = "x86_64")]
    if matches!((w.kernel_h, w.kernel_w), (3, 3) | (5, 5)) && is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above), all `avx512::convolve` asks.
        return unsafe { avx512::convolve(x, weights, bias, y, w) };
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above), all `convolve_avx2_fma` asks.
        return unsafe { convolve_avx2_fma(x, weights, bias, y, w) };
    }
    convolve_with::<Unfused>(x, weights, bias, y, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn convolve_avx2_fma(x: &[f32], weights: &[f32], bias: &[f32], y: &mut [f32], w: Window) {
    convolve_with::<Fused>(x, weights, bias, y, w)
}

/// `a * b + c`: rounded once (`Fused`, only inside code compiled for FMA, where it is one
/// instruction) or twice (`Unfused`).
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

struct Unfused;
impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Fused;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

#[inline(always)]
fn convolve_with<M: MulAdd>(x: &[f32], weights: &[f32], bias: &[f32], y: &mut [f32], w: Window) {
    let mut plane = StridedPlane::new(w);
    let taps = w.kernel_h * w.kernel_w;
    let (input_planes, output_planes) = (
        x.chunks_exact(w.height * w.width),
        y.chunks_exact_mut(w.out_h * w.out_w),
    );
    for (((input, output), filter), &b) in input_planes
        .zip(output_planes)
        .zip(weights.chunks_exact(taps))
        .zip(bias)
    {
        plane.fill(input, 0.0);
        for (oy, out) in output.chunks_exact_mut(w.out_w).enumerate() {
            out.fill(b);
            let r = oy * w.stride_h;
            match (w.kernel_h, w.kernel_w) {
                (3, 3) => {
                    add_window::<M, 3>(out, &plane, r, filter);
                    continue;
                }
                (5, 5) => {
                    add_window::<M, 5>(out, &plane, r, filter);
                    continue;
                }
                _ => {}
            }
            for ky in 0..w.kernel_h {
                let r = oy * w.stride_h + ky;
                let row = &filter[ky * w.kernel_w..][..w.kernel_w];
                match w.kernel_w {
                    3 => add_taps::<M, 3>(out, &plane, r, row),
                    5 => add_taps::<M, 5>(out, &plane, r, row),
                    _ => {
                        for kx in 0..w.kernel_w {
                            add_taps_from::<M, 1>(out, &plane, r, kx, &row[kx..]);
                        }
                    }
                }
            }
        }
    }
}

/// `out += the K x K window starting at padded row r, weighted by filter` (row-major `[K, K]`): one
/// pass over `out` for the whole filter.
#[inline(always)]
fn add_window<M: MulAdd, const K: usize>(
    out: &mut [f32],
    plane: &StridedPlane,
    r: usize,
    filter: &[f32],
) {
    let n = out.len();
    let taps: [[&[f32]; K]; K] =
        std::array::from_fn(|ky| std::array::from_fn(|kx| &plane.taps(r + ky, kx)[..n]));
    let weights: [[f32; K]; K] =
        std::array::from_fn(|ky| std::array::from_fn(|kx| filter[ky * K + kx]));
    for (x, o) in out.iter_mut().enumerate() {
        let mut acc = *o;
        for ky in 0..K {
            for kx in 0..K {
                acc = M::mul_add(weights[ky][kx], taps[ky][kx][x], acc);
            }
        }
        *o = acc;
    }
}

/// `out += sum over kx < K of weights[kx] * (the taps of window column kx in padded row r)`: one pass
/// over `out` for a whole row of the filter.
#[inline(always)]
fn add_taps<M: MulAdd, const K: usize>(
    out: &mut [f32],
    plane: &StridedPlane,
    r: usize,
    weights: &[f32],
) {
    add_taps_from::<M, K>(out, plane, r, 0, weights)
}

/// [`add_taps`] for window columns `first .. first + K`.
#[inline(always)]
fn add_taps_from<M: MulAdd, const K: usize>(
    out: &mut [f32],
    plane: &StridedPlane,
    r: usize,
    first: usize,
    weights: &[f32],
) {
    let n = out.len();
    let taps: [&[f32]; K] = std::array::from_fn(|k| &plane.taps(r, first + k)[..n]);
    let weights: [f32; K] = std::array::from_fn(|k| weights[k]);
    for (x, o) in out.iter_mut().enumerate() {
        let mut acc = *o;
        for k in 0..K {
            acc = M::mul_add(weights[k], taps[k][x], acc);
        }
        *o = acc;
    }
}

/// 3x3 and 5x5 filters with AVX-512: tiles of up to 8 output rows by 1 to 4 vectors of 16 output
/// columns (the last one masked to the row's end), so that 8 independent sums keep the multiply-add
/// units busy; each tap is one broadcast weight times one load from the padded plane per vector.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{StridedPlane, Window};
    use crate::core::engine::avx512_row::{self, LANES};
    use std::arch::x86_64::*;
    /// Vectors of one tile, at most.
    const VECTORS: usize = 4;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn convolve(
        x: &[f32],
        weights: &[f32],
        bias: &[f32],
        y: &mut [f32],
        w: Window,
    ) {
        let mut plane = StridedPlane::new(w);
        let taps = w.kernel_h * w.kernel_w;
        for (((input, output), filter), &b) in x
            .chunks_exact(w.height * w.width)
            .zip(y.chunks_exact_mut(w.out_h * w.out_w))
            .zip(weights.chunks_exact(taps))
            .zip(bias)
        {
            plane.fill(input, 0.0);
            match w.kernel_h {
                3 => channel::<3>(&plane, filter, b, output, w),
                _ => channel::<5>(&plane, filter, b, output, w),
            }
        }
    }

    /// One channel with a `K x K` filter, by blocks of up to [`VECTORS`] vectors of columns.
    #[target_feature(enable = "avx512f")]
    unsafe fn channel<const K: usize>(
        plane: &StridedPlane,
        filter: &[f32],
        bias: f32,
        out: &mut [f32],
        w: Window,
    ) {
        let mut x0 = 0;
        while x0 < w.out_w {
            let (vectors, mask) = avx512_row::split((w.out_w - x0).min(VECTORS * LANES));
            let tile = Tile::<K> {
                values: plane.values(),
                row_len: plane.row_len(),
                columns: std::array::from_fn(|kx| plane.column_offset(kx)),
                filter,
                bias,
                out: out.as_mut_ptr(),
                window: w,
                x0,
                mask,
            };
            // Rows per tile: eight sums in flight.
            let rows = 8 / vectors.min(VECTORS);
            let mut oy = 0;
            while oy < w.out_h {
                if w.out_h - oy >= rows {
                    match vectors {
                        1 => tile.run::<8, 1>(oy),
                        2 => tile.run::<4, 2>(oy),
                        3 => tile.run::<2, 3>(oy),
                        _ => tile.run::<2, 4>(oy),
                    }
                    oy += rows;
                } else {
                    match vectors {
                        1 => tile.run::<1, 1>(oy),
                        2 => tile.run::<1, 2>(oy),
                        3 => tile.run::<1, 3>(oy),
                        _ => tile.run::<1, 4>(oy),
                    }
                    oy += 1;
                }
            }
            x0 += VECTORS * LANES;
        }
    }

    /// Output columns `x0..` (the last vector masked) of one channel.
    struct Tile<'a, const K: usize> {
        /// The padded, phase-split plane (`StridedPlane::values`).
        values: &'a [f32],
        row_len: usize,
        /// Where each window column's taps start in a padded row.
        columns: [usize; K],
        filter: &'a [f32],
        bias: f32,
        /// The channel's `[out_h, out_w]` output.
        out: *mut f32,
        window: Window,
        x0: usize,
        mask: __mmask16,
    }

    impl<const K: usize> Tile<'_, K> {
        /// Output rows `oy..oy + R`, `V` vectors of columns.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn run<const R: usize, const V: usize>(&self, oy: usize) {
            let w = self.window;
            let mut acc = [[_mm512_set1_ps(self.bias); V]; R];
            for ky in 0..K {
                for kx in 0..K {
                    let weight = _mm512_set1_ps(self.filter[ky * K + kx]);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let row = (oy + r) * w.stride_h + ky;
                        let start = row * self.row_len + self.columns[kx] + self.x0;
                        debug_assert!(start + w.out_w - self.x0 <= self.values.len());
                        let src = self.values.as_ptr().add(start);
                        let xs = avx512_row::load::<V>(src, self.mask);
                        for (acc, &x) in acc.iter_mut().zip(&xs) {
                            *acc = _mm512_fmadd_ps(weight, x, *acc);
                        }
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let dst = self.out.add((oy + r) * w.out_w + self.x0);
                avx512_row::store::<V>(dst, self.mask, acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::strided_plane::test_support::{pseudo_random, run, square_window};
    use super::*;

    /// A model of one depthwise convolution of a `[1, channels, h, w]` input (NCHW), or of a
    /// `[channels, h, w]` one (CHW) when `batch_axis` is false.
    fn conv_model(
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
        let kernel = model
            .add_const("kernel", pseudo_random(&[channels, 1, k, k], 1))
            .unwrap();
        let bias = model
            .add_const("bias", pseudo_random(&[channels], 2))
            .unwrap();
        let conv = Conv {
            pool_spec,
            kernel_fmt: KernelFormat::OIHW,
            group: channels,
            q_params: None,
        };
        let y = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    #[test]
    fn depthwise_convolutions_agree_with_tracts_own() {
        // PicoDet-S's kernels and strides, on odd and even sizes (stride 2 on an odd size has a
        // window hanging over the bottom and right edge).
        for (channels, h, w, k, stride) in [
            (3, 7, 9, 3, 1),
            (4, 8, 6, 3, 2),
            (5, 13, 13, 5, 1),
            (2, 13, 11, 5, 2),
            (3, 1, 1, 3, 1),
            (2, 2, 3, 5, 2),
            // Rows wider than a vector: two blocks of vectors (70 = 64 + 6), 2 and 3 vectors, tiles
            // of rows with a remainder (19 and 37 rows).
            (2, 19, 70, 3, 1),
            (3, 19, 40, 5, 2),
            (2, 37, 33, 5, 1),
            (2, 21, 47, 3, 2),
        ] {
            for batch_axis in [true, false] {
                let shape: &[usize] = if batch_axis {
                    &[1, channels, h, w]
                } else {
                    &[channels, h, w]
                };
                let input = pseudo_random(shape, 3);
                let want = run(conv_model(channels, h, w, k, stride, batch_axis), &input);
                let mut model = conv_model(channels, h, w, k, stride, batch_axis);
                assert_eq!(rewrite_depthwise(&mut model).unwrap(), 1);
                assert!(model.nodes.iter().any(|n| n.op_is::<DepthwiseConv>()));
                let got = run(model, &input);
                assert_eq!(got.len(), want.len());
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst < 1e-5,
                    "{shape:?}, {k}x{k} stride {stride}: max abs diff {worst}"
                );
            }
        }
    }

    #[test]
    fn fused_and_unfused_multiply_adds_agree() {
        let w = Window {
            height: 9,
            width: 11,
            kernel_h: 5,
            kernel_w: 5,
            stride_h: 2,
            stride_w: 2,
            pad_top: 2,
            pad_left: 2,
            out_h: 5,
            out_w: 6,
        };
        let values = |n: usize, seed: usize| -> Vec<f32> {
            let t = pseudo_random(&[n], seed);
            t.try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap()
                .to_vec()
        };
        let (x, k, b) = (values(3 * 99, 1), values(3 * 25, 2), values(3, 3));
        let mut unfused = vec![0f32; 3 * 30];
        convolve_with::<Unfused>(&x, &k, &b, &mut unfused, w);
        let mut fused = vec![0f32; 3 * 30];
        convolve_with::<Fused>(&x, &k, &b, &mut fused, w);
        let mut dispatched = vec![0f32; 3 * 30];
        convolve(&x, &k, &b, &mut dispatched, w);
        for (a, f) in unfused.iter().zip(&fused) {
            assert!((a - f).abs() < 1e-5, "{a} vs {f}");
        }
        assert!(dispatched == fused || dispatched == unfused);
    }

    #[test]
    fn grouped_and_dense_convolutions_are_left_to_tract() {
        // group 1: a dense convolution.
        let mut model = conv_model(1, 6, 6, 3, 1, true);
        assert_eq!(rewrite_depthwise(&mut model).unwrap(), 0);
    }
}
