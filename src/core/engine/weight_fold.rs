//! The ONNX weight-dequantization fold: int8 weights with their scales become float initializers before
//! either backend sees the model.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;

use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};
use tract_onnx::prelude::Framework;

use crate::core::error::{Error, Result};

/// ONNX `TensorProto.DataType` values this fold reads.
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;

/// Replaces each `DequantizeLinear` whose inputs are all initializers (weight-only quantization) by the
/// float initializer it computes. tract would fold these too, but through a generic path that made type
/// inference of the embedded model take 280 ms of its 300 ms plan build; this loop takes about 2 ms.
/// Nodes it does not understand are left for tract. Returns how many nodes were folded.
pub fn fold_weight_dequantization(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let index: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let tensors: Vec<Option<TensorProto>> = graph
        .node
        .iter()
        .map(|node| dequantized(node, &index))
        .collect();
    let mut tensors = tensors.into_iter();
    let mut folded = Vec::new();
    // A folded node goes; its output becomes an initializer of the same name.
    graph.node.retain(|_| match tensors.next().flatten() {
        Some(tensor) => {
            folded.push(tensor);
            false
        }
        None => true,
    });
    let count = folded.len();
    graph.initializer.extend(folded);
    drop_unread_initializers(graph);
    count
}

/// The float initializer a weight-only `DequantizeLinear` node computes: `(q - zero) * scale`,
/// per tensor or per channel along `axis` (default 1). `None` for anything else.
fn dequantized(
    node: &NodeProto,
    initializers: &HashMap<&str, &TensorProto>,
) -> Option<TensorProto> {
    if node.op_type != "DequantizeLinear"
        || !(2..=3).contains(&node.input.len())
        || node.output.len() != 1
    {
        return None;
    }
    let input = |i: usize| initializers.get(node.input.get(i)?.as_str()).copied();
    let x = input(0)?;
    let q = Ints::of(x)?;
    let scale = floats(input(1)?)?;
    let zero = match node.input.get(2) {
        Some(name) if !name.is_empty() => Ints::of(input(2)?)?.to_vec(),
        _ => vec![0; scale.len()],
    };
    let count: i64 = x.dims.iter().product();
    if scale.is_empty() || zero.len() != scale.len() || q.len() as i64 != count {
        return None;
    }
    let (channels, inner) = if scale.len() == 1 {
        (1usize, q.len())
    } else {
        let axis = node
            .attribute
            .iter()
            .find(|a| a.name == "axis")
            .map_or(1, |a| a.i);
        let axis = if axis < 0 {
            axis + x.dims.len() as i64
        } else {
            axis
        };
        let a = usize::try_from(axis).ok().filter(|&a| a < x.dims.len())?;
        if x.dims[a] as usize != scale.len() {
            return None;
        }
        (
            scale.len(),
            x.dims[a + 1..].iter().product::<i64>() as usize,
        )
    };
    let raw = q.dequantize(inner, |block| {
        let c = block % channels;
        (zero[c], scale[c])
    });
    Some(TensorProto {
        name: node.output[0].clone(),
        dims: x.dims.clone(),
        data_type: FLOAT,
        raw_data: raw,
        ..Default::default()
    })
}

/// An 8-bit integer tensor's values, read where they lie (a model's weights are most of its bytes:
/// no widened copy of them).
#[derive(Clone, Copy)]
enum Ints<'a> {
    Int8(&'a [u8]),
    Uint8(&'a [u8]),
    /// Stored widened, in `int32_data`.
    Wide(&'a [i32]),
}

impl<'a> Ints<'a> {
    fn of(t: &'a TensorProto) -> Option<Ints<'a>> {
        match t.data_type {
            INT8 if !t.raw_data.is_empty() => Some(Ints::Int8(&t.raw_data)),
            UINT8 if !t.raw_data.is_empty() => Some(Ints::Uint8(&t.raw_data)),
            INT8 | UINT8 => Some(Ints::Wide(&t.int32_data)),
            _ => None,
        }
    }

    fn len(self) -> usize {
        match self {
            Ints::Int8(b) | Ints::Uint8(b) => b.len(),
            Ints::Wide(v) => v.len(),
        }
    }

    fn to_vec(self) -> Vec<i32> {
        match self {
            Ints::Int8(b) => b.iter().map(|&b| i32::from(b as i8)).collect(),
            Ints::Uint8(b) => b.iter().map(|&b| i32::from(b)).collect(),
            Ints::Wide(v) => v.to_vec(),
        }
    }

    /// `(q - zero) * scale` as little-endian float32 bytes, taking `zero` and `scale` for each block of
    /// `inner` values from `block` (its index): one lookup per block, not per value.
    fn dequantize(self, inner: usize, block: impl Fn(usize) -> (i32, f32)) -> Vec<u8> {
        fn fill<T: Copy>(
            q: &[T],
            inner: usize,
            block: impl Fn(usize) -> (i32, f32),
            int: impl Fn(T) -> i32,
        ) -> Vec<u8> {
            let inner = inner.max(1);
            let mut raw = vec![0u8; q.len() * 4];
            for (b, (values, out)) in q.chunks(inner).zip(raw.chunks_mut(inner * 4)).enumerate() {
                let (zero, scale) = block(b);
                for (&v, bytes) in values.iter().zip(out.chunks_exact_mut(4)) {
                    bytes.copy_from_slice(&(((int(v) - zero) as f32) * scale).to_le_bytes());
                }
            }
            raw
        }
        match self {
            Ints::Int8(b) => fill(b, inner, block, |v| i32::from(v as i8)),
            Ints::Uint8(b) => fill(b, inner, block, i32::from),
            Ints::Wide(v) => fill(v, inner, block, |v| v),
        }
    }
}

/// A float tensor's values.
fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    match t.data_type {
        FLOAT if !t.raw_data.is_empty() => Some(
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        FLOAT => Some(t.float_data.clone()),
        _ => None,
    }
}

/// Drops the initializers no node, graph output or graph input reads any more (the quantized weights
/// and their scales, once folded).
fn drop_unread_initializers(graph: &mut GraphProto) {
    let read: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(graph.output.iter().map(|o| &o.name))
        .chain(graph.input.iter().map(|i| &i.name))
        .map(String::as_str)
        .collect();
    let keep: Vec<bool> = graph
        .initializer
        .iter()
        .map(|t| read.contains(t.name.as_str()))
        .collect();
    let mut keep = keep.into_iter();
    graph.initializer.retain(|_| keep.next().unwrap_or(true));
}

/// Parses the model's protobuf and folds its weight dequantization (see [`fold_weight_dequantization`]).
pub(super) fn parse_and_fold(onnx: &[u8]) -> Result<ModelProto> {
    let mut proto = tract_onnx::onnx()
        .proto_model_for_read(&mut Cursor::new(onnx))
        .map_err(|e| Error::invalid_model("not a loadable ONNX model").caused_by(e))?;
    fold_weight_dequantization(&mut proto);
    Ok(proto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_dequantization_folds_into_float_initializers() {
        let bytes = crate::core::embedded::MODEL;
        let mut proto = tract_onnx::onnx()
            .proto_model_for_read(&mut Cursor::new(bytes))
            .unwrap();
        let graph = proto.graph.as_ref().unwrap();
        let before = graph
            .node
            .iter()
            .filter(|n| n.op_type == "DequantizeLinear")
            .count();
        let conv_weight = graph
            .node
            .iter()
            .find(|n| n.op_type == "Conv")
            .unwrap()
            .input[1]
            .clone();
        // One per quantized Conv weight (133 in PicoDet-S, 34 in NanoDet-g).
        assert!(before > 0, "the embedded model has int8 weights");
        assert_eq!(fold_weight_dequantization(&mut proto), before);
        let graph = proto.graph.as_ref().unwrap();
        assert!(graph.node.iter().all(|n| n.op_type != "DequantizeLinear"));
        let w = graph
            .initializer
            .iter()
            .find(|t| t.name == conv_weight)
            .expect("folded weight");
        assert_eq!(w.data_type, 1);
        assert_eq!(w.raw_data.len() as i64, w.dims.iter().product::<i64>() * 4);
        // No int8 tensors are left behind.
        assert!(graph.initializer.iter().all(|t| t.data_type != 3));
    }

    fn tensor(name: &str, dims: &[i64], data_type: i32) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type,
            ..Default::default()
        }
    }

    /// A graph of one `DequantizeLinear` on initializers `x`, `s` (and `z`), folded: the float values.
    fn fold_one(
        x: TensorProto,
        s: TensorProto,
        z: Option<TensorProto>,
        axis: Option<i64>,
    ) -> Vec<f32> {
        let mut inputs = vec!["x".to_string(), "s".to_string()];
        let mut initializer = vec![x, s];
        if let Some(z) = z {
            inputs.push("z".into());
            initializer.push(z);
        }
        let node = NodeProto {
            op_type: "DequantizeLinear".into(),
            input: inputs,
            output: vec!["w".into()],
            attribute: axis
                .map(|i| tract_onnx::pb::AttributeProto {
                    name: "axis".into(),
                    i,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let reader = NodeProto {
            op_type: "Identity".into(),
            input: vec!["w".into()],
            output: vec!["y".into()],
            ..Default::default()
        };
        let mut model = ModelProto {
            graph: Some(GraphProto {
                node: vec![node, reader],
                initializer,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(fold_weight_dequantization(&mut model), 1);
        let graph = model.graph.unwrap();
        let w = graph.initializer.iter().find(|t| t.name == "w").unwrap();
        assert_eq!(w.data_type, FLOAT);
        floats(w).unwrap()
    }

    #[test]
    fn each_channel_takes_its_own_scale_and_zero_point() {
        // Shape [2, 3, 2], channels along axis 1: blocks of 2 values, channels 0 1 2 0 1 2.
        let q: Vec<i8> = vec![1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 127, -128];
        let mut x = tensor("x", &[2, 3, 2], INT8);
        x.raw_data = q.iter().map(|&v| v as u8).collect();
        let mut s = tensor("s", &[3], FLOAT);
        s.float_data = vec![0.5, 2.0, -1.0];
        let mut z = tensor("z", &[3], INT8);
        z.raw_data = vec![1, 0, (-3i8) as u8];
        let got = fold_one(x, s, Some(z), None);
        let (scale, zero) = ([0.5f32, 2.0, -1.0], [1i32, 0, -3]);
        let want: Vec<f32> = q
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = (i / 2) % 3;
                (i32::from(v) - zero[c]) as f32 * scale[c]
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(&got[..4], &[0.0, -1.5, 6.0, -8.0]);
    }

    #[test]
    fn uint8_and_widened_values_and_one_scale_fold_alike() {
        // uint8 in raw bytes, per tensor, zero point 128.
        let mut x = tensor("x", &[4], UINT8);
        x.raw_data = vec![0, 128, 129, 255];
        let mut s = tensor("s", &[], FLOAT);
        s.raw_data = 0.25f32.to_le_bytes().to_vec();
        let mut z = tensor("z", &[], UINT8);
        z.raw_data = vec![128];
        assert_eq!(fold_one(x, s, Some(z), None), vec![-32.0, 0.0, 0.25, 31.75]);
        // int8 widened into int32_data, per channel along axis 0 (blocks of 3), no zero point.
        let mut x = tensor("x", &[2, 3], INT8);
        x.int32_data = vec![1, 2, 3, -1, -2, -3];
        let mut s = tensor("s", &[2], FLOAT);
        s.float_data = vec![1.0, 10.0];
        assert_eq!(
            fold_one(x, s, None, Some(0)),
            vec![1.0, 2.0, 3.0, -10.0, -20.0, -30.0]
        );
        // A negative axis counts from the end: -1 is the last, blocks of 1.
        let mut x = tensor("x", &[2, 2], INT8);
        x.raw_data = vec![2, 2, 4, 4];
        let mut s = tensor("s", &[2], FLOAT);
        s.float_data = vec![1.0, 0.5];
        assert_eq!(fold_one(x, s, None, Some(-1)), vec![2.0, 1.0, 4.0, 2.0]);
    }
}
