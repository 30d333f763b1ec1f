//! The function binary's `setenv`: the per-invocation `_X_AMZN_TRACE_ID` keeps no memory, reads back
//! as set, and every other variable behaves as glibc's. Its own test binary, routed the same way as
//! the function's, and alone in it, so the allocator's figures are this test's.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::env;

use object_detector::aws::lambda::trace_env::SLOT_BYTES;

object_detector::route_setenv_here!();

const TRACE: &str = "_X_AMZN_TRACE_ID";

/// Bytes the allocator has handed out and not taken back. `mallinfo`, not `mallinfo2` (glibc 2.33):
/// cross builds link against an older glibc, and this test's figures stay far below its `int` range.
fn allocated() -> usize {
    // SAFETY: mallinfo only reads the allocator's counters.
    let info = unsafe { libc::mallinfo() };
    info.uordblks as usize + info.hblkhd as usize
}

fn trace_header(i: u64) -> String {
    format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=1",
        0x6b15_0000 + i,
        i * 7919,
        i * 31
    )
}

#[test]
fn the_trace_variable_takes_a_new_value_per_invocation_without_keeping_the_old_ones() {
    // The first value may grow the environment's array once.
    env::set_var(TRACE, trace_header(0));
    let before = allocated();
    let invocations = 20_000;
    for i in 1..=invocations {
        let header = trace_header(i);
        env::set_var(TRACE, &header);
        assert_eq!(env::var(TRACE).as_deref(), Ok(header.as_str()));
    }
    let kept = allocated().saturating_sub(before);
    // glibc's own setenv keeps every value: about 130 bytes each, 2.6 MB here.
    assert!(
        kept < 16 << 10,
        "{kept} bytes kept after {invocations} trace headers"
    );

    // No value: the runtime removes the variable, and sets it again on the next invocation.
    env::remove_var(TRACE);
    assert!(env::var(TRACE).is_err());
    env::set_var(TRACE, trace_header(1));
    assert_eq!(env::var(TRACE), Ok(trace_header(1)));

    // A header too long for a slot still arrives (through glibc's setenv).
    let long = format!("{};Lineage={}", trace_header(2), "a".repeat(SLOT_BYTES));
    env::set_var(TRACE, &long);
    assert_eq!(env::var(TRACE), Ok(long));
    env::set_var(TRACE, trace_header(3));
    assert_eq!(env::var(TRACE), Ok(trace_header(3)));

    // setenv without overwrite leaves a set variable alone.
    // SAFETY: NUL-terminated strings; this test is alone in its binary.
    let kept_value = unsafe { libc::setenv(c"_X_AMZN_TRACE_ID".as_ptr(), c"other".as_ptr(), 0) };
    assert_eq!(kept_value, 0);
    assert_eq!(env::var(TRACE), Ok(trace_header(3)));

    // Any other variable is glibc's business, as before.
    env::set_var("OBJECT_DETECTOR_TRACE_ENV_TEST", "one");
    assert_eq!(
        env::var("OBJECT_DETECTOR_TRACE_ENV_TEST").as_deref(),
        Ok("one")
    );
    env::remove_var("OBJECT_DETECTOR_TRACE_ENV_TEST");
    assert!(env::var("OBJECT_DETECTOR_TRACE_ENV_TEST").is_err());
}
