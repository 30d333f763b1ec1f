//! Images at once on one plan: a fixed number of worker threads take the next item in turn, and their
//! results come back to the calling thread in item order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Runs `work` on each of `items` on `jobs` threads and hands the results to `take` on the calling
/// thread, in item order (a finished item waits for the ones before it). When `take` returns false the
/// run stops: items not yet started are not run. Returns whether every result was taken. With one job
/// (or one item) no thread is started.
pub fn in_order<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(usize, &T) -> R + Sync,
    mut take: impl FnMut(R) -> bool,
) -> bool {
    // One at a time: on the calling thread, whose allocator arena the model's load has already grown,
    // so the first image does not fault in a new thread's memory (`detect` on one photo, its cold start).
    if jobs.min(items.len()) <= 1 {
        return items
            .iter()
            .enumerate()
            .all(|(i, item)| take(work(i, item)));
    }
    let next = AtomicUsize::new(0);
    let (send, receive) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(items.len()) {
            let send = send.clone();
            let (next, work) = (&next, &work);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    break;
                };
                if send.send((i, work(i, item))).is_err() {
                    break;
                }
            });
        }
        drop(send);
        let mut waiting = BTreeMap::new();
        let mut turn = 0;
        for (i, result) in receive {
            waiting.insert(i, result);
            while let Some(result) = waiting.remove(&turn) {
                turn += 1;
                if !take(result) {
                    // Stop the workers: they find no next item.
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                    return false;
                }
            }
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_item_order_whatever_the_finishing_order() {
        let items: Vec<u64> = (0..40).collect();
        let mut seen = Vec::new();
        // Later items finish first: item i sleeps (40 - i) * 0.2 ms.
        let all = in_order(
            &items,
            4,
            |_, &n| {
                std::thread::sleep(std::time::Duration::from_micros((40 - n) * 200));
                n * 10
            },
            |r| {
                seen.push(r);
                true
            },
        );
        assert!(all);
        assert_eq!(seen, (0..40).map(|n| n * 10).collect::<Vec<_>>());
    }

    #[test]
    fn a_refused_result_stops_the_run() {
        let items: Vec<usize> = (0..1000).collect();
        let ran = AtomicUsize::new(0);
        let mut taken = 0;
        let all = in_order(
            &items,
            2,
            |_, _| {
                ran.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_micros(100));
            },
            |()| {
                taken += 1;
                taken < 3
            },
        );
        assert!(!all);
        assert_eq!(taken, 3);
        assert!(
            ran.load(Ordering::Relaxed) < 1000,
            "the workers stopped early"
        );
    }

    #[test]
    fn one_job_runs_on_the_calling_thread_and_stops_at_once() {
        let items: Vec<usize> = (0..10).collect();
        let caller = std::thread::current().id();
        let ran = AtomicUsize::new(0);
        let mut taken = Vec::new();
        let all = in_order(
            &items,
            1,
            |i, &n| {
                assert_eq!(std::thread::current().id(), caller);
                ran.fetch_add(1, Ordering::Relaxed);
                (i, n)
            },
            |r| {
                taken.push(r);
                taken.len() < 3
            },
        );
        assert!(!all);
        assert_eq!(taken, vec![(0, 0), (1, 1), (2, 2)]);
        assert_eq!(ran.load(Ordering::Relaxed), 3);
    }
}
