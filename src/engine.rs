//! ONNX bytes to something that runs them, built once and run many times: an optimized tract plan (the
//! default), or an ONNX Runtime session when the crate is built with the `onnxruntime` feature and the
//! process asks for it.

use std::io::Cursor;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::manifest::OutputRef;

#[cfg(feature = "onnxruntime")]
mod onnxruntime;

type Plan = Arc<TypedRunnableModel>;

/// What runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// tract, compiled in: no shared library, the smallest package.
    #[default]
    Tract,
    /// ONNX Runtime through the `ort` crate, loaded from `libonnxruntime.so` at start-up (the
    /// `onnxruntime` feature; `ORT_DYLIB_PATH` names the library).
    OnnxRuntime,
}

impl Backend {
    /// The environment variable that chooses the backend: `tract` (default) or `onnxruntime`.
    pub const ENV: &'static str = "DETECTOR_BACKEND";

    pub fn name(self) -> &'static str {
        match self {
            Backend::Tract => "tract",
            Backend::OnnxRuntime => "onnxruntime",
        }
    }

    /// Whether this build can run the backend.
    pub fn available(self) -> bool {
        match self {
            Backend::Tract => true,
            Backend::OnnxRuntime => cfg!(feature = "onnxruntime"),
        }
    }

    /// A `DETECTOR_BACKEND` value (case-insensitive; `ort` for short). Whether this build has it is
    /// checked by [`RunConfig::parse`].
    pub fn parse(value: &str) -> Result<Backend> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "tract" => Ok(Backend::Tract),
            "onnxruntime" | "ort" => Ok(Backend::OnnxRuntime),
            other => Err(Error::Backend(format!(
                "{}={other:?} is not a backend; use `tract` or `onnxruntime`",
                Backend::ENV
            ))),
        }
    }
}

/// How the model runs: which backend, on how many threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    pub backend: Backend,
    /// Threads for one inference. More than one needs the `multithread` feature for tract; ONNX Runtime
    /// always has it. Lambda gives a function a second vCPU from 1769 MB of memory.
    pub threads: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            backend: Backend::Tract,
            threads: 1,
        }
    }
}

impl RunConfig {
    /// The environment variable for [`RunConfig::threads`] (default 1).
    pub const THREADS_ENV: &'static str = "DETECTOR_THREADS";

    /// `DETECTOR_BACKEND` and `DETECTOR_THREADS`, defaults where unset or empty.
    pub fn from_env() -> Result<RunConfig> {
        let var = |name: &str| std::env::var(name).ok();
        RunConfig::parse(
            var(Backend::ENV).as_deref(),
            var(Self::THREADS_ENV).as_deref(),
        )
    }

    /// The values of `DETECTOR_BACKEND` and `DETECTOR_THREADS`; `None` or blank means the default.
    pub fn parse(backend: Option<&str>, threads: Option<&str>) -> Result<RunConfig> {
        fn set(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let backend = match set(backend) {
            Some(v) => Backend::parse(v)?,
            None => Backend::Tract,
        };
        let threads = match set(threads) {
            None => 1,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=256).contains(&n) => n,
                _ => {
                    return Err(Error::Backend(format!(
                        "{}={v:?} is not a thread count from 1 to 256",
                        Self::THREADS_ENV
                    )))
                }
            },
        };
        let config = RunConfig { backend, threads };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if !self.backend.available() {
            return Err(Error::Backend(format!(
                "{}={}: this build has no ONNX Runtime backend; build with `--features onnxruntime`",
                Backend::ENV,
                self.backend.name()
            )));
        }
        if self.threads == 0 {
            return Err(Error::Backend("at least one thread is needed".into()));
        }
        if self.backend == Backend::Tract && self.threads > 1 && !cfg!(feature = "multithread") {
            return Err(Error::Backend(format!(
                "{}={}: this build runs tract on one thread; build with `--features multithread`",
                Self::THREADS_ENV,
                self.threads
            )));
        }
        Ok(())
    }
}

enum Runner {
    Tract {
        plan: Plan,
        /// This engine's thread pool for tract's matrix products, when it runs on more than one thread.
        #[cfg(feature = "multithread")]
        pool: Option<tract_linalg::multithread::Executor>,
    },
    #[cfg(feature = "onnxruntime")]
    OnnxRuntime(onnxruntime::Session),
}

/// A loaded model: what runs it plus what the rest of the pipeline needs to know of its outputs.
pub struct Engine {
    runner: Runner,
    config: RunConfig,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<Option<usize>>>,
    output_types: Vec<DatumType>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("outputs", &self.output_names)
            .field("shapes", &self.output_shapes)
            .finish()
    }
}

/// Replaces each `DequantizeLinear` whose inputs are all initializers (weight-only quantization) by the
/// float initializer it computes. tract would fold these too, but through a generic path that made type
/// inference of the embedded model take 280 ms of its 300 ms plan build; this loop takes about 2 ms.
/// Nodes it does not understand are left for tract. Returns how many nodes were folded.
pub fn fold_weight_dequantization(model: &mut tract_onnx::pb::ModelProto) -> usize {
    use tract_onnx::pb::TensorProto;
    const FLOAT: i32 = 1;
    const UINT8: i32 = 2;
    const INT8: i32 = 3;
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let index: std::collections::HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let ints = |t: &TensorProto| -> Option<Vec<i32>> {
        match t.data_type {
            INT8 if !t.raw_data.is_empty() => {
                Some(t.raw_data.iter().map(|&b| i32::from(b as i8)).collect())
            }
            UINT8 if !t.raw_data.is_empty() => {
                Some(t.raw_data.iter().map(|&b| i32::from(b)).collect())
            }
            INT8 | UINT8 => Some(t.int32_data.clone()),
            _ => None,
        }
    };
    let floats = |t: &TensorProto| -> Option<Vec<f32>> {
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
    };
    let mut folded = Vec::new();
    let mut keep = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let result = (|| {
            if node.op_type != "DequantizeLinear"
                || !(2..=3).contains(&node.input.len())
                || node.output.len() != 1
            {
                return None;
            }
            let get = |i: usize| {
                node.input
                    .get(i)
                    .and_then(|n| index.get(n))
                    .map(|&k| &graph.initializer[k])
            };
            let x = get(0)?;
            let q = ints(x)?;
            let scale = floats(get(1)?)?;
            let zero = match node.input.get(2) {
                Some(name) if !name.is_empty() => ints(get(2)?)?,
                _ => vec![0; scale.len()],
            };
            let count: i64 = x.dims.iter().product();
            if scale.is_empty() || zero.len() != scale.len() || q.len() as i64 != count {
                return None;
            }
            // Per-tensor (one scale) or per-channel along `axis` (default 1).
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
            let (channels, inner) = if scale.len() == 1 {
                (1usize, q.len())
            } else {
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
        })();
        match result {
            Some(tensor) => folded.push(tensor),
            None => keep.push(node),
        }
    }
    graph.node = keep;
    let count = folded.len();
    graph.initializer.extend(folded);
    // Drop the quantized initializers nothing reads any more.
    let used: std::collections::HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(graph.output.iter().map(|o| &o.name))
        .map(String::as_str)
        .collect();
    let inputs: std::collections::HashSet<&str> =
        graph.input.iter().map(|i| i.name.as_str()).collect();
    let keep: Vec<bool> = graph
        .initializer
        .iter()
        .map(|t| used.contains(t.name.as_str()) || inputs.contains(t.name.as_str()))
        .collect();
    let mut flags = keep.into_iter();
    graph.initializer.retain(|_| flags.next().unwrap_or(true));
    count
}

/// Parses the model's protobuf and folds its weight dequantization (see [`fold_weight_dequantization`]).
fn parse_and_fold(onnx: &[u8]) -> Result<tract_onnx::pb::ModelProto> {
    let mut proto = tract_onnx::onnx()
        .proto_model_for_read(&mut Cursor::new(onnx))
        .map_err(|e| Error::InvalidModel(format!("not a loadable ONNX model: {e:#}")))?;
    fold_weight_dequantization(&mut proto);
    Ok(proto)
}

impl Engine {
    /// Parses, types, optimizes and plans the model with tract on one thread for a fixed input shape.
    /// `input_name` selects the input to feed (the first one when `None`).
    pub fn load(onnx: &[u8], input_name: Option<&str>, input_shape: &[usize]) -> Result<Engine> {
        Engine::load_with(RunConfig::default(), onnx, input_name, input_shape)
    }

    /// [`Engine::load`] on the backend and thread count of `config`.
    pub fn load_with(
        config: RunConfig,
        onnx: &[u8],
        input_name: Option<&str>,
        input_shape: &[usize],
    ) -> Result<Engine> {
        config.check()?;
        match config.backend {
            Backend::Tract => Engine::load_tract(config, onnx, input_name, input_shape),
            #[cfg(feature = "onnxruntime")]
            Backend::OnnxRuntime => {
                // Only the re-encoded bytes live on into the session build: the folded float
                // weights are held once, not twice, at the peak.
                let folded = onnxruntime::encode(&parse_and_fold(onnx)?);
                let (session, outputs) =
                    onnxruntime::Session::load(folded, config.threads, input_name, input_shape)?;
                let (output_names, output_shapes, output_types) = outputs;
                Ok(Engine {
                    runner: Runner::OnnxRuntime(session),
                    config,
                    output_names,
                    output_shapes,
                    output_types,
                })
            }
            // RunConfig::check has refused it already; an error, not a panic, all the same.
            #[cfg(not(feature = "onnxruntime"))]
            Backend::OnnxRuntime => Err(Error::Backend(
                "this build has no ONNX Runtime backend".into(),
            )),
        }
    }

    fn load_tract(
        config: RunConfig,
        onnx: &[u8],
        input_name: Option<&str>,
        input_shape: &[usize],
    ) -> Result<Engine> {
        let invalid = |stage: &str, e: TractError| Error::InvalidModel(format!("{stage}: {e:#}"));
        let onnx_parser = tract_onnx::onnx();
        let proto = parse_and_fold(onnx)?;
        let mut model = onnx_parser
            .model_for_proto_model(&proto)
            .map_err(|e| invalid("not a loadable ONNX model", e))?;
        let inputs = model
            .input_outlets()
            .map_err(|e| invalid("inputs", e))?
            .to_vec();
        let names: Vec<String> = inputs
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let index = match input_name {
            None => 0,
            Some(wanted) => names.iter().position(|n| n == wanted).ok_or_else(|| {
                Error::InvalidModel(format!(
                    "the model has no input `{wanted}`; its inputs are {names:?}"
                ))
            })?,
        };
        if names.is_empty() {
            return Err(Error::InvalidModel("the model has no input".into()));
        }
        model
            .set_input_fact(index, f32::fact(input_shape).into())
            .map_err(|e| invalid("input shape", e))?;
        let typed = model
            .into_typed()
            .map_err(|e| invalid("type inference", e))?;
        let outputs = typed
            .output_outlets()
            .map_err(|e| invalid("outputs", e))?
            .to_vec();
        let mut output_names = Vec::with_capacity(outputs.len());
        let mut output_shapes = Vec::with_capacity(outputs.len());
        let mut output_types = Vec::with_capacity(outputs.len());
        for &o in &outputs {
            let name = typed
                .outlet_label(o)
                .map(str::to_string)
                .unwrap_or_else(|| typed.node(o.node).name.clone());
            let fact = typed.outlet_fact(o).map_err(|e| invalid("outputs", e))?;
            // Dimensions the input size does not fix (the row count after an in-graph NMS) stay open;
            // each decoder says which of its outputs may have them.
            output_shapes.push(
                fact.shape
                    .iter()
                    .map(|d| d.to_i64().ok().and_then(|v| usize::try_from(v).ok()))
                    .collect(),
            );
            output_types.push(fact.datum_type);
            output_names.push(name);
        }
        let plan = typed
            .into_optimized()
            .map_err(|e| invalid("optimization", e))?
            .into_runnable()
            .map_err(|e| invalid("planning", e))?;
        Ok(Engine {
            runner: Runner::Tract {
                plan,
                #[cfg(feature = "multithread")]
                pool: (config.threads > 1).then(|| {
                    tract_linalg::multithread::Executor::multithread_with_name(
                        config.threads,
                        "detector",
                    )
                }),
            },
            config,
            output_names,
            output_shapes,
            output_types,
        })
    }

    /// The backend and thread count the model runs with.
    pub fn config(&self) -> RunConfig {
        self.config
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Output shapes after type inference at the fixed input size; `None` for a dimension that depends on
    /// the data.
    pub fn output_shapes(&self) -> &[Vec<Option<usize>>] {
        &self.output_shapes
    }

    pub fn output_types(&self) -> &[DatumType] {
        &self.output_types
    }

    /// Position of a manifest output reference among the model outputs.
    pub fn resolve(&self, r: &OutputRef) -> Result<usize> {
        match r {
            OutputRef::Index(i) if *i < self.output_names.len() => Some(*i),
            OutputRef::Name(n) => self.output_names.iter().position(|o| o == n),
            OutputRef::Index(_) => None,
        }
        .ok_or_else(|| {
            Error::InvalidModel(format!(
                "{r} does not exist; the model outputs are {:?}",
                self.output_names
            ))
        })
    }

    /// Runs the model; outputs in model order.
    pub fn run(&self, input: Tensor) -> Result<TVec<TValue>> {
        match &self.runner {
            Runner::Tract {
                plan,
                #[cfg(feature = "multithread")]
                pool,
            } => {
                let run = || plan.run(tvec!(input.into()));
                #[cfg(feature = "multithread")]
                let outputs = match pool {
                    Some(pool) => {
                        tract_linalg::multithread::multithread_tract_scope(pool.clone(), run)
                    }
                    None => run(),
                };
                #[cfg(not(feature = "multithread"))]
                let outputs = run();
                outputs.map_err(|e| Error::Inference(format!("{e:#}")))
            }
            #[cfg(feature = "onnxruntime")]
            Runner::OnnxRuntime(session) => session.run(&input),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_config_defaults_to_tract_on_one_thread() {
        for (b, t) in [
            (None, None),
            (Some(""), Some("  ")),
            (Some("tract"), Some("1")),
        ] {
            assert_eq!(RunConfig::parse(b, t).unwrap(), RunConfig::default());
        }
        assert_eq!(
            RunConfig::parse(Some(" TRACT "), None).unwrap().backend,
            Backend::Tract
        );
    }

    #[test]
    fn run_config_refuses_what_it_cannot_do() {
        let err = |b, t| {
            let e = RunConfig::parse(b, t).unwrap_err();
            assert_eq!(e.code(), "backend_unavailable", "{e}");
            assert!(!e.is_client_error());
            e.to_string()
        };
        assert!(err(Some("cuda"), None).contains("`tract` or `onnxruntime`"));
        for t in ["0", "-1", "two", "257", "1.5"] {
            assert!(err(None, Some(t)).contains("DETECTOR_THREADS"), "{t}");
        }
        if cfg!(feature = "onnxruntime") {
            let c = RunConfig::parse(Some("ort"), Some("3")).unwrap();
            assert_eq!((c.backend, c.threads), (Backend::OnnxRuntime, 3));
        } else {
            assert!(err(Some("onnxruntime"), None).contains("--features onnxruntime"));
        }
        if cfg!(feature = "multithread") {
            assert_eq!(RunConfig::parse(None, Some("2")).unwrap().threads, 2);
        } else {
            assert!(err(None, Some("2")).contains("--features multithread"));
        }
    }

    #[test]
    fn weight_dequantization_folds_into_float_initializers() {
        let bytes = crate::detector::embedded::MODEL;
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
        assert_eq!(before, 34);
        assert_eq!(fold_weight_dequantization(&mut proto), 34);
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
