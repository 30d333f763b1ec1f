//! Handing freed memory back to the operating system after a large image.
//!
//! glibc's allocator keeps what a request freed for the next one: after a large image it raises its
//! mmap threshold (up to 32 MiB), so the next large buffers come from the heap arenas, whose free
//! space is kept rather than returned. A warm Lambda environment sees images of every size, so its
//! RSS climbs to the high-water mark of every arena and stays there (measured by tests/soak.py:
//! +12% between request 1,000 and 10,000), and Lambda counts RSS against the function's memory size.
//! `malloc_trim(0)` returns the free pages of every arena. The next request then faults tract's
//! intermediate tensors back in: trimming after every request makes a small photo 15% slower
//! (`cargo bench --bench trim`), so it runs only after an image whose pixels needed at least
//! [`TRIM_AFTER_BYTES`], where the decode dwarfs that cost.
//!
//! A fresh process starts the other way round: glibc's mmap threshold begins at 128 KiB, so until a large
//! buffer has been freed every tensor of the first inference is a fresh mapping, faulted in page by page
//! and unmapped when freed, and the first request pays for it. [`reuse_freed_memory`], called by the
//! binaries at start, fixes the thresholds where glibc's own adjustment ends up (32 MiB, and twice that
//! for trimming), so the first request reuses memory as the warm ones do.
//!
//! Other allocators (musl, other platforms) return memory their own way: nothing is done there.

use std::cell::Cell;

/// Pixel buffers of at least this many bytes (about 2.8 megapixels as RGB) are followed by a trim.
pub const TRIM_AFTER_BYTES: usize = 8 << 20;

/// Trims when dropped, if a large buffer was noted: declare it before the buffers it covers, so it
/// drops after them.
#[derive(Debug, Default)]
pub struct TrimAfterLarge {
    largest: Cell<usize>,
}

impl TrimAfterLarge {
    /// Notes a buffer of `bytes` (noted before it is allocated, so a failed decode counts too).
    pub fn note(&self, bytes: usize) {
        self.largest.set(self.largest.get().max(bytes));
    }

    /// Whether dropping this trims.
    pub fn will_trim(&self) -> bool {
        self.largest.get() >= TRIM_AFTER_BYTES
    }
}

impl Drop for TrimAfterLarge {
    fn drop(&mut self) {
        if self.will_trim() {
            release_free_memory();
        }
    }
}

/// Returns the allocator's free pages to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks and shrinks the allocator's own free lists; it is thread-safe
    // (it locks each arena) and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// glibc's mmap threshold (32 MiB, the ceiling of its own adjustment) and trim threshold (twice that, as
/// the adjustment sets it), fixed from the start instead of reached after the first large free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn reuse_freed_memory() {
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    // SAFETY: mallopt sets two of the allocator's tunables; it locks the main arena and has no
    // preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD);
    }
}

/// Nothing to set on this platform.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn reuse_freed_memory() {}

/// Returns the allocator's free pages to the operating system (nothing to do on this platform).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_large_buffer_makes_a_trim() {
        let small = TrimAfterLarge::default();
        small.note(640 * 480 * 3);
        small.note(1920 * 1080 * 3);
        assert!(!small.will_trim());
        let large = TrimAfterLarge::default();
        large.note(1920 * 1080 * 3);
        large.note(4000 * 2500 * 3);
        large.note(10);
        assert!(large.will_trim(), "the largest buffer counts");
    }
}
