//! The tract side: ONNX bytes to an optimized, runnable plan, built once and run many times.

use std::io::Cursor;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::manifest::OutputRef;

type Plan = Arc<TypedRunnableModel>;

/// A loaded model: the optimized plan plus what the rest of the pipeline needs to know of its outputs.
pub struct Engine {
    plan: Plan,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("outputs", &self.output_names)
            .field("shapes", &self.output_shapes)
            .finish()
    }
}

impl Engine {
    /// Parses, types, optimizes and plans the model for a fixed input shape. `input_name` selects the
    /// input to feed (the first one when `None`).
    pub fn load(onnx: &[u8], input_name: Option<&str>, input_shape: &[usize]) -> Result<Engine> {
        let invalid = |stage: &str, e: TractError| Error::InvalidModel(format!("{stage}: {e:#}"));
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(onnx))
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
        for (i, &o) in outputs.iter().enumerate() {
            let name = typed
                .outlet_label(o)
                .map(str::to_string)
                .unwrap_or_else(|| typed.node(o.node).name.clone());
            let fact = typed.outlet_fact(o).map_err(|e| invalid("outputs", e))?;
            if fact.datum_type != f32::datum_type() {
                return Err(Error::InvalidModel(format!(
                    "output #{i} `{name}` is {:?}; float32 outputs are expected",
                    fact.datum_type
                )));
            }
            let shape = fact
                .shape
                .as_concrete()
                .map(<[usize]>::to_vec)
                .ok_or_else(|| {
                    Error::InvalidModel(format!(
                        "output #{i} `{name}` has shape {:?}, not fixed by the input size",
                        fact.shape
                    ))
                })?;
            output_names.push(name);
            output_shapes.push(shape);
        }
        let plan = typed
            .into_optimized()
            .map_err(|e| invalid("optimization", e))?
            .into_runnable()
            .map_err(|e| invalid("planning", e))?;
        Ok(Engine {
            plan,
            output_names,
            output_shapes,
        })
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    pub fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
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

    /// Runs the plan; outputs in model order.
    pub fn run(&self, input: Tensor) -> Result<TVec<TValue>> {
        self.plan
            .run(tvec!(input.into()))
            .map_err(|e| Error::Inference(format!("{e:#}")))
    }
}
