//! The optional ONNX Runtime backend: the same model (after the same weight fold) in an `ort` session,
//! outputs handed back as tract tensors so decoding is shared with the tract backend.

use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, TensorElementType, TensorRef, ValueType};
use prost::Message;
use tract_onnx::prelude::*;

use crate::error::{Error, Result};

/// The environment variable naming the shared library (ort's own convention).
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Output names, shapes (`None` where unknown) and element types, in model order.
pub type OutputFacts = (Vec<String>, Vec<Vec<Option<usize>>>, Vec<DatumType>);

pub struct Session {
    // `ort::Session::run` takes `&mut self`; one inference at a time per process is what Lambda and
    // the CLI do anyway.
    session: Mutex<ort::session::Session>,
    input_name: String,
    input_shape: Vec<usize>,
}

fn backend(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("onnxruntime: {what}: {e}"))
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidModel(format!("onnxruntime: {what}: {e}"))
}

/// The library and ONNX Runtime environment, set up once per process (ONNX Runtime allows one
/// environment per process); later sessions share it, and a failure is reported to every caller.
fn environment() -> Result<ort::environment::Environment> {
    static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
        OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = std::env::var_os(DYLIB_ENV)
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "libonnxruntime.so".into());
            let builder = ort::init_from(&path).map_err(|e| {
                format!(
                    "onnxruntime: cannot load the library: {e} (set {DYLIB_ENV} to libonnxruntime.so, \
                     e.g. the one in the onnxruntime wheel's onnxruntime/capi/)"
                )
            })?;
            builder
                .with_name("object-detector")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("onnxruntime: environment: {e}"))
        })
        .clone()
        .map_err(Error::Backend)
}

fn datum_type(t: TensorElementType) -> Option<DatumType> {
    Some(match t {
        TensorElementType::Float32 => f32::datum_type(),
        TensorElementType::Float64 => f64::datum_type(),
        TensorElementType::Int64 => i64::datum_type(),
        TensorElementType::Int32 => i32::datum_type(),
        TensorElementType::Int8 => i8::datum_type(),
        TensorElementType::Uint8 => u8::datum_type(),
        _ => return None,
    })
}

/// The model as ONNX bytes again, for ONNX Runtime.
pub fn encode(proto: &tract_onnx::pb::ModelProto) -> Vec<u8> {
    proto.encode_to_vec()
}

impl Session {
    pub fn load(
        bytes: Vec<u8>,
        threads: usize,
        input_name: Option<&str>,
        input_shape: &[usize],
    ) -> Result<(Session, OutputFacts)> {
        let env = environment()?;
        let options = |e: ort::Error<_>| backend("session options", e);
        let builder = ort::session::Session::builder(&env).map_err(|e| backend("session", e))?;
        let builder = builder
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(options)?;
        let builder = builder.with_intra_threads(threads).map_err(options)?;
        let mut builder = builder.with_inter_threads(1).map_err(options)?;
        let session = builder
            .commit_from_memory(&bytes)
            .map_err(|e| invalid("not a loadable ONNX model", e))?;
        drop(bytes);

        let names: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let input = match input_name {
            None => names.first().cloned(),
            Some(wanted) => names.iter().find(|n| *n == wanted).cloned(),
        }
        .ok_or_else(|| {
            Error::InvalidModel(match input_name {
                Some(w) => format!("the model has no input `{w}`; its inputs are {names:?}"),
                None => "the model has no input".into(),
            })
        })?;
        if names.len() > 1 {
            return Err(Error::InvalidModel(format!(
                "the onnxruntime backend feeds one input; the model has {names:?}"
            )));
        }
        // The manifest's input size against what the graph declares, at load rather than on a request.
        if let Some(ValueType::Tensor { ty, shape, .. }) =
            session.inputs().first().map(|i| i.dtype())
        {
            let fits = shape.len() == input_shape.len()
                && shape
                    .iter()
                    .zip(input_shape)
                    .all(|(&d, &want)| d < 0 || d as usize == want);
            if *ty != TensorElementType::Float32 || !fits {
                return Err(Error::InvalidModel(format!(
                    "input `{input}` is {ty:?} {:?}; the manifest feeds float32 {input_shape:?}",
                    shape.iter().collect::<Vec<_>>()
                )));
            }
        }

        let mut output_names = Vec::new();
        let mut output_shapes = Vec::new();
        let mut output_types = Vec::new();
        for o in session.outputs() {
            let ValueType::Tensor { ty, shape, .. } = o.dtype() else {
                return Err(Error::InvalidModel(format!(
                    "output `{}` is not a tensor",
                    o.name()
                )));
            };
            let dt = datum_type(*ty).ok_or_else(|| {
                Error::InvalidModel(format!(
                    "output `{}` holds {ty:?}, which no decoder reads",
                    o.name()
                ))
            })?;
            output_names.push(o.name().to_string());
            output_shapes.push(
                shape
                    .iter()
                    .map(|&d| usize::try_from(d).ok())
                    .collect::<Vec<_>>(),
            );
            output_types.push(dt);
        }
        let this = Session {
            session: Mutex::new(session),
            input_name: input,
            input_shape: input_shape.to_vec(),
        };
        // ONNX Runtime reports dimensions the graph leaves symbolic (dynamic-size exports, in-graph
        // NMS) as unknown: a first run on a blank input fills them in at the fixed input size. Models
        // whose outputs are all fixed skip it (it would add a whole inference to the cold start).
        if output_shapes.iter().flatten().any(Option::is_none) {
            let blank = Tensor::zero::<f32>(input_shape).map_err(|e| invalid("input", e))?;
            let first = this.run(&blank)?;
            for (shape, value) in output_shapes.iter_mut().zip(&first) {
                if shape.len() == value.rank() {
                    for (d, &seen) in shape.iter_mut().zip(value.shape()) {
                        d.get_or_insert(seen);
                    }
                }
            }
        }
        Ok((this, (output_names, output_shapes, output_types)))
    }

    pub fn run(&self, input: &Tensor) -> Result<TVec<TValue>> {
        let data = input
            .try_as_plain_ram()
            .and_then(|r| r.as_slice::<f32>())
            .map_err(|e| Error::Inference(format!("input: {e}")))?;
        if input.shape() != self.input_shape.as_slice() {
            return Err(Error::Inference(format!(
                "input shape {:?}, the session was built for {:?}",
                input.shape(),
                self.input_shape
            )));
        }
        let value = TensorRef::from_array_view((input.shape(), data))
            .map_err(|e| Error::Inference(format!("input: {e}")))?;
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => value])
            .map_err(|e| Error::Inference(format!("onnxruntime: {e}")))?;
        outputs
            .into_iter()
            .map(|(name, value)| {
                to_tract(&value).map_err(|e| Error::Inference(format!("output `{name}`: {e}")))
            })
            .collect()
    }
}

/// Copies an output into a tract tensor of the same type and shape.
fn to_tract(value: &DynValue) -> std::result::Result<TValue, String> {
    fn copy<T: ort::value::PrimitiveTensorElementType + Datum + Copy>(
        value: &DynValue,
    ) -> std::result::Result<Tensor, String> {
        let (shape, data) = value.try_extract_tensor::<T>().map_err(|e| e.to_string())?;
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        Tensor::from_shape(&dims, data).map_err(|e| e.to_string())
    }
    let ty = value
        .dtype()
        .tensor_type()
        .ok_or("not a tensor".to_string())?;
    let tensor = match ty {
        TensorElementType::Float32 => copy::<f32>(value)?,
        TensorElementType::Float64 => copy::<f64>(value)?,
        TensorElementType::Int64 => copy::<i64>(value)?,
        TensorElementType::Int32 => copy::<i32>(value)?,
        TensorElementType::Int8 => copy::<i8>(value)?,
        TensorElementType::Uint8 => copy::<u8>(value)?,
        other => return Err(format!("{other:?} values, which no decoder reads")),
    };
    Ok(tensor.into())
}
