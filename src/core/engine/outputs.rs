//! What the rest of the pipeline knows of a loaded model's outputs: names, shapes at the fixed input
//! size, element types. Owns how a manifest refers to an output and the load-time checks the detection
//! heads make, with messages that name the output and its actual shape.

use std::borrow::Cow;

use serde::Deserialize;
use tract_onnx::prelude::{Datum, DatumType, Tensor, TractResult};

use crate::core::error::{Error, Result};

/// A model output, by its ONNX name or its position.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OutputRef {
    Index(usize),
    Name(String),
}

impl std::fmt::Display for OutputRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputRef::Index(i) => write!(f, "output #{i}"),
            OutputRef::Name(n) => write!(f, "output `{n}`"),
        }
    }
}

/// The outputs of a loaded model, in model order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputFacts {
    pub names: Vec<String>,
    /// Shapes at the fixed input size; `None` for a dimension that depends on the data (the row count
    /// after an in-graph NMS). Each head says which of its outputs may have one.
    pub shapes: Vec<Vec<Option<usize>>>,
    pub types: Vec<DatumType>,
}

impl OutputFacts {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Position of a manifest output reference among the model outputs.
    pub fn index(&self, r: &OutputRef) -> Result<usize> {
        match r {
            OutputRef::Index(i) if *i < self.len() => Some(*i),
            OutputRef::Name(n) => self.names.iter().position(|o| o == n),
            OutputRef::Index(_) => None,
        }
        .ok_or_else(|| {
            Error::invalid_model(format!(
                "{r} does not exist; the model outputs are {:?}",
                self.names
            ))
        })
    }

    /// `` `name` [1, 2704, ?] F32 ``: how messages name an output.
    pub fn describe(&self, i: usize) -> String {
        let dims: Vec<String> = self.shapes[i]
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        format!(
            "`{}` [{}] {:?}",
            self.names[i],
            dims.join(", "),
            self.types[i]
        )
    }

    /// The load-time error for an output that is not what a head needs.
    pub fn mismatch(&self, i: usize, need: impl std::fmt::Display) -> Error {
        Error::invalid_model(format!("output {}: {need}", self.describe(i)))
    }

    /// The shape, when the input size fixes every dimension.
    pub fn fixed_shape(&self, i: usize) -> Result<Vec<usize>> {
        self.shapes[i]
            .iter()
            .copied()
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| self.mismatch(i, "this decoder needs a shape fixed by the input size"))
    }

    pub fn require_f32(&self, i: usize) -> Result<()> {
        if self.types[i] == f32::datum_type() {
            Ok(())
        } else {
            Err(self.mismatch(i, "float32 values are expected"))
        }
    }

    pub fn require_number(&self, i: usize) -> Result<()> {
        if self.types[i].is_number() {
            Ok(())
        } else {
            Err(self.mismatch(i, "numbers are expected"))
        }
    }
}

/// A numeric tensor's values as f32: borrowed when they already are, converted otherwise (int64
/// classes and counts).
pub fn f32_values(t: &Tensor) -> TractResult<Cow<'_, [f32]>> {
    if t.datum_type() == f32::datum_type() {
        return Ok(Cow::Borrowed(t.try_as_plain_ram()?.as_slice::<f32>()?));
    }
    let cast = t.cast_to::<f32>()?;
    Ok(Cow::Owned(
        cast.try_as_plain_ram()?.as_slice::<f32>()?.to_vec(),
    ))
}
