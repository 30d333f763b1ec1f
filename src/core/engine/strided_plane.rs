//! One channel of an NCHW map, padded and split into stride phases: the layout in which a k x k window
//! operator with stride s (a depthwise convolution, a max pool) becomes, for each output row, k x k
//! passes of one element-wise operation over contiguous slices, which the compiler vectorises.
//!
//! Column `j` of a padded row holds input column `j - pad_left` (or the pad value). Phase `q` of a row
//! holds its columns `q, q + s, q + 2s, ...`, so output column `x` of window column `kx` reads padded
//! column `x * s + kx`, which is element `x + kx / s` of phase `kx % s`.

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The `[channels, height, width]` of an f32 map in `format`, and whether it has a batch axis (of one):
/// the maps the window operators take.
pub(super) fn channels_first(fact: &TypedFact, format: DataFormat) -> Option<([usize; 3], bool)> {
    let shape = fact.shape.as_concrete()?;
    if fact.datum_type != f32::datum_type() {
        return None;
    }
    match (format, shape) {
        (DataFormat::NCHW, &[1, c, h, w]) => Some(([c, h, w], true)),
        (DataFormat::CHW, &[c, h, w]) => Some(([c, h, w], false)),
        _ => None,
    }
}

/// Sizes of a window operator on one `height x width` plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Window {
    pub height: usize,
    pub width: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl Window {
    /// The input map's shape, `[1, channels, height, width]` or without the batch axis.
    pub fn input_shape(&self, channels: usize, batch_axis: bool) -> TVec<usize> {
        Self::shape(batch_axis, [channels, self.height, self.width])
    }

    /// The output map's shape, `[1, channels, out_h, out_w]` or without the batch axis.
    pub fn output_shape(&self, channels: usize, batch_axis: bool) -> TVec<usize> {
        Self::shape(batch_axis, [channels, self.out_h, self.out_w])
    }

    fn shape(batch_axis: bool, chw: [usize; 3]) -> TVec<usize> {
        let mut shape: TVec<usize> = if batch_axis { tvec!(1) } else { tvec!() };
        shape.extend(chw);
        shape
    }

    /// Padded rows the windows read.
    fn rows(&self) -> usize {
        (self.out_h - 1) * self.stride_h + self.kernel_h
    }

    /// Length of one phase of a padded row: enough for every window column of every output column.
    fn phase_len(&self) -> usize {
        self.out_w + (self.kernel_w - 1) / self.stride_w
    }

    /// Whether the windows fit the padded plane this layout can hold (a window starting past the
    /// padded input would read nothing real; ONNX never asks for one).
    pub fn is_valid(&self) -> bool {
        self.kernel_h > 0
            && self.kernel_w > 0
            && self.stride_h > 0
            && self.stride_w > 0
            && self.out_h > 0
            && self.out_w > 0
            && (self.out_h - 1) * self.stride_h < self.height + self.pad_top
            && (self.out_w - 1) * self.stride_w < self.width + self.pad_left
    }
}

/// A window operator's output fact, once its input has the shape `window` reads: the same for every
/// operator on these planes.
pub(super) fn window_output_facts(
    inputs: &[&TypedFact],
    window: Window,
    channels: usize,
    batch_axis: bool,
) -> TractResult<TVec<TypedFact>> {
    ensure!(inputs[0].shape.as_concrete() == Some(&window.input_shape(channels, batch_axis)[..]));
    Ok(tvec!(f32::fact(window.output_shape(channels, batch_axis))))
}

/// Evaluates a window operator: `kernel` reads the input's values (`[channels, height, width]` in
/// order) and writes a zeroed output of the window's output shape.
pub(super) fn eval_window(
    inputs: TVec<TValue>,
    window: Window,
    channels: usize,
    batch_axis: bool,
    kernel: impl FnOnce(&[f32], &mut [f32]) -> TractResult<()>,
) -> TractResult<TVec<TValue>> {
    ensure!(inputs.len() == 1);
    let input = &inputs[0];
    let x = input.try_as_plain_ram()?;
    let x = x.as_slice::<f32>()?;
    ensure!(x.len() == channels * window.height * window.width);
    let mut y = Tensor::zero::<f32>(&window.output_shape(channels, batch_axis))?;
    kernel(x, y.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?)?;
    Ok(tvec!(y.into_tvalue()))
}

/// A reusable buffer holding one padded, phase-split plane.
pub(super) struct StridedPlane {
    window: Window,
    phase_len: usize,
    values: Vec<f32>,
    /// One padded row before it is split into phases (`stride_w * phase_len` values).
    line: Vec<f32>,
}

impl StridedPlane {
    pub fn new(window: Window) -> Self {
        let phase_len = window.phase_len();
        StridedPlane {
            window,
            phase_len,
            values: vec![0.0; window.rows() * window.stride_w * phase_len],
            line: vec![0.0; window.stride_w * phase_len],
        }
    }

    /// Fills the buffer from one `height x width` plane, `pad` outside it.
    pub fn fill(&mut self, plane: &[f32], pad: f32) {
        let w = self.window;
        debug_assert_eq!(plane.len(), w.height * w.width);
        let (stride, len) = (w.stride_w, self.phase_len);
        // Input column x sits at line[pad_left + x]; the line may end before the row does.
        let start = w.pad_left.min(self.line.len());
        let end = (w.pad_left + w.width).min(self.line.len());
        for (r, padded) in self.values.chunks_exact_mut(stride * len).enumerate() {
            let Some(y) = r.checked_sub(w.pad_top).filter(|&y| y < w.height) else {
                padded.fill(pad);
                continue;
            };
            let row = &plane[y * w.width..][..w.width];
            if stride == 1 {
                padded[..start].fill(pad);
                padded[start..end].copy_from_slice(&row[..end - start]);
                padded[end..].fill(pad);
                continue;
            }
            let line = &mut self.line;
            line[..start].fill(pad);
            line[start..end].copy_from_slice(&row[..end - start]);
            line[end..].fill(pad);
            if stride == 2 {
                let (even, odd) = padded.split_at_mut(len);
                for ((e, o), pair) in even.iter_mut().zip(odd).zip(line.chunks_exact(2)) {
                    *e = pair[0];
                    *o = pair[1];
                }
            } else {
                for (j, group) in line.chunks_exact(stride).enumerate() {
                    for (q, &value) in group.iter().enumerate() {
                        padded[q * len + j] = value;
                    }
                }
            }
        }
    }

    /// The `out_w` values window column `kx` reads in padded row `r`: output column `x` gets element
    /// `x`.
    pub fn taps(&self, r: usize, kx: usize) -> &[f32] {
        let start = r * self.row_len() + self.column_offset(kx);
        &self.values[start..][..self.window.out_w]
    }

    /// The whole buffer: padded row `r`'s taps for window column `kx` start at `r * row_len() +
    /// column_offset(kx)`, [`StridedPlane::taps`] without the slicing, for kernels that compute the
    /// offsets once (the AVX-512 ones: unused on other targets).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Values from one padded row to the next (all its phases).
    pub fn row_len(&self) -> usize {
        self.window.stride_w * self.phase_len
    }

    /// Where window column `kx`'s taps start in a padded row.
    pub fn column_offset(&self, kx: usize) -> usize {
        let stride = self.window.stride_w;
        (kx % stride) * self.phase_len + kx / stride
    }
}

/// What the window operators' tests share: a square window's pool spec and input shape, and running a
/// model to its first output.
#[cfg(test)]
pub(super) mod test_support {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// The input shape and pool spec of a `k x k` window with stride `stride` and `k / 2` padding on
    /// every side, over `channels` maps of `h x w`: `[1, channels, h, w]` (NCHW), or `[channels, h, w]`
    /// (CHW) when `batch_axis` is false.
    pub fn square_window(
        channels: usize,
        (h, w): (usize, usize),
        k: usize,
        stride: usize,
        batch_axis: bool,
    ) -> (Vec<usize>, PoolSpec) {
        let (shape, data_format) = if batch_axis {
            (vec![1, channels, h, w], DataFormat::NCHW)
        } else {
            (vec![channels, h, w], DataFormat::CHW)
        };
        let pad = k / 2;
        let spec = PoolSpec {
            data_format,
            kernel_shape: tvec!(k, k),
            padding: PaddingSpec::ExplicitOnnxPool(tvec!(pad, pad), tvec!(pad, pad), false),
            dilations: None,
            strides: Some(tvec!(stride, stride)),
            input_channels: channels,
            output_channels: channels,
        };
        (shape, spec)
    }

    /// Values in -1..1 that follow no pattern a kernel could get right by accident, different for
    /// each `seed`.
    pub fn pseudo_random(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
            .collect();
        tensor1(&values).into_shape(shape).unwrap()
    }

    /// `model`'s first output on `input`, optimized and planned by tract.
    pub fn run(model: TypedModel, input: &Tensor) -> Vec<f32> {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let out = plan.run(tvec!(input.clone().into_tvalue())).unwrap();
        out[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_are_the_padded_columns_a_window_reads() {
        // A 3x5 plane holding its own positions; (kernel, stride, pad, out_h, out_w).
        for (k, stride, pad, out_h, out_w) in [
            (3, 2, 1, 2, 3),
            (3, 1, 1, 3, 5),
            (5, 2, 2, 2, 3),
            (5, 1, 2, 3, 5),
            (3, 3, 0, 1, 1),
        ] {
            let window = Window {
                height: 3,
                width: 5,
                kernel_h: k,
                kernel_w: k,
                stride_h: stride,
                stride_w: stride,
                pad_top: pad,
                pad_left: pad,
                out_h,
                out_w,
            };
            assert!(window.is_valid());
            let plane: Vec<f32> = (0..15).map(|v| v as f32).collect();
            let mut strided = StridedPlane::new(window);
            strided.fill(&plane, -1.0);
            let value = |r: usize, c: usize| -> f32 {
                match (r.checked_sub(pad), c.checked_sub(pad)) {
                    (Some(y), Some(x)) if y < 3 && x < 5 => plane[y * 5 + x],
                    _ => -1.0,
                }
            };
            for r in 0..window.rows() {
                for kx in 0..k {
                    let want: Vec<f32> = (0..out_w).map(|x| value(r, x * stride + kx)).collect();
                    assert_eq!(
                        strided.taps(r, kx),
                        &want[..],
                        "{k}x{k} stride {stride}: row {r}, kx {kx}"
                    );
                }
            }
        }
    }
}
