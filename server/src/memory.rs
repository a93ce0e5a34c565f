//! Giving freed memory back to the system at once. The binary's allocator is mimalloc, which
//! returns freed blocks to the system only at some later allocation; a password hash frees a
//! 19 MiB block, so a server that went idle after a login (or after the first start's admin
//! bootstrap) would keep that block for as long as it stays idle.

/// Returns the memory that mimalloc holds free on this thread (and the process's pending
/// purges) to the system. Harmless where mimalloc is not the global allocator: its own heap is
/// then empty.
#[allow(unsafe_code)] // The crate's one unsafe block: a call into mimalloc's C API.
pub fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointer and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
