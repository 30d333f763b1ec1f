//! The tract backend: ONNX bytes to an optimized plan for a fixed input shape.

use tract_onnx::prelude::*;

use super::weight_fold::parse_and_fold;
use super::{Engine, RunConfig, Runner};
use crate::error::{Error, Result};

impl Engine {
    pub(super) fn load_tract(
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
}
