//! The optional ONNX Runtime backend: the same model (after the same weight fold) in an `ort` session,
//! outputs handed back as tract tensors so decoding is shared with the tract backend.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, TensorElementType, TensorRef, ValueType};
use prost::Message;
use tract_onnx::prelude::*;

use super::outputs::OutputFacts;
use super::weight_fold::parse_and_fold;
use super::{input_index, RunConfig};
use crate::core::error::{Cause, Error, Result};

pub struct Session {
    // `ort::Session::run` takes `&mut self`; one inference at a time per process is what Lambda and
    // the CLI do anyway.
    session: Mutex<ort::session::Session>,
    input_name: String,
    input_shape: Vec<usize>,
}

fn backend(what: &str, e: impl Into<Cause>) -> Error {
    Error::backend(format!("onnxruntime: {what}")).caused_by(e)
}

fn invalid(what: &str, e: impl Into<Cause>) -> Error {
    Error::invalid_model(format!("onnxruntime: {what}")).caused_by(e)
}

/// The library and ONNX Runtime environment, set up once per process (ONNX Runtime allows one
/// environment per process); later sessions share it (and the first session's library), and a failure
/// is reported to every caller.
fn environment(library: Option<&Path>) -> Result<ort::environment::Environment> {
    static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
        OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = library.unwrap_or(Path::new("libonnxruntime.so"));
            let builder = ort::init_from(path).map_err(|e| {
                format!(
                    "onnxruntime: cannot load the library: {e} (set ORT_DYLIB_PATH to libonnxruntime.so, \
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
        .map_err(Error::backend)
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

impl Session {
    /// A session for the model after the weight fold, fed `input_shape` at the input named
    /// `input_name` (else the only one).
    pub fn load(
        config: &RunConfig,
        onnx: &[u8],
        input_name: Option<&str>,
        input_shape: &[usize],
    ) -> Result<(Session, OutputFacts)> {
        let session = build(config, onnx)?;
        let input_name = checked_input(&session, input_name, input_shape)?;
        let mut facts = output_facts(&session)?;
        let this = Session {
            session: Mutex::new(session),
            input_name,
            input_shape: input_shape.to_vec(),
        };
        this.fill_in_unknown_dimensions(&mut facts)?;
        Ok((this, facts))
    }

    /// ONNX Runtime reports dimensions the graph leaves symbolic (dynamic-size exports, in-graph
    /// NMS) as unknown: a first run on a blank input fills them in at the fixed input size. Models
    /// whose outputs are all fixed skip it (it would add a whole inference to the cold start).
    fn fill_in_unknown_dimensions(&self, facts: &mut OutputFacts) -> Result<()> {
        if !facts.shapes.iter().flatten().any(Option::is_none) {
            return Ok(());
        }
        let blank = Tensor::zero::<f32>(&self.input_shape).map_err(|e| invalid("input", e))?;
        let first = self.run(&blank)?;
        for (shape, value) in facts.shapes.iter_mut().zip(&first) {
            if shape.len() == value.rank() {
                for (d, &seen) in shape.iter_mut().zip(value.shape()) {
                    d.get_or_insert(seen);
                }
            }
        }
        Ok(())
    }

    pub fn run(&self, input: &Tensor) -> Result<TVec<TValue>> {
        let data = input
            .try_as_plain_ram()
            .and_then(|r| r.as_slice::<f32>())
            .map_err(|e| Error::inference("input").caused_by(e))?;
        if input.shape() != self.input_shape.as_slice() {
            return Err(Error::inference(format!(
                "input shape {:?}, the session was built for {:?}",
                input.shape(),
                self.input_shape
            )));
        }
        let value = TensorRef::from_array_view((input.shape(), data))
            .map_err(|e| Error::inference("input").caused_by(e))?;
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => value])
            .map_err(|e| Error::inference("onnxruntime").caused_by(e))?;
        outputs
            .into_iter()
            .map(|(name, value)| {
                to_tract(&value)
                    .map_err(|e| Error::inference(format!("output `{name}`")).caused_by(e))
            })
            .collect()
    }
}

/// The session, built from the folded model's bytes on the configured threads.
fn build(config: &RunConfig, onnx: &[u8]) -> Result<ort::session::Session> {
    // Only the re-encoded bytes live on into the session build: the folded float weights are held
    // once, not twice, at the peak.
    let bytes = parse_and_fold(onnx)?.encode_to_vec();
    let env = environment(config.onnxruntime_library.as_deref())?;
    // The error holds the builder, which is not Send: its message is the cause.
    let options = |e: ort::Error<_>| backend("session options", e.to_string());
    let builder = ort::session::Session::builder(&env).map_err(|e| backend("session", e))?;
    let builder = builder
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(options)?;
    let builder = builder
        .with_intra_threads(config.threads)
        .map_err(options)?;
    let mut builder = builder.with_inter_threads(1).map_err(options)?;
    builder
        .commit_from_memory(&bytes)
        .map_err(|e| invalid("not a loadable ONNX model", e))
}

/// The one input's name, its declared type and size checked against what the manifest feeds, at
/// load rather than on a request.
fn checked_input(
    session: &ort::session::Session,
    input_name: Option<&str>,
    input_shape: &[usize],
) -> Result<String> {
    let names: Vec<String> = session
        .inputs()
        .iter()
        .map(|i| i.name().to_string())
        .collect();
    let input = names[input_index(&names, input_name)?].clone();
    if names.len() > 1 {
        return Err(Error::invalid_model(format!(
            "the onnxruntime backend feeds one input; the model has {names:?}"
        )));
    }
    if let Some(ValueType::Tensor { ty, shape, .. }) = session.inputs().first().map(|i| i.dtype()) {
        let fits = shape.len() == input_shape.len()
            && shape
                .iter()
                .zip(input_shape)
                .all(|(&d, &want)| d < 0 || d as usize == want);
        if *ty != TensorElementType::Float32 || !fits {
            return Err(Error::invalid_model(format!(
                "input `{input}` is {ty:?} {:?}; the manifest feeds float32 {input_shape:?}",
                shape.iter().collect::<Vec<_>>()
            )));
        }
    }
    Ok(input)
}

/// The outputs' names, types and shapes as the graph declares them (unknown dimensions `None`).
fn output_facts(session: &ort::session::Session) -> Result<OutputFacts> {
    let mut facts = OutputFacts::default();
    for o in session.outputs() {
        let ValueType::Tensor { ty, shape, .. } = o.dtype() else {
            return Err(Error::invalid_model(format!(
                "output `{}` is not a tensor",
                o.name()
            )));
        };
        let dt = datum_type(*ty).ok_or_else(|| {
            Error::invalid_model(format!(
                "output `{}` holds {ty:?}, which no decoder reads",
                o.name()
            ))
        })?;
        facts.names.push(o.name().to_string());
        facts
            .shapes
            .push(shape.iter().map(|&d| usize::try_from(d).ok()).collect());
        facts.types.push(dt);
    }
    Ok(facts)
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
