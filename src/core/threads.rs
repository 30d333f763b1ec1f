//! Starting a helper thread on another core at once.
//!
//! Linux often queues a new thread on the core of the thread that spawned it, and an idle core takes it
//! over only at a later load balance: on this project's 2-core machine a helper spawned beside a busy
//! thread started after a median 1.3-2.8 ms, and two threads of 5.3 ms of work each took 1.24 times one
//! thread's time instead of about 1 (`cargo bench --bench thread_start`: 1.03 with [`spawn_beside`]).
//! The model load's helpers have a few milliseconds of work each.
//!
//! [`spawn_beside`] has the spawning thread yield once, so that the new thread runs at once, and the new
//! thread move itself off the spawning thread's core as its first act (leaving that core out of its
//! affinity, which migrates it, then taking its affinity back): from there the two run side by side.

use std::thread::{Scope, ScopedJoinHandle};

/// Spawns `f` on a thread of `scope` that starts beside the calling thread, on another core when the
/// process may run on more than one.
pub fn spawn_beside<'scope, 'env, T: Send + 'scope>(
    scope: &'scope Scope<'scope, 'env>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> ScopedJoinHandle<'scope, T> {
    let caller = current_cpu();
    let handle = scope.spawn(move || {
        if let Some(cpu) = caller {
            leave_cpu(cpu);
        }
        f()
    });
    std::thread::yield_now();
    handle
}

/// The core the calling thread runs on.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments and only reads the calling thread's state.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn current_cpu() -> Option<usize> {
    None
}

/// Moves the calling thread off `cpu` (when its affinity allows another core), then gives it back the
/// affinity it had.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn leave_cpu(cpu: usize) {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is a plain bit array, valid all zeroes; the calls below read or write exactly
    // `size` bytes of the sets they are given, for the calling thread (pid 0), and the CPU_* helpers
    // stay within the set (they ignore a cpu beyond it).
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 || !libc::CPU_ISSET(cpu, &allowed) {
            return;
        }
        let mut elsewhere = allowed;
        libc::CPU_CLR(cpu, &mut elsewhere);
        if libc::CPU_COUNT(&elsewhere) == 0 {
            return;
        }
        if libc::sched_setaffinity(0, size, &elsewhere) == 0 {
            libc::sched_setaffinity(0, size, &allowed);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn leave_cpu(_cpu: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_runs_its_work_and_keeps_the_affinity_it_started_with() {
        let affinity = || {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: as in `leave_cpu`: a zeroed plain bit array, read for the calling thread.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
                (0..libc::CPU_SETSIZE as usize)
                    .filter(|&c| libc::CPU_ISSET(c, &set))
                    .collect::<Vec<usize>>()
            }
            #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
            Vec::<usize>::new()
        };
        let before = affinity();
        let data = [1, 2, 3];
        let (sum, after) = std::thread::scope(|scope| {
            spawn_beside(scope, || (data.iter().sum::<i32>(), affinity()))
                .join()
                .unwrap()
        });
        assert_eq!(sum, 6);
        assert_eq!(after, before, "the helper's affinity is given back");
        assert_eq!(affinity(), before, "the caller's is untouched");
    }
}
