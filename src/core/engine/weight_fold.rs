//! The ONNX weight-dequantization fold: int8 weights with their scales become float tensors before
//! either backend sees the model. ONNX Runtime gets them back as float initializers
//! ([`QuantizedWeights::into_initializers`]); tract gets them as its own tensors
//! ([`QuantizedWeights::into_tensors`]), made where they will live: a float initializer would cost it a
//! second copy of every weight, and the page faults of both.

use std::collections::{HashMap, HashSet};

use prost::Message;
use tract_onnx::pb::{
    tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::TractErrorContext;
use tract_onnx::tract_core::ops::konst::Const;

use crate::core::error::{Error, Result};

/// ONNX `TensorProto.DataType` values this fold reads.
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;

/// The model's protobuf, decoded where its bytes lie (no copy of them first).
pub(super) fn parse(onnx: &[u8]) -> Result<ModelProto> {
    ModelProto::decode(onnx)
        .map_err(|e| Error::invalid_model("not a loadable ONNX model").caused_by(e))
}

/// Parses the model's protobuf and folds its weight dequantization into float initializers (see
/// [`fold_weight_dequantization`]): the model ONNX Runtime is given.
#[cfg(any(feature = "onnxruntime", test))]
pub(super) fn parse_and_fold(onnx: &[u8]) -> Result<ModelProto> {
    let mut proto = parse(onnx)?;
    fold_weight_dequantization(&mut proto);
    Ok(proto)
}

/// Replaces each `DequantizeLinear` whose inputs are all initializers (weight-only quantization) by the
/// float initializer it computes. tract would fold these too, but through a generic path that made type
/// inference of the embedded model take 280 ms of its 300 ms plan build; this loop takes about 2 ms.
/// Nodes it does not understand are left for tract. Returns how many nodes were folded.
#[cfg(any(feature = "onnxruntime", test))]
pub fn fold_weight_dequantization(model: &mut ModelProto) -> usize {
    let weights = QuantizedWeights::take(model);
    let count = weights.len();
    weights.into_initializers(model);
    count
}

/// The 8-bit values of a weight, as the model stores them.
#[derive(Clone)]
enum Quantized {
    Int8(Vec<u8>),
    Uint8(Vec<u8>),
    /// Stored widened, in `int32_data`.
    Wide(Vec<i32>),
}

impl Quantized {
    fn ints(&self) -> Ints<'_> {
        match self {
            Quantized::Int8(b) => Ints::Int8(b),
            Quantized::Uint8(b) => Ints::Uint8(b),
            Quantized::Wide(v) => Ints::Wide(v),
        }
    }

    /// `t`'s values, moved out of it.
    fn take_from(t: &mut TensorProto) -> Quantized {
        match Ints::of(t) {
            Some(Ints::Int8(_)) => Quantized::Int8(std::mem::take(&mut t.raw_data)),
            Some(Ints::Uint8(_)) => Quantized::Uint8(std::mem::take(&mut t.raw_data)),
            _ => Quantized::Wide(std::mem::take(&mut t.int32_data)),
        }
    }
}

/// One weight-only `DequantizeLinear`: the float tensor `name` it makes, `(q - zero) * scale` with the
/// zero point and scale of each block of `inner` values taken in turn from `zero` and `scale` (one
/// entry: the whole tensor's).
struct QuantizedWeight {
    name: String,
    dims: Vec<i64>,
    values: Quantized,
    zero: Vec<i32>,
    scale: Vec<f32>,
    inner: usize,
}

impl QuantizedWeight {
    #[cfg(any(feature = "onnxruntime", test))]
    fn len(&self) -> usize {
        self.values.ints().len()
    }

    fn dequantize(&self, out: &mut [f32]) {
        let channels = self.scale.len();
        self.values.ints().dequantize(self.inner, out, |block| {
            let c = block % channels;
            (self.zero[c], self.scale[c])
        });
    }
}

/// The weight-only dequantizations taken out of a model, with the 8-bit values they read.
pub(super) struct QuantizedWeights {
    weights: Vec<QuantizedWeight>,
}

impl QuantizedWeights {
    /// Takes every weight-only `DequantizeLinear` out of `model`: its node, and the initializers that
    /// nothing else reads (an int8 tensor another node reads stays, and the weight gets a copy).
    pub fn take(model: &mut ModelProto) -> QuantizedWeights {
        let Some(graph) = model.graph.as_mut() else {
            return QuantizedWeights {
                weights: Vec::new(),
            };
        };
        let index: HashMap<&str, usize> = graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        // (node position, initializer holding its values, the weight but its values)
        let found: Vec<(usize, usize, QuantizedWeight)> = graph
            .node
            .iter()
            .enumerate()
            .filter_map(|(at, node)| {
                let (x, weight) = quantized_weight(node, &graph.initializer, &index)?;
                Some((at, x, weight))
            })
            .collect();
        drop(index);
        let folded: HashSet<usize> = found.iter().map(|(at, _, _)| *at).collect();
        let mut at = 0;
        graph.node.retain(|_| {
            at += 1;
            !folded.contains(&(at - 1))
        });
        let still_read = read_initializers(graph);
        let mut taken: HashMap<usize, usize> = HashMap::new();
        let mut weights: Vec<QuantizedWeight> = Vec::with_capacity(found.len());
        for (_, x, mut weight) in found {
            weight.values = match taken.get(&x) {
                Some(&first) => weights[first].values.clone(),
                None if still_read[x] => Quantized::take_from(&mut graph.initializer[x].clone()),
                None => {
                    taken.insert(x, weights.len());
                    Quantized::take_from(&mut graph.initializer[x])
                }
            };
            weights.push(weight);
        }
        let mut keep = still_read.into_iter();
        graph.initializer.retain(|_| keep.next().unwrap_or(true));
        QuantizedWeights { weights }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Each weight as a float tensor of tract's, by the name its node gave it; each weight's 8-bit
    /// values are freed as its tensor is made.
    pub fn into_tensors(self) -> TractResult<Vec<(String, Tensor)>> {
        self.weights
            .into_iter()
            .map(|w| {
                let shape: Vec<usize> = w.dims.iter().map(|&d| d as usize).collect();
                let mut tensor = Tensor::zero::<f32>(&shape)?;
                w.dequantize(tensor.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
                Ok((w.name, tensor))
            })
            .collect()
    }

    /// Each weight back into `model` as a float initializer of its name: the ONNX model ONNX Runtime
    /// reads.
    #[cfg(any(feature = "onnxruntime", test))]
    pub fn into_initializers(self, model: &mut ModelProto) {
        let Some(graph) = model.graph.as_mut() else {
            return;
        };
        for w in self.weights {
            let mut values = vec![0f32; w.len()];
            w.dequantize(&mut values);
            graph.initializer.push(TensorProto {
                name: w.name,
                dims: w.dims,
                data_type: FLOAT,
                raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ..Default::default()
            });
        }
    }

    /// Declares each weight an input of `model`'s graph, float of its shape: tract reads the graph
    /// without the weights (their tensors made meanwhile by [`QuantizedWeights::into_tensors`]) and
    /// [`wire_as_constants`] puts them in.
    pub fn declare_as_inputs(&self, model: &mut ModelProto) {
        let Some(graph) = model.graph.as_mut() else {
            return;
        };
        for w in &self.weights {
            let dim = w
                .dims
                .iter()
                .map(|&d| tensor_shape_proto::Dimension {
                    value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                    ..Default::default()
                })
                .collect();
            graph.input.push(ValueInfoProto {
                name: w.name.clone(),
                r#type: Some(TypeProto {
                    value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                        elem_type: FLOAT,
                        shape: Some(TensorShapeProto { dim }),
                    })),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
}

/// Makes each of `tensors` the constant its input of `model` stands for (an input
/// [`QuantizedWeights::declare_as_inputs`] declared, of the tensor's name): the node becomes a constant
/// in place and is no longer a model input.
pub(super) fn wire_as_constants(
    model: &mut InferenceModel,
    tensors: Vec<(String, Tensor)>,
) -> TractResult<()> {
    let inputs: HashMap<String, usize> = model
        .inputs
        .iter()
        .map(|o| (model.nodes[o.node].name.clone(), o.node))
        .collect();
    let mut wired = HashSet::new();
    for (name, tensor) in tensors {
        let id = *inputs
            .get(&name)
            .with_context(|| format!("weight `{name}` is not an input of the model read"))?;
        let value = tensor.into_arc_tensor();
        let fact = InferenceFact::from(TypedFact::try_from(value.clone())?);
        let node = &mut model.nodes[id];
        node.op = Const::new(value)?.into();
        node.outputs[0].fact = fact;
        wired.insert(id);
    }
    model.inputs.retain(|o| !wired.contains(&o.node));
    Ok(())
}

/// Whether each initializer of `graph` is read: by a node, or as a graph output or input.
fn read_initializers(graph: &GraphProto) -> Vec<bool> {
    let read: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(graph.output.iter().map(|o| &o.name))
        .chain(graph.input.iter().map(|i| &i.name))
        .map(String::as_str)
        .collect();
    graph
        .initializer
        .iter()
        .map(|t| read.contains(t.name.as_str()))
        .collect()
}

/// The weight a weight-only `DequantizeLinear` node computes, but its values: with the index of the
/// initializer that holds them. `None` for anything else.
fn quantized_weight(
    node: &NodeProto,
    initializers: &[TensorProto],
    index: &HashMap<&str, usize>,
) -> Option<(usize, QuantizedWeight)> {
    if node.op_type != "DequantizeLinear"
        || !(2..=3).contains(&node.input.len())
        || node.output.len() != 1
    {
        return None;
    }
    let input = |i: usize| index.get(node.input.get(i)?.as_str()).copied();
    let x_at = input(0)?;
    let x = &initializers[x_at];
    let q = Ints::of(x)?;
    let scale = floats(&initializers[input(1)?])?;
    let zero = match node.input.get(2) {
        Some(name) if !name.is_empty() => Ints::of(&initializers[input(2)?])?.to_vec(),
        _ => vec![0; scale.len()],
    };
    // A shape with a negative side or whose product overflows is left for tract to refuse.
    let count = product(&x.dims)?;
    if scale.is_empty() || zero.len() != scale.len() || q.len() != count {
        return None;
    }
    let inner = if scale.len() == 1 {
        q.len()
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
        product(&x.dims[a + 1..])?
    };
    Some((
        x_at,
        QuantizedWeight {
            name: node.output[0].clone(),
            dims: x.dims.clone(),
            values: Quantized::Wide(Vec::new()),
            zero,
            scale,
            inner,
        },
    ))
}

/// How many values a shape holds; `None` for a negative side, or when the product overflows (even in a
/// part of it: a side of 0 does not make the others' product count).
fn product(dims: &[i64]) -> Option<usize> {
    let sides: Option<Vec<usize>> = dims.iter().map(|&d| usize::try_from(d).ok()).collect();
    let sides = sides?;
    let nonzero = sides
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |n, &d| n.checked_mul(d))?;
    Some(if sides.contains(&0) { 0 } else { nonzero })
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

    /// `(q - zero) * scale` into `out` (as long as the values), taking `zero` and `scale` for each
    /// block of `inner` values from `block` (its index): one lookup per block, not per value.
    fn dequantize(self, inner: usize, out: &mut [f32], block: impl Fn(usize) -> (i32, f32)) {
        fn fill<T: Copy>(
            q: &[T],
            inner: usize,
            out: &mut [f32],
            block: impl Fn(usize) -> (i32, f32),
            int: impl Fn(T) -> i32,
        ) {
            let inner = inner.max(1);
            for (b, (values, out)) in q.chunks(inner).zip(out.chunks_mut(inner)).enumerate() {
                let (zero, scale) = block(b);
                for (&v, o) in values.iter().zip(out) {
                    *o = ((int(v) - zero) as f32) * scale;
                }
            }
        }
        match self {
            Ints::Int8(b) => fill(b, inner, out, block, |v| i32::from(v as i8)),
            Ints::Uint8(b) => fill(b, inner, out, block, i32::from),
            Ints::Wide(v) => fill(v, inner, out, block, |v| v),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_dequantization_folds_into_float_initializers() {
        let bytes = crate::core::embedded::MODEL;
        let mut proto = parse(bytes).unwrap();
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

    /// A graph of one `DequantizeLinear` on initializers `x`, `s` (and `z`), folded: the float values,
    /// the same as an initializer (ONNX Runtime's route) and as a tensor of tract's.
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
        let mut for_tract = model.clone();
        assert_eq!(fold_weight_dequantization(&mut model), 1);
        let graph = model.graph.unwrap();
        let w = graph.initializer.iter().find(|t| t.name == "w").unwrap();
        assert_eq!(w.data_type, FLOAT);
        let values = floats(w).unwrap();
        let tensors = QuantizedWeights::take(&mut for_tract)
            .into_tensors()
            .unwrap();
        assert_eq!(tensors.len(), 1);
        assert_eq!(tensors[0].0, "w");
        let dims: Vec<usize> = w.dims.iter().map(|&d| d as usize).collect();
        assert_eq!(tensors[0].1.shape(), dims.as_slice());
        assert_eq!(
            tensors[0]
                .1
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap(),
            values
        );
        values
    }

    /// Two weights on one int8 tensor, which a third node also reads: it stays an initializer, and each
    /// weight is made from its own copy of the values.
    #[test]
    fn int8_values_another_node_reads_stay_and_shared_ones_serve_each_weight() {
        let mut x = tensor("x", &[2], INT8);
        x.raw_data = vec![1, (-2i8) as u8];
        let scale = |name: &str, v: f32| {
            let mut s = tensor(name, &[], FLOAT);
            s.float_data = vec![v];
            s
        };
        let node = |op: &str, inputs: &[&str], output: &str| NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
        let graph = |nodes| ModelProto {
            graph: Some(GraphProto {
                node: nodes,
                initializer: vec![x.clone(), scale("s1", 0.5), scale("s2", 3.0)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let weights = [
            node("DequantizeLinear", &["x", "s1"], "w1"),
            node("DequantizeLinear", &["x", "s2"], "w2"),
        ];
        let values = |model: &mut ModelProto| -> Vec<(String, Vec<f32>)> {
            let tensors = QuantizedWeights::take(model).into_tensors().unwrap();
            tensors
                .into_iter()
                .map(|(name, t)| {
                    let v = t
                        .try_as_plain_ram()
                        .unwrap()
                        .as_slice::<f32>()
                        .unwrap()
                        .to_vec();
                    (name, v)
                })
                .collect()
        };
        let expected = vec![
            ("w1".to_string(), vec![0.5, -1.0]),
            ("w2".to_string(), vec![3.0, -6.0]),
        ];
        // Read by the weights only: taken out of the model, scales too.
        let mut model = graph(weights.to_vec());
        assert_eq!(values(&mut model), expected);
        let graph_left = model.graph.unwrap();
        assert!(graph_left.node.is_empty());
        assert!(graph_left.initializer.is_empty());
        // Read by a `Cast` too: `x` stays for it; the scales go.
        let mut nodes = weights.to_vec();
        nodes.push(node("Cast", &["x"], "y"));
        let mut model = graph(nodes);
        assert_eq!(values(&mut model), expected);
        let graph_left = model.graph.unwrap();
        assert_eq!(graph_left.node.len(), 1);
        let left: Vec<&str> = graph_left
            .initializer
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(left, ["x"]);
        assert_eq!(graph_left.initializer[0].raw_data, x.raw_data);
    }

    /// A shape with a negative side, or whose product overflows (and wraps to the empty values' 0), is
    /// not folded: it stays for tract to refuse.
    #[test]
    fn shapes_that_do_not_count_their_values_are_not_folded() {
        for dims in [
            vec![-1, 0],
            vec![1 << 32, 1 << 32],
            vec![0, 1 << 40, 1 << 40],
        ] {
            let x = tensor("x", &dims, INT8);
            let mut s = tensor("s", &[], FLOAT);
            s.float_data = vec![1.0];
            let mut model = ModelProto {
                graph: Some(GraphProto {
                    node: vec![NodeProto {
                        op_type: "DequantizeLinear".into(),
                        input: vec!["x".into(), "s".into()],
                        output: vec!["w".into()],
                        ..Default::default()
                    }],
                    initializer: vec![x, s],
                    ..Default::default()
                }),
                ..Default::default()
            };
            assert_eq!(QuantizedWeights::take(&mut model).len(), 0, "{dims:?}");
            assert_eq!(model.graph.unwrap().node.len(), 1, "{dims:?}");
        }
    }

    /// tract's route, the weights made as its tensors and put in as constants once the graph is read,
    /// gives the graph the float initializers give: every node of the same operator, every weight of
    /// the same value, and the image as the only input.
    #[test]
    fn the_weights_tract_reads_as_constants_are_the_float_initializers() {
        let bytes = crate::core::embedded::MODEL;
        let from_initializers = tract_onnx::onnx()
            .model_for_proto_model(&parse_and_fold(bytes).unwrap())
            .unwrap();
        for threads in [1, 2] {
            let model =
                super::super::tract::inference_model(bytes, None, &[1, 3, 416, 416], threads)
                    .unwrap();
            assert_eq!(model.inputs.len(), 1);
            assert_eq!(model.nodes.len(), from_initializers.nodes.len());
            let mut weights = 0;
            for node in &from_initializers.nodes {
                let ours = model.node_by_name(&node.name).unwrap();
                assert_eq!(ours.op.name(), node.op.name(), "{}", node.name);
                if let (Some(a), Some(b)) = (node.op_as::<Const>(), ours.op_as::<Const>()) {
                    assert_eq!(a.val(), b.val(), "{}", node.name);
                    weights += 1;
                }
            }
            assert!(
                weights > 100,
                "PicoDet-S has 133 quantized weights: {weights} constants"
            );
        }
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
