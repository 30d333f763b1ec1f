//! What starting a helper thread beside a busy one costs, as the model load does: the calling thread
//! and a new one each run the same few milliseconds of work, after a pause that lets the other cores go
//! idle (as at a cold start). Plain `std::thread::scope` spawns against `threads::spawn_beside`,
//! alternating in one run; the figure is the wall time of the pair, next to one work's time alone (what
//! two cores side by side would take).
//!
//!     cargo bench --bench thread_start

use std::time::{Duration, Instant};

use object_detector::core::threads::spawn_beside;

/// A fixed amount of arithmetic: the same work for every thread and round.
fn work(rounds: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..rounds {
        x = x.rotate_left(7).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ i;
    }
    std::hint::black_box(x)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // About 3 ms of work on one thread: what each helper of the model load has.
    let mut rounds = 1_000_000u64;
    let alone = loop {
        let t = Instant::now();
        work(rounds);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if ms >= 3.0 {
            break ms;
        }
        rounds *= 2;
    };
    let pair = |beside: bool| {
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        std::thread::scope(|scope| {
            let helper = if beside {
                spawn_beside(scope, || work(rounds))
            } else {
                scope.spawn(|| work(rounds))
            };
            work(rounds);
            helper.join().expect("the helper finishes");
        });
        t.elapsed().as_secs_f64() * 1e3
    };
    const ROUNDS: usize = 40;
    let (mut plain, mut beside) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        plain.push(pair(false));
        beside.push(pair(true));
    }
    let (plain, beside) = (median(plain), median(beside));
    println!("one work alone: {alone:.2} ms; two side by side, medians of {ROUNDS}:");
    println!(
        "  std::thread::scope spawn   {plain:6.2} ms   {:.2} x alone",
        plain / alone
    );
    println!(
        "  threads::spawn_beside      {beside:6.2} ms   {:.2} x alone",
        beside / alone
    );
    println!("  spawn_beside / spawn       {:.3}", beside / plain);
}
