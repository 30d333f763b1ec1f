//! tract's optimizer pass by pass, for any ONNX file with a 416x416 NCHW input: for the declutter as
//! tract runs it (one round), as the engine runs it (`tract::declutter`: the passes but `ChangeAxes`,
//! then all of them) and for the codegen that follows, each pass's time searching for rewrites, its
//! calls and the patches it returned; the rest of each round is tract applying the patches and
//! compacting the graph. Medians of 5 builds. What `plan_stages` shows by stage, by pass.
//!
//!     cargo bench --bench plan_passes -- model/picodet-s-416-coco.int8.onnx

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_detector::core::engine::tract;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::optim::{Optimizer, OptimizerSession, TypedPass};

const RUNS: usize = 5;

/// One pass's account in one round: time in `next` and `run_direct`, calls, patches returned.
#[derive(Clone, Debug, Default)]
struct Account {
    pass: String,
    searching: Duration,
    calls: usize,
    patches: usize,
}

/// A pass that keeps its account.
#[derive(Clone, Debug)]
struct Counted {
    inner: Box<dyn TypedPass>,
    accounts: Arc<Mutex<Vec<Account>>>,
    index: usize,
}

impl TypedPass for Counted {
    fn reset(&mut self) -> TractResult<()> {
        self.inner.reset()
    }

    fn next(
        &mut self,
        session: &mut OptimizerSession,
        model: &TypedModel,
    ) -> TractResult<Option<TypedModelPatch>> {
        let t = Instant::now();
        let patch = self.inner.next(session, model)?;
        let mut accounts = self.accounts.lock().unwrap();
        let account = &mut accounts[self.index];
        account.searching += t.elapsed();
        account.calls += 1;
        account.patches += usize::from(patch.is_some());
        Ok(patch)
    }

    fn run_direct(&mut self, model: &mut TypedModel) -> TractResult<bool> {
        let t = Instant::now();
        let changed = self.inner.run_direct(model)?;
        self.accounts.lock().unwrap()[self.index].searching += t.elapsed();
        Ok(changed)
    }
}

/// Runs `optimizer` on `model` with every pass counted: the round's time and the passes' accounts.
fn counted(optimizer: Optimizer, model: &mut TypedModel) -> (Duration, Vec<Account>) {
    let accounts = Arc::new(Mutex::new(Vec::new()));
    let passes = optimizer
        .passes
        .into_iter()
        .enumerate()
        .map(|(index, inner)| {
            accounts.lock().unwrap().push(Account {
                pass: format!("{inner:?}"),
                ..Account::default()
            });
            Box::new(Counted {
                inner,
                accounts: accounts.clone(),
                index,
            }) as Box<dyn TypedPass>
        })
        .collect();
    let t = Instant::now();
    Optimizer {
        passes,
        steps: None,
    }
    .optimize(model)
    .expect("optimizes");
    let elapsed = t.elapsed();
    let accounts = accounts.lock().unwrap().clone();
    (elapsed, accounts)
}

/// The rounds of one plan build, by name: tract's declutter, the engine's two, and codegen after it.
fn rounds(typed: &TypedModel) -> Vec<(&'static str, Duration, Vec<Account>)> {
    let mut one = typed.clone();
    let (t, a) = counted(Optimizer::declutter(), &mut one);
    let mut rounds = vec![("tract's declutter, one round", t, a)];
    let mut two = typed.clone();
    let (t, a) = counted(tract::declutter_but_change_axes(), &mut two);
    rounds.push(("engine's declutter, round 1: all but ChangeAxes", t, a));
    let (t, a) = counted(Optimizer::declutter(), &mut two);
    rounds.push(("engine's declutter, round 2: all", t, a));
    let (t, a) = counted(Optimizer::codegen(), &mut two);
    rounds.push(("codegen (model.optimize)", t, a));
    rounds
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if files.is_empty() {
        eprintln!("usage: cargo bench --bench plan_passes -- MODEL.onnx...");
        std::process::exit(2);
    }
    for file in &files {
        let onnx = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let typed = tract::typed_model(&onnx, None, &[1, 3, 416, 416]).expect("types");
        let builds: Vec<_> = (0..RUNS).map(|_| rounds(&typed)).collect();
        println!(
            "\n{file}: {} typed nodes, medians of {RUNS} builds",
            typed.nodes().len()
        );
        for (r, (name, _, accounts)) in builds[0].iter().enumerate() {
            let total = median(builds.iter().map(|b| ms(b[r].1)).collect());
            let searching = median(
                builds
                    .iter()
                    .map(|b| b[r].2.iter().map(|a| ms(a.searching)).sum())
                    .collect(),
            );
            println!(
                "  {name}: {total:.1} ms ({searching:.1} searching, {:.1} applying and compacting)",
                total - searching
            );
            for (p, account) in accounts.iter().enumerate() {
                let searching = median(builds.iter().map(|b| ms(b[r].2[p].searching)).collect());
                println!(
                    "    {:<32} {searching:>7.1} ms {:>5} calls {:>5} patches",
                    account.pass, account.calls, account.patches
                );
            }
        }
    }
}
