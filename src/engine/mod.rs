//! ONNX bytes to something that runs them, built once and run many times: an optimized tract plan (the
//! default), or an ONNX Runtime session when the crate is built with the `onnxruntime` feature and the
//! process asks for it.

use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::manifest::OutputRef;

mod config;
#[cfg(feature = "onnxruntime")]
mod onnxruntime;
mod tract;
mod weight_fold;

pub use config::{Backend, RunConfig};
pub use weight_fold::fold_weight_dequantization;
use weight_fold::parse_and_fold;

type Plan = Arc<TypedRunnableModel>;

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
