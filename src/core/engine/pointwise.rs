//! 1x1 convolutions as the project's own matrix product, straight from the channels-first map: output
//! channel `o` at pixel `p` is `bias[o] + sum over k of weights[o][k] * x[k][p]`. tract runs them as its
//! general matrix product, which first copies the map into its packed layout (`OptMatMulPack`) and, on
//! AVX-512, picks a 16x12 tile that spends as many loads as multiply-adds. Here a tile is 6 output
//! channels by up to 64 pixels (24 accumulators, 10 loads for 24 multiply-adds), read from the map's
//! rows as they are: no packing. PP-PicoDet-S has 90 of them on maps of 7x7 to 104x104 pixels, over half
//! of its inference under tract (`cargo bench --bench profile_ops`).
//!
//! tract's declutter has already turned each 1x1 convolution into an `EinSum` (and folded channel
//! shuffles and concatenations into some of them, so one may contract over two input axes), followed by
//! an `Add` of the bias. The rewrite takes an `EinSum` whose first input is a concrete f32 map laid out
//! as `[contracted axes..., pixel axes...]` (axes of size one anywhere), whose second input is a
//! constant holding the output-channel axis and the contracted axes in any order, and whose output is
//! `[output channels, pixel axes...]` in the same pixel order; and the `Add` of a constant per output
//! channel after it when it is the product's only reader. Maps smaller than [`MIN_PIXELS`] (the
//! squeeze-and-excitation vectors) stay with tract.

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::Add;

use super::rewrites::rewrite_each;

/// Pixels below which a product stays with tract: a tile row of the AVX-512 kernel.
pub const MIN_PIXELS: usize = 16;

/// Output channels of one tile.
const ROWS: usize = 6;

/// Rewrites every product [`PointwiseConv`] takes; returns how many. Anything else is left as it was.
pub fn rewrite_pointwise(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_each::<EinSum>(model, |model, node, op| {
        let Some(mut conv) = recognise(model, node, op)? else {
            return Ok(None);
        };
        // The bias `Add` that follows, folded in when nothing else reads the product.
        let mut last = OutletId::new(node.id, 0);
        if let [succ] = &node.outputs[0].successors[..] {
            let add = model.node(succ.node);
            if let Some(bias) = bias_of(model, add, succ.slot, &conv)? {
                conv.bias = Arc::new(tensor1(&bias));
                last = OutletId::new(add.id, 0);
            }
        }
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, conv, &[x])?[0];
        patch.shunt_outside(model, last, y)?;
        Ok(Some(patch))
    })
}

/// The replacement of a product this kernel takes, with a zero bias.
fn recognise(
    model: &TypedModel,
    node: &TypedNode,
    op: &EinSum,
) -> TractResult<Option<PointwiseConv>> {
    if op.q_params.is_some() || op.operating_dt != f32::datum_type() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let (x, w) = (
        model.outlet_fact(node.inputs[0])?,
        model.outlet_fact(node.inputs[1])?,
    );
    let y = model.outlet_fact(OutletId::new(node.id, 0))?;
    let (Some(x_shape), Some(w_shape), Some(y_shape), Some(weights)) = (
        x.shape.as_concrete(),
        w.shape.as_concrete(),
        y.shape.as_concrete(),
        w.konst.as_ref(),
    ) else {
        return Ok(None);
    };
    if x.datum_type != f32::datum_type() || w.datum_type != f32::datum_type() || x.konst.is_some() {
        return Ok(None);
    }
    let axes = &op.axes;
    let position = |positions: &TVec<usize>| -> Option<Option<usize>> {
        match positions[..] {
            [] => Some(None),
            [p] => Some(Some(p)),
            _ => None,
        }
    };
    // Each axis of size more than one: (position in x, in w, in y).
    let mut contracted = Vec::new(); // (x position, w position)
    let mut pixels = Vec::new(); // (x position, y position)
    let mut out_channel = None; // (w position, y position)
    for axis in axes.iter_all_axes() {
        let (Some(in_x), Some(in_w), Some(in_y)) = (
            position(&axis.inputs[0]),
            position(&axis.inputs[1]),
            position(&axis.outputs[0]),
        ) else {
            return Ok(None);
        };
        let size = in_x
            .map(|p| x_shape[p])
            .or(in_w.map(|p| w_shape[p]))
            .or(in_y.map(|p| y_shape[p]))
            .unwrap_or(1);
        if size == 1 {
            continue;
        }
        match (in_x, in_w, in_y) {
            (Some(px), Some(pw), None) => contracted.push((px, pw)),
            (Some(px), None, Some(py)) => pixels.push((px, py)),
            (None, Some(pw), Some(py)) if out_channel.is_none() => out_channel = Some((pw, py)),
            _ => return Ok(None),
        }
    }
    // A single output channel has no axis of its own.
    let (o_in_w, o_in_y) = out_channel.unzip();
    contracted.sort_unstable();
    pixels.sort_unstable();
    // In x, every contracted axis before every pixel axis; in y, the output channels before the pixel
    // axes, which keep x's order.
    let last_contracted = contracted.last().map(|c| c.0);
    let first_pixel = pixels.first().map(|p| p.0);
    if let (Some(c), Some(p)) = (last_contracted, first_pixel) {
        if c > p {
            return Ok(None);
        }
    }
    if pixels.windows(2).any(|pair| pair[0].1 > pair[1].1)
        || pixels.first().zip(o_in_y).is_some_and(|(p, o)| p.1 < o)
    {
        return Ok(None);
    }
    let k: usize = contracted.iter().map(|c| x_shape[c.0]).product();
    let pixel_count: usize = pixels.iter().map(|p| x_shape[p.0]).product();
    let o = o_in_w.map_or(1, |axis| w_shape[axis]);
    if pixel_count < MIN_PIXELS || k == 0 {
        return Ok(None);
    }
    // The weights as [output channel][contracted axes in x's order].
    let w_view = weights.to_plain_array_view::<f32>()?;
    let mut order: Vec<usize> = o_in_w.into_iter().collect();
    order.extend(contracted.iter().map(|c| c.1));
    let unit: Vec<usize> = (0..w_shape.len()).filter(|a| !order.contains(a)).collect();
    let mut permutation = order.clone();
    permutation.extend(&unit);
    let permuted = w_view.permuted_axes(permutation);
    let matrix: Vec<f32> = permuted.iter().copied().collect();
    debug_assert_eq!(matrix.len(), o * k);
    Ok(Some(PointwiseConv::new(
        &matrix,
        vec![0.0; o],
        k,
        pixel_count,
        y_shape.into(),
    )))
}

/// The per-output-channel bias `add` (reading the product at `slot`) adds, when it is an `Add` of a
/// constant that varies along the output channels at most and keeps the product's shape.
fn bias_of(
    model: &TypedModel,
    add: &TypedNode,
    slot: usize,
    conv: &PointwiseConv,
) -> TractResult<Option<Vec<f32>>> {
    let Some(bin) = add.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if !bin.0.is::<Add>() || add.inputs.len() != 2 {
        return Ok(None);
    }
    let other = model.outlet_fact(add.inputs[1 - slot])?;
    let output = model.outlet_fact(OutletId::new(add.id, 0))?;
    let (Some(konst), Some(shape)) = (other.konst.as_ref(), output.shape.as_concrete()) else {
        return Ok(None);
    };
    if shape != &conv.output_shape[..] || other.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let o = conv.outputs();
    let values = konst.try_as_plain_ram()?;
    let values = values.as_slice::<f32>()?;
    // A scalar, or a constant of the output's rank whose only axis of size more than one is the output
    // channels' (the axis holding `o` values in the output).
    let rank_matches = konst.rank() == shape.len();
    let channel_axis = shape.iter().position(|&d| d == o && d != 1);
    let along_channels = rank_matches
        && channel_axis.is_some_and(|axis| {
            shape[..axis].iter().all(|&d| d == 1)
                && konst
                    .shape()
                    .iter()
                    .enumerate()
                    .all(|(i, &d)| d == 1 || i == axis)
        });
    Ok(match values.len() {
        1 => Some(vec![values[0]; o]),
        n if n == o && along_channels => Some(values.to_vec()),
        _ => None,
    })
}

/// A 1x1 convolution on a channels-first map of `pixels` pixels: `[inputs, pixels]` (in memory; any
/// shape with that layout) to `output_shape`, laid out `[outputs, pixels]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PointwiseConv {
    inputs: usize,
    pixels: usize,
    output_shape: TVec<usize>,
    /// `[inputs][outputs + ROWS - 1]`: each input channel's weights for every output channel, then
    /// zeros, so a tile of [`ROWS`] output channels starting at any channel reads inside.
    weights: Arc<Tensor>,
    bias: Arc<Tensor>,
}

impl PointwiseConv {
    /// From the weights as `[outputs][inputs]`.
    fn new(
        matrix: &[f32],
        bias: Vec<f32>,
        inputs: usize,
        pixels: usize,
        output_shape: TVec<usize>,
    ) -> PointwiseConv {
        let outputs = bias.len();
        let stride = outputs + ROWS - 1;
        let mut packed = vec![0f32; inputs * stride];
        for (o, row) in matrix.chunks_exact(inputs).enumerate() {
            for (k, &v) in row.iter().enumerate() {
                packed[k * stride + o] = v;
            }
        }
        PointwiseConv {
            inputs,
            pixels,
            output_shape,
            weights: Arc::new(tensor1(&packed)),
            bias: Arc::new(tensor1(&bias)),
        }
    }

    fn outputs(&self) -> usize {
        self.output_shape.iter().product::<usize>() / self.pixels
    }
}

impl Op for PointwiseConv {
    fn name(&self) -> StaticName {
        "ProjectPointwiseConv".into()
    }

    op_as_typed_op!();
}

impl EvalOp for PointwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1);
        let x = inputs[0].try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        ensure!(x.len() == self.inputs * self.pixels);
        let weights = self.weights.try_as_plain_ram()?;
        let weights = weights.as_slice::<f32>()?;
        let bias = self.bias.try_as_plain_ram()?;
        let bias = bias.as_slice::<f32>()?;
        // SAFETY: every element is written below before the tensor is read.
        let mut y = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        let product = Product {
            x,
            weights,
            bias,
            inputs: self.inputs,
            pixels: self.pixels,
        };
        let mut out = y.try_as_plain_ram_mut()?;
        let out = out.as_slice_mut::<f32>()?;
        tract_linalg::multithread::par_chunks_mut(
            out,
            self.pixels,
            self.inputs * self.pixels,
            |first, rows| {
                product.rows(first, rows);
                Ok(())
            },
        )?;
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for PointwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        ensure!(
            inputs[0]
                .shape
                .as_concrete()
                .map(|s| s.iter().product::<usize>())
                == Some(self.inputs * self.pixels)
        );
        Ok(tvec!(f32::fact(&self.output_shape)))
    }

    as_op!();
}

/// One evaluation's operands.
struct Product<'a> {
    /// `[inputs][pixels]`
    x: &'a [f32],
    /// `[inputs][outputs + ROWS - 1]`, see [`PointwiseConv::weights`].
    weights: &'a [f32],
    bias: &'a [f32],
    inputs: usize,
    pixels: usize,
}

impl Product<'_> {
    /// Output channels `first..` into `rows` (whole rows of `pixels`).
    fn rows(&self, first: usize, rows: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above), all `rows_avx512` asks.
            return unsafe { avx512::rows(self, first, rows) };
        }
        self.rows_portable(first, rows)
    }

    /// [`Product::rows`] in plain Rust: what runs without AVX-512, and what the kernel is tested
    /// against.
    fn rows_portable(&self, first: usize, rows: &mut [f32]) {
        let stride = self.weights.len() / self.inputs;
        for (i, row) in rows.chunks_exact_mut(self.pixels).enumerate() {
            let o = first + i;
            row.fill(self.bias[o]);
            for (k, x_row) in self.x.chunks_exact(self.pixels).enumerate() {
                let w = self.weights[k * stride + o];
                for (y, &x) in row.iter_mut().zip(x_row) {
                    *y += w * x;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Product, ROWS};
    use crate::core::engine::avx512_row::{self, LANES};
    use std::arch::x86_64::*;
    /// Vectors of pixels in one tile.
    const VECTORS: usize = 4;

    /// [`Product::rows`] by tiles of [`ROWS`] output channels by up to `VECTORS * LANES` pixels, the
    /// last vector of a pixel block masked to the pixels left.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(product: &Product, first: usize, rows: &mut [f32]) {
        let p = product.pixels;
        let count = rows.len() / p;
        let stride = product.weights.len() / product.inputs;
        let mut start = 0;
        while start < p {
            let (vectors, mask) = avx512_row::split((p - start).min(VECTORS * LANES));
            let mut r = 0;
            while r < count {
                let tile = Tile {
                    x: product.x.as_ptr().add(start),
                    weights: product.weights.as_ptr().add(first + r),
                    bias: &product.bias[first + r..],
                    y: rows.as_mut_ptr().add(r * p + start),
                    rows: (count - r).min(ROWS),
                    pixels: p,
                    stride,
                    inputs: product.inputs,
                    mask,
                };
                match vectors {
                    1 => tile.run::<1>(),
                    2 => tile.run::<2>(),
                    3 => tile.run::<3>(),
                    _ => tile.run::<4>(),
                }
                r += ROWS;
            }
            start += VECTORS * LANES;
        }
    }

    /// One tile: `rows` output channels from `y`, `V` vectors of pixels from `x` (the last masked).
    struct Tile<'a> {
        x: *const f32,
        weights: *const f32,
        bias: &'a [f32],
        y: *mut f32,
        rows: usize,
        pixels: usize,
        stride: usize,
        inputs: usize,
        mask: __mmask16,
    }

    impl Tile<'_> {
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn run<const V: usize>(&self) {
            let mut acc = [[_mm512_setzero_ps(); V]; ROWS];
            for k in 0..self.inputs {
                let xv = avx512_row::load::<V>(self.x.add(k * self.pixels), self.mask);
                let w = self.weights.add(k * self.stride);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(*w.add(r));
                    for v in 0..V {
                        acc[v] = _mm512_fmadd_ps(b, xv[v], acc[v]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(self.rows) {
                let b = _mm512_set1_ps(self.bias[r]);
                let mut row = *acc;
                for value in &mut row {
                    *value = _mm512_add_ps(*value, b);
                }
                avx512_row::store::<V>(self.y.add(r * self.pixels), self.mask, &row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::strided_plane::test_support::{pseudo_random, run};
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// A model of one 1x1 convolution of a `[1, inputs, h, w]` map into `outputs` channels, decluttered
    /// as the engine does before its rewrites (the convolution is then an `EinSum` and an `Add`).
    fn conv_model(inputs: usize, outputs: usize, h: usize, w: usize) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, inputs, h, w])).unwrap();
        let kernel = model
            .add_const("kernel", pseudo_random(&[outputs, inputs, 1, 1], 1))
            .unwrap();
        let bias = model
            .add_const("bias", pseudo_random(&[outputs], 2))
            .unwrap();
        let pool_spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec!(1, 1),
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: None,
            input_channels: inputs,
            output_channels: outputs,
        };
        let conv = Conv {
            pool_spec,
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let y = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap();
        model.select_output_outlets(&y).unwrap();
        super::super::tract::declutter(&mut model).unwrap();
        model
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        let worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "{what}: max abs diff {worst}");
    }

    fn count(model: &TypedModel) -> usize {
        model
            .nodes
            .iter()
            .filter(|n| n.op_is::<PointwiseConv>())
            .count()
    }

    #[test]
    fn pointwise_convolutions_agree_with_tracts_own() {
        // Output channels that fill no tile (1, 5, 7, 44), pixels that fill no vector or block
        // (4x4, 13x13, 9x11), one input channel, and more inputs than fit in the first-level cache.
        for (inputs, outputs, h, w) in [
            (3, 5, 4, 4),
            (1, 7, 9, 11),
            (24, 44, 13, 13),
            (96, 96, 8, 8),
            (8, 1, 5, 20),
            (384, 12, 13, 13),
        ] {
            let input = pseudo_random(&[1, inputs, h, w], 3);
            let want = run(conv_model(inputs, outputs, h, w), &input);
            let mut model = conv_model(inputs, outputs, h, w);
            assert_eq!(rewrite_pointwise(&mut model).unwrap(), 1);
            assert_eq!(count(&model), 1);
            // The bias `Add` went into the operator.
            assert!(!model.nodes.iter().any(|n| n.op_is::<TypedBinOp>()));
            let got = run(model, &input);
            assert_close(&got, &want, &format!("{inputs}->{outputs} on {h}x{w}"));
        }
    }

    #[test]
    fn a_contraction_over_two_axes_reads_them_in_the_maps_order() {
        // What tract's declutter makes of a channel shuffle before a 1x1 convolution: the map's two
        // channel axes contracted with a weight tensor that holds them in another order.
        for expr in ["aIhw,OaI->Ohw", "Iahw,OaI->Ohw", "aIhw,aIO->NOhw"] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([2, 3, 6, 5])).unwrap();
            let weights = match expr {
                "aIhw,aIO->NOhw" => pseudo_random(&[2, 3, 7], 4),
                "Iahw,OaI->Ohw" => pseudo_random(&[7, 3, 2], 4),
                _ => pseudo_random(&[7, 2, 3], 4),
            };
            let (x_shape, w) = if expr.starts_with("Iahw") {
                ([3, 2, 6, 5], pseudo_random(&[7, 2, 3], 4))
            } else {
                ([2, 3, 6, 5], weights)
            };
            model.nodes[x.node].outputs[0].fact = f32::fact(x_shape);
            let w = model.add_const("w", w).unwrap();
            let op = EinSum::new(expr.parse().unwrap(), f32::datum_type());
            let y = model.wire_node("product", op, &[x, w]).unwrap();
            model.select_output_outlets(&y).unwrap();
            let input = pseudo_random(&x_shape, 5);
            let want = run(model.clone(), &input);
            assert_eq!(rewrite_pointwise(&mut model).unwrap(), 1, "{expr}");
            let got = run(model, &input);
            assert_close(&got, &want, expr);
        }
    }

    #[test]
    fn small_maps_and_channels_last_maps_are_left_to_tract() {
        // 3x3 pixels: fewer than a vector.
        let mut model = conv_model(8, 8, 3, 3);
        assert_eq!(rewrite_pointwise(&mut model).unwrap(), 0);
        // Channels after the pixels: the rows of the map are not the contracted axis.
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([6, 5, 4])).unwrap();
        let w = model.add_const("w", pseudo_random(&[3, 4], 1)).unwrap();
        let op = EinSum::new("hwI,OI->Ohw".parse().unwrap(), f32::datum_type());
        let y = model.wire_node("product", op, &[x, w]).unwrap();
        model.select_output_outlets(&y).unwrap();
        assert_eq!(rewrite_pointwise(&mut model).unwrap(), 0);
    }

    #[test]
    fn an_add_that_is_not_a_per_channel_bias_stays_an_add() {
        // A constant that varies along the pixels: the product is rewritten, the `Add` kept.
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([4, 4, 5])).unwrap();
        let w = model.add_const("w", pseudo_random(&[6, 4], 1)).unwrap();
        let op = EinSum::new("Ihw,OI->Ohw".parse().unwrap(), f32::datum_type());
        let y = model.wire_node("product", op, &[x, w]).unwrap()[0];
        let c = model.add_const("c", pseudo_random(&[1, 4, 5], 2)).unwrap();
        let z = model
            .wire_node("add", tract_onnx::tract_core::ops::math::add(), &[y, c])
            .unwrap();
        model.select_output_outlets(&z).unwrap();
        let input = pseudo_random(&[4, 4, 5], 3);
        let want = run(model.clone(), &input);
        assert_eq!(rewrite_pointwise(&mut model).unwrap(), 1);
        assert!(model.nodes.iter().any(|n| n.op_is::<TypedBinOp>()));
        assert_close(&run(model, &input), &want, "pixel-wise add");
    }

    #[test]
    fn the_kernel_and_the_portable_loop_agree() {
        // Every tile width (1 to 4 vectors, full and masked) and partial tiles of output channels.
        let (inputs, outputs, pixels) = (37, 13, 16 * 4 * 2 + 16 * 2 + 5);
        let values = |n: usize, seed: usize| -> Vec<f32> {
            let t = pseudo_random(&[n], seed);
            t.try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap()
                .to_vec()
        };
        let conv = PointwiseConv::new(
            &values(inputs * outputs, 1),
            values(outputs, 2),
            inputs,
            pixels,
            tvec!(outputs, pixels),
        );
        let x = values(inputs * pixels, 3);
        let weights = conv.weights.try_as_plain_ram().unwrap();
        let bias = conv.bias.try_as_plain_ram().unwrap();
        let product = Product {
            x: &x,
            weights: weights.as_slice::<f32>().unwrap(),
            bias: bias.as_slice::<f32>().unwrap(),
            inputs,
            pixels,
        };
        let mut portable = vec![0f32; outputs * pixels];
        product.rows_portable(0, &mut portable);
        // From the first channel, and from a channel inside a tile (as a thread's share may start).
        for first in [0, 5] {
            let mut dispatched = vec![f32::NAN; (outputs - first) * pixels];
            product.rows(first, &mut dispatched);
            assert_close(&dispatched, &portable[first * pixels..], "kernel");
        }
        // The portable loop itself against a direct sum.
        let stride = outputs + ROWS - 1;
        let w = product.weights;
        for (o, p) in [(0, 0), (12, pixels - 1), (7, 70)] {
            let want: f32 = bias.as_slice::<f32>().unwrap()[o]
                + (0..inputs)
                    .map(|k| w[k * stride + o] * x[k * pixels + p])
                    .sum::<f32>();
            assert!((portable[o * pixels + p] - want).abs() < 1e-4);
        }
    }
}
