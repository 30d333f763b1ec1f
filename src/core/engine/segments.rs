//! A typed model cut into consecutive segments, each planned on its own (on as many threads as the
//! machine has) and run one after the other.
//!
//! Why: tract applies each rewrite of its declutter and codegen (`ModelPatch::apply` in tract-core
//! 0.23) in time proportional to the whole graph, since every node a patch adds is compared with every
//! node of the model. A plan build therefore grows with the square of the node count: on PP-PicoDet-S
//! (869 typed nodes) four segments plan in 0.53 of the whole graph's time on one thread, and the
//! segments are independent, so they plan in parallel: 0.30-0.33 on two (`cargo bench --bench
//! plan_segments`).
//!
//! Where to cut: positions in evaluation order where the fewest values are alive (one, between two
//! blocks of a network), and among those, where every value crossing is read by convolutions only, so
//! that tract loses as few rewrites across the cut as it can (an activation fused into the operator
//! before it, an axis change moved into the one after). A constant that crosses a cut is copied into
//! the segment that reads it, so tract still folds it there.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::Conv;

/// About how many typed nodes one segment holds: PicoDet-S (869) is cut in four, NanoDet-g (213) not
/// at all. On PicoDet-S four segments kept inference within 1% of the whole plan's; six planned in
/// 0.44-0.47 of the whole graph's time on one thread instead of 0.53, but cost 4% of inference, as
/// more cuts land where tract would have fused across them.
pub const SEGMENT_NODES: usize = 200;

/// How many segments a typed model of `nodes` nodes is cut into.
pub fn parts_for(nodes: usize) -> usize {
    (nodes / SEGMENT_NODES).max(1)
}

/// Where the values that cross segments live while a model runs.
type Slot = usize;

/// One segment: its own typed model, the slots it reads (its inputs, in order) and the slots it
/// writes (its outputs, in order).
#[derive(Debug, Clone)]
pub struct Segment {
    pub model: TypedModel,
    reads: Vec<Slot>,
    writes: Vec<Slot>,
}

/// A model output: a value some segment writes, or a constant known before anything runs.
#[derive(Debug, Clone)]
enum Output {
    Slot(Slot),
    Constant(Arc<Tensor>),
}

/// How values flow between segments: the slots the model's inputs go in, the model's outputs, and
/// the slots segment `i` is the last to read (`last_read_by[i]`), dropped once it has taken them.
#[derive(Debug, Clone)]
struct Wiring {
    slots: usize,
    inputs: Vec<Slot>,
    outputs: Vec<Output>,
    last_read_by: Vec<Vec<Slot>>,
}

/// A typed model cut into segments, not yet planned.
#[derive(Debug, Clone)]
pub struct Segments {
    pub segments: Vec<Segment>,
    wiring: Wiring,
}

/// Every segment planned: what runs the model.
#[derive(Debug, Clone)]
pub struct SegmentedPlan<P> {
    plans: Vec<P>,
    reads: Vec<Vec<Slot>>,
    writes: Vec<Vec<Slot>>,
    wiring: Wiring,
}

/// A node whose every output tract already knows the value of (and that is not a model input): it is
/// copied as a constant wherever it is read instead of belonging to a segment.
fn is_constant(model: &TypedModel, inputs: &[OutletId], id: usize) -> bool {
    let node = model.node(id);
    !node.outputs.is_empty()
        && !inputs.iter().any(|o| o.node == id)
        && node.outputs.iter().all(|o| o.fact.konst.is_some())
}

/// One value of the model that is computed (not a constant): where it is produced and read, as
/// positions in the evaluation order; a model output counts as read at the end.
struct Value {
    produced: usize,
    read_at: Vec<usize>,
}

impl Value {
    fn last_read(&self) -> Option<usize> {
        self.read_at.iter().copied().max()
    }

    /// Produced at or before `position` and read after it.
    fn crosses(&self, position: usize) -> bool {
        self.produced <= position && self.last_read().is_some_and(|q| q > position)
    }
}

fn values(
    model: &TypedModel,
    order: &[usize],
    position: &HashMap<usize, usize>,
) -> TractResult<Vec<Value>> {
    let outputs: HashSet<OutletId> = model.output_outlets()?.iter().copied().collect();
    let mut values = Vec::new();
    for (produced, &id) in order.iter().enumerate() {
        for (slot, output) in model.node(id).outputs.iter().enumerate() {
            let outlet = OutletId::new(id, slot);
            let mut read_at: Vec<usize> = output
                .successors
                .iter()
                .filter_map(|s| position.get(&s.node).copied())
                .collect();
            if outputs.contains(&outlet) {
                read_at.push(order.len());
            }
            values.push(Value { produced, read_at });
        }
    }
    Ok(values)
}

/// How good a cut after `position` is, lower is better: how many values cross it, then whether one of
/// them is read by something but a convolution, which tract might have fused into the operator that
/// writes it (an activation, an axis change).
fn cut_cost(
    model: &TypedModel,
    order: &[usize],
    values: &[Value],
    position: usize,
) -> (usize, bool) {
    let crossing: Vec<&Value> = values.iter().filter(|v| v.crosses(position)).collect();
    let loses_a_fusion = crossing.iter().any(|v| {
        v.read_at
            .iter()
            .filter(|&&q| q > position)
            .any(|&q| q >= order.len() || !model.node(order[q]).op_is::<Conv>())
    });
    (crossing.len(), loses_a_fusion)
}

/// Positions after which to cut: near each `i / parts` of the evaluation order, the cheapest cut
/// within a quarter of a segment either way; strictly increasing, never after the last position.
fn cut_points(model: &TypedModel, order: &[usize], values: &[Value], parts: usize) -> Vec<usize> {
    let n = order.len();
    let reach = n / (parts * 4).max(1);
    let mut cuts: Vec<usize> = Vec::new();
    for i in 1..parts {
        let target = i * n / parts;
        let lo = target
            .saturating_sub(reach)
            .max(cuts.last().map_or(0, |&c| c + 1));
        let hi = (target + reach).min(n.saturating_sub(2));
        if let Some(best) = (lo..=hi).min_by_key(|&p| {
            let (crossing, loses_a_fusion) = cut_cost(model, order, values, p);
            (crossing, loses_a_fusion, p.abs_diff(target))
        }) {
            cuts.push(best);
        }
    }
    cuts
}

/// One segment while it is built: its model, where each value of the whole model it uses is in it, and
/// the values it takes from outside (model inputs and what earlier segments wrote), in input order.
struct SegmentBuilder<'a> {
    whole: &'a TypedModel,
    /// Nodes that belong to this segment or an earlier one.
    computed: &'a HashMap<usize, usize>,
    model: TypedModel,
    mapping: HashMap<OutletId, OutletId>,
    imports: Vec<OutletId>,
}

impl SegmentBuilder<'_> {
    /// The wire in this segment that carries `outlet` of the whole model: the segment's own, a copy of
    /// a constant, or a new input of the segment.
    fn import(&mut self, outlet: OutletId) -> TractResult<OutletId> {
        if let Some(&o) = self.mapping.get(&outlet) {
            return Ok(o);
        }
        let writer = self.whole.node(outlet.node);
        let fact = self.whole.outlet_fact(outlet)?;
        let wire = match &fact.konst {
            Some(k) if !self.computed.contains_key(&outlet.node) => self
                .model
                .add_const(format!("{}.{}", writer.name, outlet.slot), k.clone())?,
            _ => {
                self.imports.push(outlet);
                self.model.add_source(
                    format!("segment_input.{}.{}", writer.name, outlet.slot),
                    fact.without_value(),
                )?
            }
        };
        self.mapping.insert(outlet, wire);
        Ok(wire)
    }

    /// Adds `id` of the whole model to this segment.
    fn add(&mut self, id: usize, is_input: bool) -> TractResult<()> {
        let node = self.whole.node(id);
        if is_input {
            // A model input goes in through the segment that holds its source.
            self.imports.push(OutletId::new(id, 0));
            let source = self
                .model
                .add_source(&node.name, node.outputs[0].fact.clone())?;
            self.mapping.insert(OutletId::new(id, 0), source);
            return Ok(());
        }
        let mut inputs = TVec::new();
        for &input in &node.inputs {
            inputs.push(self.import(input)?);
        }
        let wires = self.model.wire_node(&node.name, node.op.clone(), &inputs)?;
        for (slot, w) in wires.into_iter().enumerate() {
            self.mapping.insert(OutletId::new(id, slot), w);
        }
        Ok(())
    }
}

/// `model` cut into (up to) `parts` segments.
pub fn split(model: &TypedModel, parts: usize) -> TractResult<Segments> {
    let model_inputs = model.input_outlets()?.to_vec();
    let model_outputs = model.output_outlets()?.to_vec();
    let order: Vec<usize> = model
        .eval_order()?
        .into_iter()
        .filter(|&id| !is_constant(model, &model_inputs, id))
        .collect();
    let position: HashMap<usize, usize> =
        order.iter().enumerate().map(|(p, &id)| (id, p)).collect();
    let values = values(model, &order, &position)?;
    let cuts = cut_points(model, &order, &values, parts.max(1));
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().map(|c| c + 1));
    bounds.push(order.len());

    // Each segment's model and what it takes from outside.
    let mut builders = Vec::new();
    let mut computed = HashMap::new();
    for (s, range) in bounds.windows(2).enumerate() {
        computed.extend(order[range[0]..range[1]].iter().map(|&id| (id, s)));
        // The whole model's symbols (a data-dependent dimension such as in-graph NMS's row count): a
        // segment's facts name them, and tract resolves them in the model's own scope.
        let segment = TypedModel {
            symbols: model.symbols.clone(),
            ..TypedModel::default()
        };
        let mut builder = SegmentBuilder {
            whole: model,
            computed: &computed,
            model: segment,
            mapping: HashMap::new(),
            imports: Vec::new(),
        };
        for &id in &order[range[0]..range[1]] {
            builder.add(id, model_inputs.iter().any(|o| o.node == id))?;
        }
        builders.push((builder.model, builder.mapping, builder.imports));
    }

    // A slot for each model input, each value a segment imports, and each model output; a segment
    // writes the values that later segments import and the model outputs it computes.
    let mut slot_of: HashMap<OutletId, Slot> = HashMap::new();
    let mut slot = |o: OutletId| {
        let next = slot_of.len();
        *slot_of.entry(o).or_insert(next)
    };
    let inputs: Vec<Slot> = model_inputs.iter().map(|&o| slot(o)).collect();
    let mut outputs = Vec::new();
    for &o in &model_outputs {
        outputs.push(match &model.outlet_fact(o)?.konst {
            Some(k) if !computed.contains_key(&o.node) => Output::Constant(k.clone()),
            _ => Output::Slot(slot(o)),
        });
    }
    let mut last_reader: HashMap<Slot, usize> = HashMap::new();
    let reads: Vec<Vec<Slot>> = builders
        .iter()
        .enumerate()
        .map(|(s, (_, _, imports))| {
            imports
                .iter()
                .map(|&o| {
                    let slot = slot(o);
                    last_reader.insert(slot, s);
                    slot
                })
                .collect()
        })
        .collect();
    let mut segments = Vec::new();
    for ((s, (mut seg, mapping, _)), reads) in builders.into_iter().enumerate().zip(reads) {
        let mut written: Vec<(Slot, OutletId)> = slot_of
            .iter()
            .filter(|&(outlet, slot)| {
                computed.get(&outlet.node) == Some(&s)
                    && !model_inputs.contains(outlet)
                    && (last_reader.get(slot).is_some_and(|&r| r > s)
                        || model_outputs.contains(outlet))
            })
            .map(|(&outlet, &slot)| (slot, mapping[&outlet]))
            .collect();
        written.sort();
        let (writes, outlets): (Vec<Slot>, Vec<OutletId>) = written.into_iter().unzip();
        seg.select_output_outlets(&outlets)?;
        segments.push(Segment {
            model: seg,
            reads,
            writes,
        });
    }

    let output_slots: HashSet<Slot> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Slot(s) => Some(*s),
            Output::Constant(_) => None,
        })
        .collect();
    let mut last_read_by = vec![Vec::new(); segments.len()];
    for (&slot, &last) in &last_reader {
        if !output_slots.contains(&slot) {
            last_read_by[last].push(slot);
        }
    }
    Ok(Segments {
        segments,
        wiring: Wiring {
            slots: slot_of.len(),
            inputs,
            outputs,
            last_read_by,
        },
    })
}

impl Segments {
    /// Plans every segment with `plan`, on up to `threads` threads (segments taken in turn from a
    /// shared queue); the first error, if any.
    pub fn plan<P, E>(
        self,
        threads: usize,
        plan: impl Fn(TypedModel) -> Result<P, E> + Sync,
    ) -> Result<SegmentedPlan<P>, E>
    where
        P: Send,
        E: Send,
    {
        let Segments { segments, wiring } = self;
        let mut reads = Vec::with_capacity(segments.len());
        let mut writes = Vec::with_capacity(segments.len());
        let mut models = Vec::with_capacity(segments.len());
        for segment in segments {
            reads.push(segment.reads);
            writes.push(segment.writes);
            models.push(Mutex::new(Some(segment.model)));
        }
        let results: Vec<Mutex<Option<Result<P, E>>>> =
            models.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = models.get(i) else { break };
            let model = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(model) = model {
                let planned = plan(model);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(planned);
            }
        };
        let threads = threads.clamp(1, models.len().max(1));
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
        let mut plans = Vec::with_capacity(results.len());
        for result in results {
            let result = result.into_inner().unwrap_or_else(|e| e.into_inner());
            plans.push(result.expect("every segment is taken from the queue once")?);
        }
        Ok(SegmentedPlan {
            plans,
            reads,
            writes,
            wiring,
        })
    }
}

impl<P> SegmentedPlan<P> {
    /// The plans, in the order they run.
    pub fn plans(&self) -> &[P] {
        &self.plans
    }

    /// Runs the model on `inputs` (in the model's input order), each segment through `run`; the
    /// model's outputs in its order.
    pub fn run(
        &self,
        inputs: TVec<TValue>,
        run: impl Fn(&P, TVec<TValue>) -> TractResult<TVec<TValue>>,
    ) -> TractResult<TVec<TValue>> {
        let wiring = &self.wiring;
        ensure!(
            inputs.len() == wiring.inputs.len(),
            "the model takes {} inputs, {} given",
            wiring.inputs.len(),
            inputs.len()
        );
        let mut values: Vec<Option<TValue>> = vec![None; wiring.slots];
        for (&s, v) in wiring.inputs.iter().zip(inputs) {
            values[s] = Some(v);
        }
        for (i, plan) in self.plans.iter().enumerate() {
            let mut ins = TVec::with_capacity(self.reads[i].len());
            for &s in &self.reads[i] {
                let Some(v) = values[s].clone() else {
                    bail!("segment {i} reads a value no earlier segment wrote");
                };
                ins.push(v);
            }
            // Dropped before the run, so a segment holds the only reference to a value it reads last.
            for &s in &wiring.last_read_by[i] {
                values[s] = None;
            }
            let outs = run(plan, ins)?;
            ensure!(
                outs.len() == self.writes[i].len(),
                "segment {i} gave {} values, {} expected",
                outs.len(),
                self.writes[i].len()
            );
            for (&s, v) in self.writes[i].iter().zip(outs) {
                values[s] = Some(v);
            }
        }
        wiring
            .outputs
            .iter()
            .map(|o| match o {
                Output::Slot(s) => values[*s]
                    .clone()
                    .ok_or_else(|| format_err!("no segment wrote model output slot {s}")),
                Output::Constant(k) => Ok(TValue::from_const(k.clone())),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::engine::f32_values;
    use crate::core::engine::tract::Plan;
    use tract_onnx::tract_core::ops::konst::Const;
    use tract_onnx::tract_core::ops::math::{abs, add, exp, mul, neg};

    type Built = (TypedModel, OutletId);

    fn source(width: usize) -> Built {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, width])).unwrap();
        (model, x)
    }

    /// Residual blocks numbered `blocks` on `a`: `b = exp(-|a|)`, `a * b + k`, with `k` a constant: inside a
    /// block two values are alive, between blocks one.
    fn blocks(model: &mut TypedModel, mut a: OutletId, blocks: std::ops::Range<usize>) -> OutletId {
        for i in blocks {
            let m = model.wire_node(format!("abs{i}"), abs(), &[a]).unwrap()[0];
            let m = model.wire_node(format!("neg{i}"), neg(), &[m]).unwrap()[0];
            let b = model.wire_node(format!("exp{i}"), exp(), &[m]).unwrap()[0];
            let p = model.wire_node(format!("mul{i}"), mul(), &[a, b]).unwrap()[0];
            let k = model
                .add_const(format!("k{i}"), tensor2(&[[i as f32, 1.0, -1.0, 0.5]]))
                .unwrap();
            a = model.wire_node(format!("add{i}"), add(), &[p, k]).unwrap()[0];
        }
        a
    }

    fn plan(model: TypedModel) -> TractResult<Plan> {
        model.into_optimized()?.into_runnable()
    }

    fn run_whole(model: &TypedModel, input: &Tensor) -> TVec<TValue> {
        plan(model.clone())
            .unwrap()
            .run(tvec!(input.clone().into()))
            .unwrap()
    }

    fn run_segments(model: &TypedModel, parts: usize, input: &Tensor) -> TVec<TValue> {
        split(model, parts)
            .unwrap()
            .plan(2, plan)
            .unwrap()
            .run(tvec!(input.clone().into()), |p, inputs| p.run(inputs))
            .unwrap()
    }

    fn assert_same(a: &TVec<TValue>, b: &TVec<TValue>, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: output count");
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            assert_eq!(x.shape(), y.shape(), "{what}: output {i}");
            let (x, y) = (f32_values(x).unwrap(), f32_values(y).unwrap());
            for (p, q) in x.iter().zip(y.iter()) {
                assert!(
                    (p - q).abs() <= 1e-6,
                    "{what}: output {i}: {x:?} against {y:?}"
                );
            }
        }
    }

    fn input() -> Tensor {
        tensor2(&[[0.5f32, -1.5, 2.0, -0.25]])
    }

    #[test]
    fn the_segments_compute_the_whole_models_outputs() {
        let (mut model, x) = source(4);
        let early = blocks(&mut model, x, 0..2);
        let late = blocks(&mut model, early, 2..8);
        // Outputs in an order of their own: the late value first, one written by the first segment
        // (and read by later ones) second.
        model.select_output_outlets(&[late, early]).unwrap();
        let whole = run_whole(&model, &input());
        for parts in 1..=8 {
            let segments = split(&model, parts).unwrap();
            assert_eq!(segments.segments.len(), parts, "{parts} parts");
            assert_same(
                &run_segments(&model, parts, &input()),
                &whole,
                &format!("{parts} parts"),
            );
        }
    }

    #[test]
    fn cuts_fall_where_one_value_crosses() {
        let (mut model, x) = source(4);
        let out = blocks(&mut model, x, 0..8);
        model.select_output_outlets(&[out]).unwrap();
        for parts in [2, 3, 4] {
            let segments = split(&model, parts).unwrap();
            for (i, segment) in segments.segments.iter().enumerate() {
                // One input each (the model's, then the one value crossing the cut), and constants
                // copied in, not passed: every other input would be a second crossing value.
                assert_eq!(segment.reads.len(), 1, "{parts} parts, segment {i}");
                assert!(
                    segment.model.nodes().iter().any(|n| n.op_is::<Const>()),
                    "constants copied in"
                );
            }
        }
    }

    #[test]
    fn a_model_input_read_late_and_a_constant_output_are_kept() {
        let (mut model, x) = source(4);
        let y = blocks(&mut model, x, 0..6);
        // The input read again at the very end, and an output tract knows before anything runs.
        let sum = model.wire_node("skip", add(), &[y, x]).unwrap()[0];
        let k = model
            .add_const("constant_output", tensor1(&[7f32, 8.0]))
            .unwrap();
        model.select_output_outlets(&[k, sum]).unwrap();
        let whole = run_whole(&model, &input());
        for parts in [1, 3, 5] {
            let out = run_segments(&model, parts, &input());
            assert_eq!(&f32_values(&out[0]).unwrap()[..], &[7.0, 8.0]);
            assert_same(&out, &whole, &format!("{parts} parts"));
        }
    }

    #[test]
    fn a_symbolic_dimension_runs_in_every_segment() {
        // A batch of `n` rows, known only when the model runs.
        let mut model = TypedModel::default();
        let n = model.symbols.sym("n");
        let x = model
            .add_source("x", f32::fact(&[n.to_dim(), 4.to_dim()]))
            .unwrap();
        let y = blocks(&mut model, x, 0..6);
        model.select_output_outlets(&[y]).unwrap();
        let rows = tensor2(&[[0.5f32, -1.5, 2.0, -0.25], [1.0, 2.0, 3.0, 4.0]]);
        let whole = run_whole(&model, &rows);
        for parts in [2, 3] {
            assert_same(
                &run_segments(&model, parts, &rows),
                &whole,
                &format!("{parts} parts"),
            );
        }
    }

    #[test]
    fn more_parts_than_nodes_gives_what_it_can() {
        let (mut model, x) = source(4);
        let y = model.wire_node("abs", abs(), &[x]).unwrap()[0];
        model.select_output_outlets(&[y]).unwrap();
        let segments = split(&model, 10).unwrap();
        assert!((1..=2).contains(&segments.segments.len()));
        assert_same(
            &run_segments(&model, 10, &input()),
            &run_whole(&model, &input()),
            "tiny",
        );
        // The identity model: its input is its output.
        let (mut model, x) = source(4);
        model.select_output_outlets(&[x]).unwrap();
        assert_same(
            &run_segments(&model, 3, &input()),
            &tvec!(input().into()),
            "identity",
        );
    }

    #[test]
    fn a_segment_that_fails_to_plan_fails_the_build_and_a_run_checks_its_inputs() {
        let (mut model, x) = source(4);
        let y = blocks(&mut model, x, 0..6);
        model.select_output_outlets(&[y]).unwrap();
        let calls = AtomicUsize::new(0);
        let failed = split(&model, 3).unwrap().plan(4, |m| {
            if calls.fetch_add(1, Ordering::Relaxed) == 1 {
                Err("no plan")
            } else {
                plan(m).map_err(|_| "tract")
            }
        });
        assert_eq!(failed.err(), Some("no plan"));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            3,
            "every segment was taken once"
        );

        let planned = split(&model, 3).unwrap().plan(1, plan).unwrap();
        assert_eq!(planned.plans().len(), 3);
        let err = planned
            .run(tvec!(), |p, inputs| p.run(inputs))
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes 1 inputs, 0 given"), "{err}");
    }

    #[test]
    fn graphs_are_cut_by_size() {
        for (nodes, parts) in [
            (0, 1),
            (199, 1),
            (213, 1),
            (399, 1),
            (400, 2),
            (869, 4),
            (5000, 25),
        ] {
            assert_eq!(parts_for(nodes), parts, "{nodes} nodes");
        }
    }
}
