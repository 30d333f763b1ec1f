//! 3x3 convolutions by Winograd's minimal filtering, F(2x2, 3x3): each 2x2 block of outputs from a 4x4
//! block of input takes 16 multiplications per input and output channel instead of 36, so the matrix
//! products that dominate the model's run time shrink by 2.25x. The rest is additions.
//!
//! A convolution tract would run as im2col and one matrix product becomes three nodes:
//!
//! 1. [`WinogradInput`]: every overlapping 4x4 input tile `d` (stride 2, the convolution's zero padding
//!    of one around the map) to `Bᵀ d B`, laid out as 16 matrices of `channels x tiles`;
//! 2. tract's own batched matrix product with the 16 transformed kernels `G g Gᵀ` (computed once, when
//!    the plan is built), so the multiply-adds run on tract's vectorised kernels;
//! 3. [`WinogradOutput`]: each tile's 4x4 product to its 2x2 outputs, `Aᵀ m A`, plus the bias, written
//!    back as the convolution's NCHW output.
//!
//! Taken for group-1, stride-1, undilated 3x3 float convolutions with a padding of one on every side
//! (output the size of the input), batch 1, constant weights: every 3x3 convolution of the embedded
//! model but its stride-2 ones. The transforms are exact in real arithmetic; in float they round
//! differently from a direct sum, by about 1e-6 of the values here (tests below and the parity tests).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::rewrites::rewrite_each;

/// Rewrites every convolution Winograd's F(2x2, 3x3) applies to (see the module documentation);
/// returns how many. Anything else is left as it was.
pub fn rewrite_convolutions(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_convolutions_with(model, Scratch::FOR_THIS_BUILD)
}

/// [`rewrite_convolutions`] with the transforms' outputs allocated as `scratch` says (the tests run
/// both kinds in every build).
fn rewrite_convolutions_with(model: &mut TypedModel, scratch: Scratch) -> TractResult<usize> {
    rewrite_each::<Conv>(model, |model, node, op| {
        eligible(model, node, op)?
            .map(|geometry| replacement(model, node, geometry, scratch))
            .transpose()
    })
}

/// How a transform's output tensor is allocated. Both transforms write every element of their
/// output before anything reads it (see each one's "Writes" paragraph), so it need not be zeroed:
/// zeroing the tiles first would be a second pass over about 60 MB per inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scratch {
    /// Left as the allocator gives it: what release builds run.
    Uninitialized,
    /// Filled with NaN, so an element a transform missed shows in every comparison: debug builds.
    Nan,
}

impl Scratch {
    const FOR_THIS_BUILD: Scratch = if cfg!(debug_assertions) {
        Scratch::Nan
    } else {
        Scratch::Uninitialized
    };

    fn tensor(self, shape: &[usize]) -> TractResult<Tensor> {
        match self {
            Scratch::Nan => {
                let mut t = Tensor::zero::<f32>(shape)?;
                t.fill_t(f32::NAN)?;
                Ok(t)
            }
            // SAFETY: f32 has no invalid bit patterns, and the tensor goes only to a transform that
            // writes every element of it (the invariant stated at `input_transform` and
            // `output_transform`, checked on the NaN-filled tensor by the tests) before it is read.
            Scratch::Uninitialized => unsafe { Tensor::uninitialized::<f32>(shape) },
        }
    }
}

/// Sizes of one eligible convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Geometry {
    channels: usize,
    outputs: usize,
    height: usize,
    width: usize,
}

impl Geometry {
    fn tiles_y(&self) -> usize {
        self.height.div_ceil(2)
    }
    fn tiles_x(&self) -> usize {
        self.width.div_ceil(2)
    }
    fn tiles(&self) -> usize {
        self.tiles_y() * self.tiles_x()
    }
}

fn eligible(model: &TypedModel, node: &TypedNode, op: &Conv) -> TractResult<Option<Geometry>> {
    let spec = &op.pool_spec;
    if op.q_params.is_some()
        || op.group != 1
        || op.kernel_fmt != KernelFormat::OIHW
        || spec.data_format != DataFormat::NCHW
        || spec.kernel_shape.as_slice() != [3, 3]
        || spec.strides().iter().any(|&s| s != 1)
        || spec.dilations().iter().any(|&d| d != 1)
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(None);
    };
    if input.datum_type != f32::datum_type() || shape.len() != 4 || shape[0] != 1 {
        return Ok(None);
    }
    let padding = spec.computed_padding(&shape[2..]);
    if padding
        .iter()
        .any(|p| p.pad_before != 1 || p.pad_after != 1)
    {
        return Ok(None);
    }
    let kernel = model.outlet_fact(node.inputs[1])?;
    let bias = model.outlet_fact(node.inputs[2])?;
    if kernel.konst.is_none() || bias.konst.is_none() || kernel.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let geometry = Geometry {
        channels: shape[1],
        outputs: spec.output_channels,
        height: shape[2],
        width: shape[3],
    };
    if kernel.shape.as_concrete() != Some(&[geometry.outputs, geometry.channels, 3, 3][..]) {
        return Ok(None);
    }
    Ok(Some(geometry))
}

/// `G g Gᵀ` for every kernel, as 16 matrices of `outputs x channels` (`[16, outputs, channels]`).
fn transformed_kernels(kernel: &[f32], geometry: Geometry) -> Tensor {
    let (outputs, channels) = (geometry.outputs, geometry.channels);
    let mut u = vec![0f32; 16 * outputs * channels];
    for o in 0..outputs {
        for c in 0..channels {
            let g = &kernel[(o * channels + c) * 9..][..9];
            // G g: 4x3, then (G g) Gᵀ: 4x4, with G = [[1,0,0],[½,½,½],[½,-½,½],[0,0,1]].
            let mut gg = [[0f32; 3]; 4];
            for col in 0..3 {
                let (a, b, c2) = (g[col], g[3 + col], g[6 + col]);
                gg[0][col] = a;
                gg[1][col] = 0.5 * (a + b + c2);
                gg[2][col] = 0.5 * (a - b + c2);
                gg[3][col] = c2;
            }
            for (i, row) in gg.iter().enumerate() {
                let [a, b, c2] = *row;
                let transformed = [a, 0.5 * (a + b + c2), 0.5 * (a - b + c2), c2];
                for (j, value) in transformed.into_iter().enumerate() {
                    u[((i * 4 + j) * outputs + o) * channels + c] = value;
                }
            }
        }
    }
    tensor1(&u)
        .into_shape(&[16, outputs, channels])
        .expect("16 x outputs x channels values")
}

fn replacement(
    model: &TypedModel,
    node: &TypedNode,
    geometry: Geometry,
    scratch: Scratch,
) -> TractResult<TypedModelPatch> {
    let kernel = model
        .outlet_fact(node.inputs[1])?
        .konst
        .clone()
        .context("constant kernel")?;
    let kernel = kernel.cast_to::<f32>()?;
    let kernel = kernel.try_as_plain_ram()?;
    let bias = model
        .outlet_fact(node.inputs[2])?
        .konst
        .clone()
        .context("constant bias")?;
    let bias = bias.cast_to::<f32>()?;
    let bias = bias.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let bias = match bias.len() {
        1 => vec![bias[0]; geometry.outputs],
        n if n == geometry.outputs => bias,
        n => bail!("a bias of {n} values for {} outputs", geometry.outputs),
    };

    let mut patch = TypedModelPatch::default();
    let name = &node.name;
    let x = patch.tap_model(model, node.inputs[0])?;
    let v = patch.wire_node(
        format!("{name}.winograd_input"),
        WinogradInput { geometry, scratch },
        &[x],
    )?[0];
    let u = patch.add_const(
        format!("{name}.winograd_kernels"),
        transformed_kernels(kernel.as_slice::<f32>()?, geometry),
    )?;
    let m = patch.wire_node(
        format!("{name}.winograd_products"),
        EinSum::new("bmk,bkn->bmn".parse()?, f32::datum_type()),
        &[u, v],
    )?[0];
    let bias = patch.add_const(format!("{name}.bias"), tensor1(&bias))?;
    let y = patch.wire_node(name, WinogradOutput { geometry, scratch }, &[m, bias])?[0];
    patch.shunt_outside(model, OutletId::new(node.id, 0), y)?;
    Ok(patch)
}

/// `[1, channels, height, width]` to the transformed tiles, `[16, channels, tiles]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WinogradInput {
    geometry: Geometry,
    scratch: Scratch,
}

impl Op for WinogradInput {
    fn name(&self) -> StaticName {
        "WinogradInput".into()
    }

    op_as_typed_op!();
}

impl EvalOp for WinogradInput {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let g = self.geometry;
        let x = input.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        ensure!(x.len() == g.channels * g.height * g.width);
        let mut v = self.scratch.tensor(&[16, g.channels, g.tiles()])?;
        input_transform(x, v.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?, g);
        Ok(tvec!(v.into_tvalue()))
    }
}

impl TypedOp for WinogradInput {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = self.geometry;
        ensure!(inputs[0].shape.as_concrete() == Some(&[1, g.channels, g.height, g.width][..]));
        Ok(tvec!(f32::fact([16, g.channels, g.tiles()])))
    }

    as_op!();
}

/// The 16 transformed products, `[16, outputs, tiles]`, and the bias to the convolution's output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WinogradOutput {
    geometry: Geometry,
    scratch: Scratch,
}

impl Op for WinogradOutput {
    fn name(&self) -> StaticName {
        "WinogradOutput".into()
    }

    op_as_typed_op!();
}

impl EvalOp for WinogradOutput {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (m, bias) = args_2!(inputs);
        let g = self.geometry;
        let m = m.try_as_plain_ram()?;
        let m = m.as_slice::<f32>()?;
        let bias = bias.try_as_plain_ram()?;
        let bias = bias.as_slice::<f32>()?;
        ensure!(m.len() == 16 * g.outputs * g.tiles() && bias.len() == g.outputs);
        let mut y = self.scratch.tensor(&[1, g.outputs, g.height, g.width])?;
        output_transform(m, bias, y.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?, g);
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for WinogradOutput {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = self.geometry;
        ensure!(inputs[0].shape.as_concrete() == Some(&[16, g.outputs, g.tiles()][..]));
        Ok(tvec!(f32::fact([1, g.outputs, g.height, g.width])))
    }

    as_op!();
}

/// `Bᵀ d B` for every tile, with `Bᵀ = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]`. Tile `(ty, tx)`
/// reads input rows `2ty-1 ..= 2ty+2` and columns `2tx-1 ..= 2tx+2`, zero outside the map.
///
/// Rows of the zero-padded map are split into even and odd columns first, so every step after that is
/// an element-wise operation over contiguous slices, which the compiler vectorises.
///
/// Writes every element of `v` (`[16, channels, tiles]`): for each channel `c` and tile row `ty`, the
/// loop over `i` in 0..4 writes, through `v0..v3`, the positions `i * 4 + j` for `j` in 0..4, each
/// over the `tx_count` tiles of that row; `c` covers 0..channels and `ty` 0..tiles_y, and
/// `tiles = tiles_y * tx_count`, so each (position, channel, tile) is written once.
fn input_transform(x: &[f32], v: &mut [f32], g: Geometry) {
    let (ty_count, tx_count) = (g.tiles_y(), g.tiles_x());
    let tiles = g.tiles();
    // Padded column s (0-based, s = input column + 1) goes to even[s / 2] or odd[s / 2]; a tile reads
    // padded columns 2tx ..= 2tx+3: even[tx], odd[tx], even[tx+1], odd[tx+1].
    let half = tx_count + 1;
    let padded_rows = 2 * ty_count + 2;
    let mut even = vec![0f32; padded_rows * half];
    let mut odd = vec![0f32; padded_rows * half];
    let mut qe = vec![0f32; 4 * half];
    let mut qo = vec![0f32; 4 * half];
    for c in 0..g.channels {
        let plane = &x[c * g.height * g.width..][..g.height * g.width];
        even.fill(0.0);
        odd.fill(0.0);
        for (y, row) in plane.chunks_exact(g.width).enumerate() {
            let r = y + 1;
            let (e, o) = (&mut even[r * half..][..half], &mut odd[r * half..][..half]);
            // Input column i is padded column i + 1: input columns 2k and 2k+1 are odd[k] and
            // even[k + 1]; even[0] is the left padding.
            let mut pairs = row.chunks_exact(2);
            for (k, pair) in (&mut pairs).enumerate() {
                o[k] = pair[0];
                e[k + 1] = pair[1];
            }
            if let [last] = pairs.remainder() {
                o[g.width / 2] = *last;
            }
        }
        for ty in 0..ty_count {
            let r = 2 * ty;
            // Bᵀ over the four rows, on the even and the odd halves alike.
            for (split, q) in [(&even, &mut qe), (&odd, &mut qo)] {
                let d = |k: usize| &split[(r + k) * half..][..half];
                let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
                let (q0, rest) = q.split_at_mut(half);
                let (q1, rest) = rest.split_at_mut(half);
                let (q2, q3) = rest.split_at_mut(half);
                for s in 0..half {
                    q0[s] = d0[s] - d2[s];
                    q1[s] = d1[s] + d2[s];
                    q2[s] = d2[s] - d1[s];
                    q3[s] = d1[s] - d3[s];
                }
            }
            // B over the four columns of each tile: even[tx], odd[tx], even[tx+1], odd[tx+1].
            for i in 0..4 {
                let (e, o) = (&qe[i * half..][..half], &qo[i * half..][..half]);
                let at = |j: usize| (((i * 4 + j) * g.channels + c) * tiles) + ty * tx_count;
                let (v0, v1, v2, v3) = disjoint4(v, [at(0), at(1), at(2), at(3)], tx_count);
                for tx in 0..tx_count {
                    v0[tx] = e[tx] - e[tx + 1];
                    v1[tx] = o[tx] + e[tx + 1];
                    v2[tx] = e[tx + 1] - o[tx];
                    v3[tx] = o[tx] - o[tx + 1];
                }
            }
        }
    }
}

/// Four non-overlapping slices of `len` values starting at the increasing offsets `at`.
fn disjoint4(
    v: &mut [f32],
    at: [usize; 4],
    len: usize,
) -> (&mut [f32], &mut [f32], &mut [f32], &mut [f32]) {
    let (a, rest) = v[at[0]..].split_at_mut(at[1] - at[0]);
    let (b, rest) = rest.split_at_mut(at[2] - at[1]);
    let (c, rest) = rest.split_at_mut(at[3] - at[2]);
    (
        &mut a[..len],
        &mut b[..len],
        &mut c[..len],
        &mut rest[..len],
    )
}

/// `Aᵀ m A` for every tile, with `Aᵀ = [[1,1,1,0],[0,1,-1,-1]]`, plus the bias; the tiles past an
/// odd-sized map's last row or column are cut.
///
/// Writes every element of `y` (`[1, outputs, height, width]`): for each output plane `o`, tile row
/// `ty` writes plane rows `2ty` and, when it exists, `2ty + 1`, each in full (`width` values, from
/// `2 * tx_count >= width` computed ones); `ty` runs over `ceil(height / 2)` tile rows, so every row of
/// every plane is written once.
fn output_transform(m: &[f32], bias: &[f32], y: &mut [f32], g: Geometry) {
    let (ty_count, tx_count) = (g.tiles_y(), g.tiles_x());
    let tiles = g.tiles();
    let mut s0 = vec![0f32; 4 * tx_count];
    let mut s1 = vec![0f32; 4 * tx_count];
    let mut top = vec![0f32; 2 * tx_count];
    let mut bottom = vec![0f32; 2 * tx_count];
    for o in 0..g.outputs {
        let plane = &mut y[o * g.height * g.width..][..g.height * g.width];
        let b = bias[o];
        for ty in 0..ty_count {
            let at = |k: usize| &m[((k * g.outputs + o) * tiles) + ty * tx_count..][..tx_count];
            // Aᵀ over the rows i of the tile, for each column j.
            for j in 0..4 {
                let (m0, m1, m2, m3) = (at(j), at(4 + j), at(8 + j), at(12 + j));
                let (a, c) = (
                    &mut s0[j * tx_count..][..tx_count],
                    &mut s1[j * tx_count..][..tx_count],
                );
                for t in 0..tx_count {
                    a[t] = m0[t] + m1[t] + m2[t];
                    c[t] = m1[t] - m2[t] - m3[t];
                }
            }
            // A over the columns, interleaved into two output rows.
            for (s, out) in [(&s0, &mut top), (&s1, &mut bottom)] {
                let (c0, c1, c2, c3) = (
                    &s[..tx_count],
                    &s[tx_count..2 * tx_count],
                    &s[2 * tx_count..3 * tx_count],
                    &s[3 * tx_count..],
                );
                for t in 0..tx_count {
                    out[2 * t] = c0[t] + c1[t] + c2[t] + b;
                    out[2 * t + 1] = c1[t] - c2[t] - c3[t] + b;
                }
            }
            let y0 = 2 * ty;
            plane[y0 * g.width..][..g.width].copy_from_slice(&top[..g.width]);
            if y0 + 1 < g.height {
                plane[(y0 + 1) * g.width..][..g.width].copy_from_slice(&bottom[..g.width]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

    fn conv_model(channels: usize, outputs: usize, height: usize, width: usize) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model
            .add_source("x", f32::fact([1, channels, height, width]))
            .unwrap();
        let kernel = pseudo_random(&[outputs, channels, 3, 3], 3);
        let bias = pseudo_random(&[outputs], 5);
        let k = model.add_const("kernel", kernel).unwrap();
        let b = model.add_const("bias", bias).unwrap();
        let op = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![3, 3],
                padding: PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]),
                dilations: None,
                strides: None,
                input_channels: channels,
                output_channels: outputs,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let y = model.wire_node("conv", op, &[x, k, b]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    fn pseudo_random(shape: &[usize], seed: usize) -> Tensor {
        let len: usize = shape.iter().product();
        let values: Vec<f32> = (0..len)
            .map(|i| (((i + seed) * 7919 + 13) % 1009) as f32 / 504.5 - 1.0)
            .collect();
        tensor1(&values).into_shape(shape).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    fn run(model: TypedModel, input: &Tensor) -> Tensor {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        plan.run(tvec!(input.clone().into())).unwrap()[0]
            .clone()
            .into_tensor()
    }

    #[test]
    fn winograd_convolutions_agree_with_tracts_own() {
        // Even and odd maps, one channel and many, the shapes of the embedded model among them.
        for (channels, outputs, height, width) in [
            (1, 1, 2, 2),
            (2, 3, 5, 7),
            (3, 4, 1, 6),
            (16, 16, 104, 104),
            (64, 32, 52, 52),
            (128, 128, 26, 26),
            (256, 128, 13, 13),
        ] {
            let input = pseudo_random(&[1, channels, height, width], 1);
            let reference = run(conv_model(channels, outputs, height, width), &input);
            // NaN-filled outputs show a missed element; uninitialized ones are what release runs.
            for scratch in [Scratch::Nan, Scratch::Uninitialized] {
                let mut model = conv_model(channels, outputs, height, width);
                assert_eq!(rewrite_convolutions_with(&mut model, scratch).unwrap(), 1);
                assert!(model.nodes().iter().all(|n| !n.op_is::<Conv>()));
                let got = run(model, &input);
                assert_eq!(got.shape(), reference.shape());
                assert!(
                    values(&got).iter().all(|v| v.is_finite()),
                    "{channels}->{outputs} {height}x{width}: an output was never written"
                );
                let scale = values(&reference).iter().fold(1f32, |a, v| a.max(v.abs()));
                let worst = values(&got)
                    .iter()
                    .zip(values(&reference))
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                worst <= 1e-4 * scale,
                "{channels}->{outputs} {height}x{width} {scratch:?}: off by {worst} (largest value {scale})"
            );
            }
        }
    }

    #[test]
    fn other_convolutions_are_left_to_tract() {
        let mut strided = conv_model(4, 4, 8, 8);
        let mut grouped = conv_model(4, 4, 8, 8);
        let mut unpadded = conv_model(4, 4, 8, 8);
        for node in strided.nodes_mut() {
            if let Some(op) = node.op_as_mut::<Conv>() {
                op.pool_spec.strides = Some(tvec![2, 2]);
            }
        }
        for node in grouped.nodes_mut() {
            if let Some(op) = node.op_as_mut::<Conv>() {
                op.group = 2;
            }
        }
        for node in unpadded.nodes_mut() {
            if let Some(op) = node.op_as_mut::<Conv>() {
                op.pool_spec.padding = PaddingSpec::Valid;
            }
        }
        for model in [&mut strided, &mut grouped, &mut unpadded] {
            assert_eq!(rewrite_convolutions(model).unwrap(), 0);
        }
    }
}
