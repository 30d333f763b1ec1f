//! A model cut into consecutive segments, each typed and planned on its own (on as many threads as
//! the machine has) and run one after the other.
//!
//! Why: tract applies each rewrite of its declutter and codegen (`ModelPatch::apply` in tract-core
//! 0.23) in time proportional to the whole graph, since every node a patch adds is compared with every
//! node of the model. A plan build therefore grows with the square of the node count: on PP-PicoDet-S
//! (869 typed nodes) six segments plan in 0.53 of the whole graph's time on one thread, and the
//! segments are independent, so they plan in parallel: 0.34 on two (`cargo bench --bench
//! plan_segments`).
//!
//! The cut is made on the model as tract-onnx reads it, before its shapes and types are inferred, so
//! that the type inference (tract-hir's analyser and its translation to typed operators, 10 ms of
//! PicoDet-S's load) runs segment by segment too: a segment is typed once the segments before it are
//! (its inputs' facts are their outputs'), while a second thread plans the segments already typed.
//!
//! Where to cut: positions in evaluation order where the fewest values are alive (one, between two
//! blocks of a network), and among those, where every value crossing is read by convolutions only, so
//! that tract loses as few rewrites across the cut as it can (an activation fused into the operator
//! before it, an axis change moved into the one after). A constant that crosses a cut is copied into
//! the segment that reads it, so tract still folds it there.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_hir::infer::Factoid;

use crate::core::threads::spawn_beside;

/// About how many nodes of the model as read (before type inference) one segment holds: PicoDet-S
/// (372, 869 once typed) is cut in six, NanoDet-g (101) not at all. On PicoDet-S, cut as read, six
/// segments build on two threads in 0.90 of four's time with inference within 1% of the whole plan's
/// and the same outputs bit for bit (`cargo bench --bench plan_segments -- MODEL 4 5 6`); five changed
/// the outputs (a `MoveAxis` more). Cut after typing, six had cost 2-4% of inference.
pub const SEGMENT_NODES: usize = 62;

/// How many segments a model of `nodes` nodes (constants left out) is cut into.
pub fn parts_for(nodes: usize) -> usize {
    (nodes / SEGMENT_NODES).max(1)
}

/// What differs between the two graphs a model is cut as: the model as read ([`InferenceModel`],
/// typed segment by segment) and a typed one.
pub trait GraphKind: Sized {
    /// The value of `outlet` when it is known before the model runs.
    fn known_value(&self, outlet: OutletId) -> Option<Arc<Tensor>>;
    /// A convolution, the operator a cut before which loses no fusion.
    fn is_convolution(op: &dyn Op) -> bool;
    fn constant(&mut self, name: String, value: Arc<Tensor>) -> TractResult<OutletId>;
    /// The segment with every shape and type known.
    fn typed(self) -> TractResult<TypedModel>;
}

impl GraphKind for TypedModel {
    fn known_value(&self, outlet: OutletId) -> Option<Arc<Tensor>> {
        self.outlet_fact(outlet).ok()?.konst.clone()
    }
    fn is_convolution(op: &dyn Op) -> bool {
        op.downcast_ref::<Conv>().is_some()
    }
    fn constant(&mut self, name: String, value: Arc<Tensor>) -> TractResult<OutletId> {
        self.add_const(name, value)
    }
    fn typed(self) -> TractResult<TypedModel> {
        Ok(self)
    }
}

/// The name tract-hir gives the convolution of an ONNX model before its types are inferred.
const CONVOLUTION_AS_READ: &str = "ConvHir";

impl GraphKind for InferenceModel {
    fn known_value(&self, outlet: OutletId) -> Option<Arc<Tensor>> {
        // Before the analysis, only an initializer's fact holds its value; a constant node (ONNX's
        // `Constant`, and the weights `weight_fold.rs` folds) holds it in its operator.
        let value = self.outlet_fact(outlet).ok()?.value.concretize();
        value.or_else(|| Some(self.node(outlet.node).op_as::<Const>()?.val().clone()))
    }
    fn is_convolution(op: &dyn Op) -> bool {
        op.name() == CONVOLUTION_AS_READ
    }
    fn constant(&mut self, name: String, value: Arc<Tensor>) -> TractResult<OutletId> {
        // Not `InferenceModel::add_const`, which looks for an equal constant among all the nodes.
        let fact = InferenceFact::from(TypedFact::try_from(value.clone())?);
        let op = Const::new(value)?;
        Ok(self.add_node(name, op, tvec!(fact))?.into())
    }
    fn typed(self) -> TractResult<TypedModel> {
        self.into_typed()
    }
}

/// An operator of a graph [`Cuttable`] stands for: what tract's `Graph` asks of one, and safe to share
/// with the threads that build the segments.
pub trait GraphOp:
    std::fmt::Debug + std::fmt::Display + AsRef<dyn Op> + AsMut<dyn Op> + Clone + Send + Sync + 'static
{
}

impl<
        O: std::fmt::Debug
            + std::fmt::Display
            + AsRef<dyn Op>
            + AsMut<dyn Op>
            + Clone
            + Send
            + Sync
            + 'static,
    > GraphOp for O
{
}

/// A graph tract can cut into segments: either [`GraphKind`].
pub trait Cuttable: GraphKind + Send + Sync {
    type Fact: Fact + Clone + From<TypedFact> + 'static;
    type Op: GraphOp;

    fn graph(&self) -> &Graph<Self::Fact, Self::Op>;
    fn graph_mut(&mut self) -> &mut Graph<Self::Fact, Self::Op>;
    fn empty(symbols: SymbolScope) -> Self;
    fn wire(
        &mut self,
        name: &str,
        op: Self::Op,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>>;
    fn source(&mut self, name: String, fact: Self::Fact) -> TractResult<OutletId>;
}

impl<F, O> Cuttable for Graph<F, O>
where
    F: Fact + Clone + From<TypedFact> + 'static,
    O: GraphOp,
    Graph<F, O>: GraphKind + SpecialOps<F, O>,
{
    type Fact = F;
    type Op = O;

    fn graph(&self) -> &Self {
        self
    }
    fn graph_mut(&mut self) -> &mut Self {
        self
    }
    fn empty(symbols: SymbolScope) -> Self {
        Graph {
            symbols,
            ..Graph::default()
        }
    }
    fn wire(&mut self, name: &str, op: O, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        self.wire_node(name, op, inputs)
    }
    fn source(&mut self, name: String, fact: F) -> TractResult<OutletId> {
        self.add_source(name, fact)
    }
}

/// Where the values that cross segments live while a model runs.
type Slot = usize;

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

/// Every segment planned: what runs the model.
#[derive(Debug, Clone)]
pub struct SegmentedPlan<P> {
    plans: Vec<P>,
    reads: Vec<Vec<Slot>>,
    writes: Vec<Vec<Slot>>,
    wiring: Wiring,
    /// The facts of the model's outputs, in its order, as typed.
    output_facts: Vec<TypedFact>,
}

/// A node whose every output is known before the model runs (and that is not a model input): it is
/// copied as a constant wherever it is read instead of belonging to a segment.
fn is_constant<M: Cuttable>(model: &M, inputs: &[OutletId], id: usize) -> bool {
    let node = model.graph().node(id);
    !node.outputs.is_empty()
        && !inputs.iter().any(|o| o.node == id)
        && (0..node.outputs.len()).all(|slot| model.known_value(OutletId::new(id, slot)).is_some())
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

fn values<M: Cuttable>(
    model: &M,
    order: &[usize],
    position: &HashMap<usize, usize>,
) -> TractResult<Vec<Value>> {
    let model = model.graph();
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
fn cut_cost<M: Cuttable>(
    model: &M,
    order: &[usize],
    values: &[Value],
    position: usize,
) -> (usize, bool) {
    let crossing: Vec<&Value> = values.iter().filter(|v| v.crosses(position)).collect();
    let loses_a_fusion = crossing.iter().any(|v| {
        v.read_at.iter().filter(|&&q| q > position).any(|&q| {
            q >= order.len() || !M::is_convolution(model.graph().node(order[q]).op.as_ref())
        })
    });
    (crossing.len(), loses_a_fusion)
}

/// Positions after which to cut: near each `i / parts` of the evaluation order, the cheapest cut
/// within a quarter of a segment either way; strictly increasing, never after the last position.
fn cut_points<M: Cuttable>(
    model: &M,
    order: &[usize],
    values: &[Value],
    parts: usize,
) -> Vec<usize> {
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

/// How many nodes of `model` a cut shares out (its constants left out): what [`parts_for`] counts.
pub fn cuttable_nodes<M: Cuttable>(model: &M) -> TractResult<usize> {
    let inputs = model.graph().input_outlets()?;
    Ok((0..model.graph().nodes.len())
        .filter(|&id| !is_constant(model, inputs, id))
        .count())
}

/// `model` cut into (up to) `parts` segments: which nodes each holds, in evaluation order, and the
/// values each writes for later segments or as model outputs.
struct Layout {
    /// The nodes of each segment, in evaluation order.
    members: Vec<Vec<usize>>,
    /// The segment each computed node belongs to.
    segment_of: HashMap<usize, usize>,
    /// What each segment writes: values later segments read and model outputs, ordered by slot.
    writes: Vec<Vec<(Slot, OutletId)>>,
    /// The slot of every value that may cross a cut, model inputs and outputs.
    slot_of: HashMap<OutletId, Slot>,
    inputs: Vec<Slot>,
    outputs: Vec<Output>,
}

fn layout<M: Cuttable>(model: &M, parts: usize) -> TractResult<Layout> {
    let graph = model.graph();
    let model_inputs = graph.input_outlets()?.to_vec();
    let model_outputs = graph.output_outlets()?.to_vec();
    let order: Vec<usize> = graph
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
    let members: Vec<Vec<usize>> = bounds
        .windows(2)
        .map(|r| order[r[0]..r[1]].to_vec())
        .collect();
    let segment_of: HashMap<usize, usize> = members
        .iter()
        .enumerate()
        .flat_map(|(s, ids)| ids.iter().map(move |&id| (id, s)))
        .collect();

    // A slot for each model input, each computed value a later segment reads, and each model output.
    let mut slot_of: HashMap<OutletId, Slot> = HashMap::new();
    let mut slot = |o: OutletId| {
        let next = slot_of.len();
        *slot_of.entry(o).or_insert(next)
    };
    let inputs: Vec<Slot> = model_inputs.iter().map(|&o| slot(o)).collect();
    let mut outputs = Vec::new();
    for &o in &model_outputs {
        outputs.push(match model.known_value(o) {
            Some(k) if !segment_of.contains_key(&o.node) => Output::Constant(k),
            _ => Output::Slot(slot(o)),
        });
    }
    let mut writes = vec![Vec::new(); members.len()];
    for (s, ids) in members.iter().enumerate() {
        for &id in ids {
            if model_inputs.iter().any(|o| o.node == id) {
                continue;
            }
            for (out, output) in graph.node(id).outputs.iter().enumerate() {
                let outlet = OutletId::new(id, out);
                let read_later = output
                    .successors
                    .iter()
                    .any(|r| segment_of.get(&r.node).is_some_and(|&t| t > s));
                if read_later || model_outputs.contains(&outlet) {
                    writes[s].push((slot(outlet), outlet));
                }
            }
        }
        writes[s].sort();
    }
    Ok(Layout {
        members,
        segment_of,
        writes,
        slot_of,
        inputs,
        outputs,
    })
}

/// One segment while it is built: its graph, where each value of the whole model it uses is in it,
/// and the slots it reads (model inputs and what earlier segments wrote), in input order.
struct SegmentBuilder<'a, M: Cuttable> {
    whole: &'a M,
    layout: &'a Layout,
    /// The typed facts of the values earlier segments wrote.
    facts: &'a HashMap<OutletId, TypedFact>,
    model: M,
    mapping: HashMap<OutletId, OutletId>,
    reads: Vec<Slot>,
}

impl<M: Cuttable> SegmentBuilder<'_, M> {
    /// The wire in this segment that carries `outlet` of the whole model: the segment's own, a copy of
    /// a constant, or a new input of the segment.
    fn import(&mut self, outlet: OutletId) -> TractResult<OutletId> {
        if let Some(&o) = self.mapping.get(&outlet) {
            return Ok(o);
        }
        let writer = &self.whole.graph().node(outlet.node).name;
        let wire =
            if !self.layout.segment_of.contains_key(&outlet.node) {
                let value = self
                    .whole
                    .known_value(outlet)
                    .with_context(|| format!("{writer}: a constant without a value"))?;
                self.model
                    .constant(format!("{writer}.{}", outlet.slot), value)?
            } else {
                let fact = self.facts.get(&outlet).with_context(|| {
                    format!("{writer}: read before an earlier segment typed it")
                })?;
                match &fact.konst {
                    Some(k) => self
                        .model
                        .constant(format!("{writer}.{}", outlet.slot), k.clone())?,
                    None => {
                        let slot =
                            *self.layout.slot_of.get(&outlet).with_context(|| {
                                format!("{writer}: crosses a cut without a slot")
                            })?;
                        self.reads.push(slot);
                        self.model.source(
                            format!("segment_input.{writer}.{}", outlet.slot),
                            fact.without_value().into(),
                        )?
                    }
                }
            };
        self.mapping.insert(outlet, wire);
        Ok(wire)
    }

    /// Adds node `id` of the whole model to this segment.
    fn add(&mut self, id: usize) -> TractResult<()> {
        let node = self.whole.graph().node(id);
        if let Some(input) = self
            .whole
            .graph()
            .input_outlets()?
            .iter()
            .find(|o| o.node == id)
        {
            // A model input goes in through the segment that holds its source.
            self.reads.push(self.layout.slot_of[input]);
            let source = self
                .model
                .source(node.name.clone(), node.outputs[0].fact.clone())?;
            self.mapping.insert(OutletId::new(id, 0), source);
            return Ok(());
        }
        let mut inputs = TVec::new();
        for &input in &node.inputs {
            inputs.push(self.import(input)?);
        }
        let wires = self.model.wire(&node.name, node.op.clone(), &inputs)?;
        for (slot, w) in wires.into_iter().enumerate() {
            self.mapping.insert(OutletId::new(id, slot), w);
        }
        Ok(())
    }
}

/// Segment `s` of `whole` typed: its graph of its own, as typed.
struct TypedSegment {
    model: TypedModel,
    /// The slots it reads, in its input order.
    reads: Vec<Slot>,
    /// The typed fact of each value it writes, by its outlet in the whole model.
    writes: Vec<(OutletId, TypedFact)>,
}

fn typed_segment<M: Cuttable>(
    whole: &M,
    layout: &Layout,
    facts: &HashMap<OutletId, TypedFact>,
    s: usize,
) -> TractResult<TypedSegment> {
    let mut builder = SegmentBuilder {
        whole,
        layout,
        facts,
        // The whole model's symbols (a data-dependent dimension such as in-graph NMS's row count): a
        // segment's facts name them, and tract resolves them in the model's own scope.
        model: M::empty(whole.graph().symbols.clone()),
        mapping: HashMap::new(),
        reads: Vec::new(),
    };
    for &id in &layout.members[s] {
        builder.add(id)?;
    }
    let outlets: Vec<OutletId> = layout.writes[s]
        .iter()
        .map(|(_, o)| builder.mapping[o])
        .collect();
    let (mut model, reads) = (builder.model, builder.reads);
    model.graph_mut().select_output_outlets(&outlets)?;
    let model = model.typed()?;
    let mut writes = Vec::new();
    for ((_, outlet), &o) in layout.writes[s].iter().zip(model.output_outlets()?) {
        writes.push((*outlet, model.outlet_fact(o)?.clone()));
    }
    Ok(TypedSegment {
        model,
        reads,
        writes,
    })
}

/// Why a segmented plan was not built.
#[derive(Debug)]
pub enum SegmentError<E> {
    /// Cutting the model, or typing a segment (tract's type inference).
    Typing(TractError),
    /// Planning a segment.
    Planning(E),
}

/// What the workers share while they type and plan the segments.
struct Progress<P, E> {
    /// The next segment to type (they are typed in order, one at a time).
    next_to_type: usize,
    typing: bool,
    /// Segments typed and not yet taken to plan.
    typed: VecDeque<(usize, TypedModel)>,
    /// The typed facts of the model's inputs and of every value a typed segment writes.
    facts: HashMap<OutletId, TypedFact>,
    reads: Vec<Option<Vec<Slot>>>,
    plans: Vec<Option<P>>,
    planned: usize,
    failed: Option<SegmentError<E>>,
}

/// Fails the build when a worker panics, so that the others, which may be waiting for the segment it
/// was typing, stop instead of waiting for ever (`std::thread::scope` then passes the panic on).
struct PanicGuard<'a, P, E> {
    progress: &'a Mutex<Progress<P, E>>,
    changed: &'a Condvar,
}

impl<P, E> Drop for PanicGuard<'_, P, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            state.failed.get_or_insert_with(|| {
                SegmentError::Typing(format_err!("a segment's build panicked"))
            });
            self.changed.notify_all();
        }
    }
}

/// `model` cut into (up to) `parts` segments, typed in order and planned by `plan` as soon as each is
/// typed, on up to `threads` threads; the first error, if any.
pub fn plan_segments<M, P, E>(
    model: &M,
    parts: usize,
    threads: usize,
    plan: impl Fn(TypedModel) -> Result<P, E> + Sync,
) -> Result<SegmentedPlan<P>, SegmentError<E>>
where
    M: Cuttable,
    P: Send,
    E: Send,
{
    let layout = layout(model, parts).map_err(SegmentError::Typing)?;
    let n = layout.members.len();
    // A model input's fact, for the segments after the one that holds its source.
    let mut input_facts = HashMap::new();
    for &input in model
        .graph()
        .input_outlets()
        .map_err(SegmentError::Typing)?
    {
        let fact = model
            .graph()
            .outlet_fact(input)
            .and_then(|f| f.to_typed_fact().map(|f| f.into_owned()))
            .map_err(SegmentError::Typing)?;
        input_facts.insert(input, fact);
    }
    let progress = Mutex::new(Progress {
        next_to_type: 0,
        typing: false,
        typed: VecDeque::new(),
        facts: input_facts,
        reads: (0..n).map(|_| None).collect(),
        plans: (0..n).map(|_| None).collect(),
        planned: 0,
        failed: None,
    });
    let changed = Condvar::new();
    let lock = || progress.lock().unwrap_or_else(|e| e.into_inner());
    let work = || {
        let _wakes_the_others = PanicGuard {
            progress: &progress,
            changed: &changed,
        };
        let mut state = lock();
        loop {
            if state.failed.is_some() || state.planned == n {
                return;
            }
            // Typing first: it is the chain every later segment waits on.
            if !state.typing && state.next_to_type < n {
                let s = state.next_to_type;
                state.typing = true;
                let facts = std::mem::take(&mut state.facts);
                drop(state);
                let typed = typed_segment(model, &layout, &facts, s);
                state = lock();
                state.facts = facts;
                state.typing = false;
                match typed {
                    Ok(typed) => {
                        state.facts.extend(typed.writes);
                        state.reads[s] = Some(typed.reads);
                        state.typed.push_back((s, typed.model));
                        state.next_to_type += 1;
                    }
                    Err(e) => state.failed = Some(SegmentError::Typing(e)),
                }
                changed.notify_all();
            } else if let Some((s, typed)) = state.typed.pop_front() {
                drop(state);
                let planned = plan(typed);
                state = lock();
                match planned {
                    Ok(p) => {
                        state.plans[s] = Some(p);
                        state.planned += 1;
                    }
                    Err(e) => {
                        if state.failed.is_none() {
                            state.failed = Some(SegmentError::Planning(e));
                        }
                    }
                }
                changed.notify_all();
            } else {
                state = changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
    };
    let threads = threads.clamp(1, n.max(1));
    std::thread::scope(|scope| {
        for _ in 1..threads {
            spawn_beside(scope, work);
        }
        work();
    });
    let progress = progress.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(failed) = progress.failed {
        return Err(failed);
    }
    let reads: Vec<Vec<Slot>> = progress
        .reads
        .into_iter()
        .map(|r| r.expect("every segment was typed"))
        .collect();
    let plans: Vec<P> = progress
        .plans
        .into_iter()
        .map(|p| p.expect("every segment was planned"))
        .collect();

    let output_slots: HashSet<Slot> = layout
        .outputs
        .iter()
        .filter_map(|o| match o {
            Output::Slot(s) => Some(*s),
            Output::Constant(_) => None,
        })
        .collect();
    let mut last_reader: HashMap<Slot, usize> = HashMap::new();
    for (s, slots) in reads.iter().enumerate() {
        for &slot in slots {
            last_reader.insert(slot, s);
        }
    }
    let mut last_read_by = vec![Vec::new(); n];
    for (&slot, &last) in &last_reader {
        if !output_slots.contains(&slot) {
            last_read_by[last].push(slot);
        }
    }
    // The facts of the model's outputs: as a segment typed them, a constant's own, or a model input's.
    let whole = model.graph();
    let mut output_facts = Vec::new();
    for (&o, output) in whole
        .output_outlets()
        .map_err(SegmentError::Typing)?
        .iter()
        .zip(&layout.outputs)
    {
        let fact = match (output, progress.facts.get(&o)) {
            (_, Some(f)) => f.clone(),
            (Output::Constant(k), None) => {
                TypedFact::try_from(k.clone()).map_err(SegmentError::Typing)?
            }
            (Output::Slot(_), None) => {
                return Err(SegmentError::Typing(format_err!(
                    "no segment typed output {}",
                    whole.node(o.node).name
                )))
            }
        };
        output_facts.push(fact);
    }
    let writes = layout
        .writes
        .iter()
        .map(|w| w.iter().map(|(slot, _)| *slot).collect())
        .collect();
    Ok(SegmentedPlan {
        plans,
        reads,
        writes,
        wiring: Wiring {
            slots: layout.slot_of.len(),
            inputs: layout.inputs,
            outputs: layout.outputs,
            last_read_by,
        },
        output_facts,
    })
}

impl<P> SegmentedPlan<P> {
    /// The plans, in the order they run.
    pub fn plans(&self) -> &[P] {
        &self.plans
    }

    /// The facts of the model's outputs, in its order, as the segments typed them.
    pub fn output_facts(&self) -> &[TypedFact] {
        &self.output_facts
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
    use std::sync::atomic::{AtomicUsize, Ordering};
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
        plan_segments(model, parts, 2, plan)
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
            let segments = plan_segments(&model, parts, 2, Ok::<_, ()>).unwrap();
            assert_eq!(segments.plans().len(), parts, "{parts} parts");
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
            let segments = plan_segments(&model, parts, 2, Ok::<_, ()>).unwrap();
            for (i, (segment, reads)) in segments.plans.iter().zip(&segments.reads).enumerate() {
                // One input each (the model's, then the one value crossing the cut), and constants
                // copied in, not passed: every other input would be a second crossing value.
                assert_eq!(reads.len(), 1, "{parts} parts, segment {i}");
                assert!(
                    segment.nodes().iter().any(|n| n.op_is::<Const>()),
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
        let segments = plan_segments(&model, 10, 2, Ok::<_, ()>).unwrap();
        assert!((1..=2).contains(&segments.plans().len()));
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
        let failed = plan_segments(&model, 3, 1, |m| {
            if calls.fetch_add(1, Ordering::Relaxed) == 1 {
                Err("no plan")
            } else {
                plan(m).map_err(|_| "tract")
            }
        });
        assert!(matches!(failed, Err(SegmentError::Planning("no plan"))));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2,
            "the build stops at the first failure"
        );

        let planned = plan_segments(&model, 3, 1, plan).unwrap();
        assert_eq!(planned.plans().len(), 3);
        let err = planned
            .run(tvec!(), |p, inputs| p.run(inputs))
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes 1 inputs, 0 given"), "{err}");
    }

    #[test]
    fn a_panic_while_a_segment_is_built_stops_every_worker_and_is_passed_on() {
        let (mut model, x) = source(4);
        let y = blocks(&mut model, x, 0..6);
        model.select_output_outlets(&[y]).unwrap();
        for threads in [1, 2, 3] {
            let calls = AtomicUsize::new(0);
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                plan_segments(&model, 3, threads, |m| {
                    if calls.fetch_add(1, Ordering::Relaxed) == 0 {
                        panic!("a bug in a segment's plan");
                    }
                    plan(m)
                })
            }));
            assert!(built.is_err(), "{threads} threads: the panic is passed on");
        }
    }

    /// [`blocks`] on the model as read, before type inference; with `bad`, the constant is text, which
    /// tract cannot add to a number.
    fn inference_blocks(
        model: &mut InferenceModel,
        mut a: OutletId,
        blocks: std::ops::Range<usize>,
        bad: bool,
    ) -> OutletId {
        use tract_onnx::tract_core::ops::math::{Add, Mul};
        use tract_onnx::tract_hir::internal::{BinIntoHir, ElementWiseIntoHir};
        for i in blocks {
            let m = model
                .wire_node(format!("abs{i}"), abs().into_hir(), &[a])
                .unwrap()[0];
            let m = model
                .wire_node(format!("neg{i}"), neg().into_hir(), &[m])
                .unwrap()[0];
            let b = model
                .wire_node(format!("exp{i}"), exp().into_hir(), &[m])
                .unwrap()[0];
            let p = model
                .wire_node(format!("mul{i}"), Mul.into_hir(), &[a, b])
                .unwrap()[0];
            let k = if bad {
                tensor2(&[["a".to_string(), "b".into(), "c".into(), "d".into()]])
            } else {
                tensor2(&[[i as f32, 1.0, -1.0, 0.5]])
            };
            // Odd blocks hold their constant as an ONNX `Constant` node is read: its value in the
            // operator, not yet in the fact.
            let k = if i % 2 == 0 {
                SpecialOps::add_const(model, format!("k{i}"), k).unwrap()
            } else {
                let op = Const::new(k.into_arc_tensor()).unwrap();
                model
                    .add_node(format!("k{i}"), op, tvec!(InferenceFact::default()))
                    .unwrap()
                    .into()
            };
            a = model
                .wire_node(format!("add{i}"), Add.into_hir(), &[p, k])
                .unwrap()[0];
        }
        a
    }

    fn inference_model(blocks: usize, bad_block: Option<usize>) -> InferenceModel {
        let mut model = InferenceModel::default();
        let x = model.add_source("x", f32::fact([1, 4]).into()).unwrap();
        let mut y = x;
        for i in 0..blocks {
            y = inference_blocks(&mut model, y, i..i + 1, Some(i) == bad_block);
        }
        model.select_output_outlets(&[y]).unwrap();
        model
    }

    #[test]
    fn a_model_as_read_is_typed_segment_by_segment_and_computes_what_it_computes_whole() {
        let model = inference_model(8, None);
        assert_eq!(
            cuttable_nodes(&model).unwrap(),
            1 + 8 * 5,
            "constants left out"
        );
        let typed = model.clone().into_typed().unwrap();
        let whole = run_whole(&typed, &input());
        for parts in [1, 2, 4] {
            let planned = plan_segments(&model, parts, 2, plan).unwrap();
            assert_eq!(planned.plans().len(), parts);
            assert_eq!(planned.output_facts(), &[f32::fact([1, 4])][..]);
            // One value crosses each cut; the constants are copied in.
            assert!(planned.reads.iter().all(|r| r.len() == 1), "{parts} parts");
            assert_same(
                &planned
                    .run(tvec!(input().into()), |p, inputs| p.run(inputs))
                    .unwrap(),
                &whole,
                &format!("{parts} parts"),
            );
        }
    }

    #[test]
    fn a_segment_that_fails_type_inference_fails_the_build() {
        // Block 6 adds text to numbers: the last of three segments fails to type.
        let model = inference_model(8, Some(6));
        let planned = AtomicUsize::new(0);
        let failed = plan_segments(&model, 3, 2, |m| {
            planned.fetch_add(1, Ordering::Relaxed);
            plan(m)
        });
        match failed {
            Err(SegmentError::Typing(e)) => {
                assert!(format!("{e:?}").contains("add6"), "{e:?}")
            }
            other => panic!("a typing error expected, got {:?}", other.map(|_| ())),
        }
        assert!(
            planned.load(Ordering::Relaxed) <= 2,
            "the third segment is never planned"
        );
    }

    #[test]
    fn graphs_are_cut_by_size() {
        for (nodes, parts) in [
            (0, 1),
            (61, 1),
            (101, 1),
            (123, 1),
            (124, 2),
            (372, 6),
            (5000, 80),
        ] {
            assert_eq!(parts_for(nodes), parts, "{nodes} nodes");
        }
    }
}
