//! ONNX bytes to something that runs them, built once and run many times: an optimized tract plan (the
//! default), or an ONNX Runtime session when the crate is built with the `onnxruntime` feature and the
//! process asks for it. This file chooses and dispatches; each backend has its own file, as do the
//! settings that choose one (`config`), the weight fold both share, and the facts of the outputs.

use tract_onnx::prelude::{TValue, TVec, Tensor};

use crate::core::error::{Error, Result};

#[cfg(target_arch = "x86_64")]
mod avx512_row;
mod config;
mod depthwise;
mod max_pool;
#[cfg(feature = "onnxruntime")]
mod onnxruntime;
mod outputs;
mod pointwise;
mod rewrites;
pub mod segments;
mod strided_plane;
pub mod tract;
mod weight_fold;
mod winograd;

pub use config::{Backend, RunConfig};
pub use outputs::{f32_values, OutputFacts, OutputRef};

enum Runner {
    Tract(tract::Runner),
    #[cfg(feature = "onnxruntime")]
    OnnxRuntime(onnxruntime::Session),
}

/// A loaded model: what runs it plus what the rest of the pipeline needs to know of its outputs.
pub struct Engine {
    runner: Runner,
    config: RunConfig,
    outputs: OutputFacts,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("outputs", &self.outputs)
            .finish()
    }
}

/// The position of the input to feed among the model's `inputs`: the one named `wanted`, else the
/// first.
fn input_index(inputs: &[String], wanted: Option<&str>) -> Result<usize> {
    match wanted {
        None if inputs.is_empty() => Err(Error::invalid_model("the model has no input")),
        None => Ok(0),
        Some(wanted) => inputs.iter().position(|n| n == wanted).ok_or_else(|| {
            Error::invalid_model(format!(
                "the model has no input `{wanted}`; its inputs are {inputs:?}"
            ))
        }),
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
        let (runner, outputs) = match config.backend {
            Backend::Tract => {
                let (runner, outputs) =
                    tract::Runner::load(&config, onnx, input_name, input_shape)?;
                (Runner::Tract(runner), outputs)
            }
            #[cfg(feature = "onnxruntime")]
            Backend::OnnxRuntime => {
                let (session, outputs) =
                    onnxruntime::Session::load(&config, onnx, input_name, input_shape)?;
                (Runner::OnnxRuntime(session), outputs)
            }
            // RunConfig::check has refused it already; an error, not a panic, all the same.
            #[cfg(not(feature = "onnxruntime"))]
            Backend::OnnxRuntime => {
                return Err(Error::backend("this build has no ONNX Runtime backend"))
            }
        };
        Ok(Engine {
            runner,
            config,
            outputs,
        })
    }

    /// The backend and thread count the model runs with.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Names, shapes and types of the model's outputs.
    pub fn outputs(&self) -> &OutputFacts {
        &self.outputs
    }

    /// Runs the model; outputs in model order.
    pub fn run(&self, input: Tensor) -> Result<TVec<TValue>> {
        match &self.runner {
            Runner::Tract(runner) => runner.run(input),
            #[cfg(feature = "onnxruntime")]
            Runner::OnnxRuntime(session) => session.run(&input),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_is_found_by_name_or_is_the_first() {
        let names = ["images".to_string(), "scale".to_string()];
        assert_eq!(input_index(&names, None).unwrap(), 0);
        assert_eq!(input_index(&names, Some("scale")).unwrap(), 1);
        let err = input_index(&names, Some("data")).unwrap_err().to_string();
        assert!(
            err.contains("no input `data`") && err.contains("images"),
            "{err}"
        );
        assert!(input_index(&[], None).is_err());
    }
}
