//! `_X_AMZN_TRACE_ID`, set before every invocation without keeping every value.
//!
//! The Runtime API asks a custom runtime to export each invocation's X-Ray trace header as
//! `_X_AMZN_TRACE_ID`, and `lambda_runtime` (1.5, one invocation at a time) does it with
//! `std::env::set_var` before every invocation. glibc's `setenv` never frees a value it allocated
//! (a `getenv` caller may still hold it), and no two invocations share a trace header, so each
//! invocation kept about 130 bytes for good. Among the freed buffers of a photo request those small
//! blocks land all over the heap, and each one pins a page that `malloc_trim` cannot return:
//! `tests/soak.py` measured RSS climbing by about 3 KiB per photo request (+6.9% from request 500 to
//! 1,000; +15.7% from 1,000 to 3,000), and flat once the variable was left alone.
//!
//! The function binary defines `setenv` itself ([`route_setenv_here!`]), so the standard library's
//! call binds to [`setenv`] here rather than to glibc's. For this one variable the value is written
//! into one of two static slots, and `putenv` puts the slot itself in the environment (it keeps the
//! pointer and allocates nothing). The slots take turns, so a value a reader got from `getenv` stays
//! intact until the next invocation but one. Every other variable, and a value too long for a slot,
//! goes to glibc's `setenv`.

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Mutex, OnceLock, PoisonError};

/// The variable the Runtime API asks for, set per invocation.
pub const TRACE_VARIABLE: &CStr = c"_X_AMZN_TRACE_ID";

/// Room for `_X_AMZN_TRACE_ID=value` and its NUL. Trace headers are about 80 bytes
/// (`Root=1-…;Parent=…;Sampled=…`, sometimes `;Lineage=…`); a longer one goes to glibc's `setenv`.
pub const SLOT_BYTES: usize = 512;

struct Slot(UnsafeCell<[u8; SLOT_BYTES]>);

// SAFETY: slots are written only by `set_in_slot`, with `TURN` locked, and never the slot the
// environment holds; readers (`getenv`) only read the slot the environment holds.
unsafe impl Sync for Slot {}

static SLOTS: [Slot; 2] = [
    Slot(UnsafeCell::new([0; SLOT_BYTES])),
    Slot(UnsafeCell::new([0; SLOT_BYTES])),
];

/// The slot the next value goes to.
static TURN: Mutex<usize> = Mutex::new(0);

/// `setenv(3)`: [`TRACE_VARIABLE`] into a slot, any other variable to the C library's `setenv`.
///
/// # Safety
/// `name` and `value` are null or NUL-terminated strings. As with any `setenv`, nothing may read or
/// write the environment through the C library meanwhile; `std::env` holds its lock around its calls.
pub unsafe fn setenv(name: *const c_char, value: *const c_char, overwrite: c_int) -> c_int {
    if !name.is_null() && !value.is_null() {
        // SAFETY: both are NUL-terminated (the caller's contract).
        let (name_str, value_str) = unsafe { (CStr::from_ptr(name), CStr::from_ptr(value)) };
        if name_str == TRACE_VARIABLE {
            // SAFETY: the caller holds the environment (the contract above).
            if let Some(done) = unsafe { set_in_slot(value_str, overwrite != 0) } {
                return done;
            }
        }
    }
    // SAFETY: the caller's contract is `setenv`'s own.
    unsafe { c_library_setenv(name, value, overwrite) }
}

/// Sets [`TRACE_VARIABLE`] to `value` from a slot; `None` when it does not fit one.
///
/// # Safety
/// Nothing else reads or writes the environment meanwhile.
unsafe fn set_in_slot(value: &CStr, overwrite: bool) -> Option<c_int> {
    let name = TRACE_VARIABLE.to_bytes();
    let value = value.to_bytes();
    let end = name.len() + 1 + value.len();
    // The NUL at `end` is the last byte at most, so every slot always ends in a NUL.
    if end >= SLOT_BYTES {
        return None;
    }
    // SAFETY: a NUL-terminated name; the environment is ours (the caller's contract).
    if !overwrite && !unsafe { libc::getenv(TRACE_VARIABLE.as_ptr()) }.is_null() {
        return Some(0);
    }
    let mut turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let slot = SLOTS[*turn].0.get();
    // SAFETY: `TURN` is locked, and the environment holds the other slot or neither (the turn only
    // moves on once `putenv` took this one), so nothing else reads or writes this one.
    let bytes = unsafe { &mut *slot };
    bytes[..name.len()].copy_from_slice(name);
    bytes[name.len()] = b'=';
    bytes[name.len() + 1..end].copy_from_slice(value);
    bytes[end] = 0;
    // SAFETY: a NUL-terminated `NAME=value` in static memory, which is what putenv keeps.
    let done = unsafe { libc::putenv(slot.cast::<c_char>()) };
    if done == 0 {
        *turn = 1 - *turn;
    }
    Some(done)
}

/// The C library's own `setenv`, the next definition after the binary's.
///
/// # Safety
/// `setenv`'s contract.
unsafe fn c_library_setenv(name: *const c_char, value: *const c_char, overwrite: c_int) -> c_int {
    type SetEnv = unsafe extern "C" fn(*const c_char, *const c_char, c_int) -> c_int;
    static NEXT: OnceLock<Option<SetEnv>> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        // SAFETY: a NUL-terminated symbol name; RTLD_NEXT looks past the object calling dlsym.
        let symbol = unsafe { libc::dlsym(libc::RTLD_NEXT, c"setenv".as_ptr()) };
        // SAFETY: the C library's `setenv` has this signature.
        (!symbol.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, SetEnv>(symbol) })
    });
    match next {
        // SAFETY: the caller's contract.
        Some(next) => unsafe { next(name, value, overwrite) },
        None => {
            // SAFETY: errno is this thread's own.
            unsafe { *libc::__errno_location() = libc::ENOSYS };
            -1
        }
    }
}

/// Defines `setenv` in the binary that invokes it, so the standard library's `std::env::set_var`
/// (and lambda_runtime's per-invocation trace header with it) goes through [`setenv`]. A binary
/// says so itself: a definition linked in from the library would depend on which object files the
/// linker happens to pull.
#[macro_export]
macro_rules! route_setenv_here {
    () => {
        /// `setenv(3)`, routed through `object_detector::aws::lambda::trace_env::setenv`, which
        /// keeps `_X_AMZN_TRACE_ID`'s per-invocation values from piling up.
        ///
        /// # Safety
        /// `setenv`'s contract: NUL-terminated strings, and nothing else touching the environment.
        #[no_mangle]
        pub unsafe extern "C" fn setenv(
            name: *const ::std::ffi::c_char,
            value: *const ::std::ffi::c_char,
            overwrite: ::std::ffi::c_int,
        ) -> ::std::ffi::c_int {
            // SAFETY: the same contract.
            unsafe { $crate::aws::lambda::trace_env::setenv(name, value, overwrite) }
        }
    };
}
