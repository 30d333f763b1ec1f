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
    let q = ints(x)?;
    let scale = floats(input(1)?)?;
    let zero = match node.input.get(2) {
        Some(name) if !name.is_empty() => ints(input(2)?)?,
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
    let mut raw = Vec::with_capacity(q.len() * 4);
    for (i, &v) in q.iter().enumerate() {
        let c = (i / inner) % channels;
        raw.extend_from_slice(&(((v - zero[c]) as f32) * scale[c]).to_le_bytes());
    }
    Some(TensorProto {
        name: node.output[0].clone(),
        dims: x.dims.clone(),
        data_type: FLOAT,
        raw_data: raw,
        ..Default::default()
    })
}

/// An 8-bit integer tensor's values.
fn ints(t: &TensorProto) -> Option<Vec<i32>> {
    match t.data_type {
        INT8 if !t.raw_data.is_empty() => {
            Some(t.raw_data.iter().map(|&b| i32::from(b as i8)).collect())
        }
        UINT8 if !t.raw_data.is_empty() => Some(t.raw_data.iter().map(|&b| i32::from(b)).collect()),
        INT8 | UINT8 => Some(t.int32_data.clone()),
        _ => None,
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
}
