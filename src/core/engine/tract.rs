//! The tract backend: ONNX bytes to an optimized plan for a fixed input shape, and running it (on
//! tract's own thread pool when the `multithread` feature and more than one thread are asked for).
//!
//! The steps are public so the plan-build bench and the operator profile take the very route the
//! detector takes.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::optim::Optimizer;

use super::depthwise::rewrite_depthwise;
use super::max_pool::rewrite_max_pools;
use super::outputs::OutputFacts;
use super::pointwise::rewrite_pointwise;
use super::rewrites::rewrite_resizes;
use super::segments::{self, Cuttable, SegmentError, SegmentedPlan};
use super::weight_fold::{self, QuantizedWeights};
use super::winograd::rewrite_convolutions;
use super::{input_index, RunConfig};
use crate::core::error::{Error, Result};
use crate::core::threads::spawn_beside;

/// An optimized, runnable tract model.
pub type Plan = Arc<TypedRunnableModel>;

fn invalid(stage: &str, e: TractError) -> Error {
    Error::invalid_model(stage).caused_by(e)
}

/// Parses the model, folds its weight dequantization and fixes the input fed (the one named
/// `input_name`, else the first) to `input_shape`, in float32.
///
/// The weights are dequantized into tract's tensors while tract reads the rest of the graph: on a
/// second thread when `threads` allows one.
pub fn inference_model(
    onnx: &[u8],
    input_name: Option<&str>,
    input_shape: &[usize],
    threads: usize,
) -> Result<InferenceModel> {
    let mut proto = weight_fold::parse(onnx)?;
    let weights = QuantizedWeights::take(&mut proto);
    weights.declare_as_inputs(&mut proto);
    let read = || tract_onnx::onnx().model_for_proto_model(&proto);
    let (model, tensors) = if threads > 1 && weights.len() > 0 {
        std::thread::scope(|scope| {
            let tensors = spawn_beside(scope, || weights.into_tensors());
            let model = read();
            let tensors = tensors
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (model, tensors)
        })
    } else {
        (read(), weights.into_tensors())
    };
    let mut model = model.map_err(|e| invalid("not a loadable ONNX model", e))?;
    drop(proto);
    let tensors = tensors.map_err(|e| invalid("dequantizing the weights", e))?;
    weight_fold::wire_as_constants(&mut model, tensors)
        .map_err(|e| invalid("dequantizing the weights", e))?;
    let inputs = model.input_outlets().map_err(|e| invalid("inputs", e))?;
    let names: Vec<String> = inputs
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    let index = input_index(&names, input_name)?;
    model
        .set_input_fact(index, f32::fact(input_shape).into())
        .map_err(|e| invalid("input shape", e))?;
    Ok(model)
}

/// [`inference_model`] with every shape and type inferred: what the heads are checked against.
pub fn typed_model(
    onnx: &[u8],
    input_name: Option<&str>,
    input_shape: &[usize],
) -> Result<TypedModel> {
    inference_model(onnx, input_name, input_shape, 1)?
        .into_typed()
        .map_err(|e| invalid("type inference", e))
}

/// The name tract's `ChangeAxes` pass answers to (its `Debug`), the pass [`declutter`] holds back.
const CHANGE_AXES: &str = "ChangeAxes";

/// tract's declutter in two rounds: its passes but `ChangeAxes` to their fixed point, then all of them.
///
/// Run with the others from the start, `ChangeAxes` keeps moving unit axes around operators the other
/// passes are still rewriting (on PicoDet-S: 682 calls, 676 patches, most of them adding and removing
/// the same unit axes); run on the graph the others have settled, it finds what is left in 91 calls, and
/// the declutter takes 200 ms instead of 423 (`cargo bench --bench plan_passes`). The planned graph is the same (the test in `tests/it/plan.rs`
/// holds every committed model's outputs bit for bit to tract's one-round declutter).
pub fn declutter(model: &mut TypedModel) -> TractResult<()> {
    declutter_but_change_axes().optimize(model)?;
    model.declutter()
}

/// tract's declutter passes but `ChangeAxes`: the first round of [`declutter`].
pub fn declutter_but_change_axes() -> Optimizer {
    let mut optimizer = Optimizer::declutter();
    optimizer.passes.retain(|p| format!("{p:?}") != CHANGE_AXES);
    optimizer
}

/// Which of the project's own operators [`plan`] puts in place of tract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrites {
    /// 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) (`winograd.rs`): [`RunConfig::winograd`].
    pub winograd: bool,
    /// Depthwise convolutions (`depthwise.rs`) and max pools (`max_pool.rs`).
    pub window_kernels: bool,
    /// 1x1 convolutions (`pointwise.rs`).
    pub pointwise: bool,
}

impl Rewrites {
    /// The window kernels are on where they were measured faster than tract's (x86_64, `cargo bench
    /// --bench kernels`); on aarch64 they are checked for correctness under emulation only
    /// (`tools/test_arm64.sh`), so tract keeps those operators there until a Graviton measures them.
    pub const WINDOW_KERNELS: bool = cfg!(target_arch = "x86_64");

    /// What `config` asks for.
    pub fn for_config(config: &RunConfig) -> Rewrites {
        Rewrites {
            winograd: config.winograd,
            window_kernels: Self::WINDOW_KERNELS,
            pointwise: Self::pointwise_pays(),
        }
    }

    /// The 1x1 convolution kernel is on where it was measured faster than tract's matrix product:
    /// x86_64 CPUs with AVX-512 (`cargo bench --bench kernels -- pointwise`). Elsewhere its portable loop
    /// would run, which is correct but slower than tract's kernels.
    pub fn pointwise_pays() -> bool {
        #[cfg(target_arch = "x86_64")]
        return is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        return false;
    }
}

impl Default for Rewrites {
    /// What the default [`RunConfig`] asks for.
    fn default() -> Self {
        Rewrites::for_config(&RunConfig::default())
    }
}

/// Declutters a typed model, rewrites the operators tract runs slowly (resizes, `rewrites.rs`; and as
/// `rewrites` says, depthwise convolutions and max pools, 1x1 and 3x3 convolutions), optimizes and
/// plans it.
pub fn plan(mut model: TypedModel, rewrites: Rewrites) -> Result<Plan> {
    declutter(&mut model).map_err(|e| invalid("optimization", e))?;
    rewrite_resizes(&mut model).map_err(|e| invalid("rewriting resizes", e))?;
    if rewrites.window_kernels {
        rewrite_depthwise(&mut model)
            .map_err(|e| invalid("rewriting depthwise convolutions", e))?;
        rewrite_max_pools(&mut model).map_err(|e| invalid("rewriting max pools", e))?;
    }
    if rewrites.pointwise {
        rewrite_pointwise(&mut model).map_err(|e| invalid("rewriting 1x1 convolutions", e))?;
    }
    if rewrites.winograd {
        rewrite_convolutions(&mut model).map_err(|e| invalid("rewriting convolutions", e))?;
    }
    model.optimize().map_err(|e| invalid("optimization", e))?;
    model.into_runnable().map_err(|e| invalid("planning", e))
}

/// A model cut into segments of about [`segments::SEGMENT_NODES`] nodes, each typed (when `model` is
/// not yet) and planned by [`plan`] on up to `config.plan_threads` threads: tract's plan build grows
/// with the square of the graph, and a segment is planned while the next one is typed.
pub fn plan_segments<M: Cuttable>(model: &M, config: &RunConfig) -> Result<SegmentedPlan<Plan>> {
    let parts = segments::cuttable_nodes(model)
        .map(segments::parts_for)
        .map_err(|e| invalid("cutting the graph into segments", e))?;
    let rewrites = Rewrites::for_config(config);
    segments::plan_segments(model, parts, config.plan_threads, |segment| {
        plan(segment, rewrites)
    })
    .map_err(|e| match e {
        SegmentError::Typing(e) => invalid("type inference", e),
        SegmentError::Planning(e) => e,
    })
}

/// Names, shapes and types of a model's outputs: `facts`, their typed facts, in `model`'s order.
fn output_facts<M: Cuttable>(model: &M, facts: &[TypedFact]) -> Result<OutputFacts> {
    let graph = model.graph();
    let mut out = OutputFacts::default();
    let outlets = graph.output_outlets().map_err(|e| invalid("outputs", e))?;
    for (&o, fact) in outlets.iter().zip(facts) {
        let name = graph
            .outlet_label(o)
            .map(str::to_string)
            .unwrap_or_else(|| graph.node(o.node).name.clone());
        out.shapes.push(
            fact.shape
                .iter()
                .map(|d| d.to_i64().ok().and_then(|v| usize::try_from(v).ok()))
                .collect(),
        );
        out.types.push(fact.datum_type);
        out.names.push(name);
    }
    Ok(out)
}

/// A planned model (in segments, `segments.rs`) and, when it runs on more than one thread, its own pool
/// for tract's matrix products (no process-global executor).
pub struct Runner {
    plan: SegmentedPlan<Plan>,
    #[cfg(feature = "multithread")]
    pool: Option<tract_linalg::multithread::Executor>,
}

impl Runner {
    pub fn load(
        config: &RunConfig,
        onnx: &[u8],
        input_name: Option<&str>,
        input_shape: &[usize],
    ) -> Result<(Runner, OutputFacts)> {
        let model = inference_model(onnx, input_name, input_shape, config.plan_threads)?;
        let plan = plan_segments(&model, config)?;
        let outputs = output_facts(&model, plan.output_facts())?;
        drop(model);
        let runner = Runner {
            plan,
            #[cfg(feature = "multithread")]
            pool: (config.threads > 1).then(|| {
                tract_linalg::multithread::Executor::multithread_with_name(
                    config.threads,
                    "detector",
                )
            }),
        };
        Ok((runner, outputs))
    }

    pub fn run(&self, input: Tensor) -> Result<TVec<TValue>> {
        let run = || {
            self.plan
                .run(tvec!(input.into()), |plan, inputs| plan.run(inputs))
        };
        #[cfg(feature = "multithread")]
        let outputs = match &self.pool {
            Some(pool) => tract_linalg::multithread::multithread_tract_scope(pool.clone(), run),
            None => run(),
        };
        #[cfg(not(feature = "multithread"))]
        let outputs = run();
        outputs.map_err(|e| Error::inference("running the plan").caused_by(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tract upgrade that renames the pass would make the first round a full declutter: slower, and
    /// silent without this test.
    #[test]
    fn the_first_declutter_round_holds_back_change_axes_only() {
        let all = Optimizer::declutter().passes.len();
        assert_eq!(declutter_but_change_axes().passes.len(), all - 1);
    }
}
