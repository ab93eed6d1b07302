//! A global allocator that zeroes every block before giving it back to the system.
//!
//! Job bytes are copied by libraries we cannot reach into (decoder scratch buffers, the
//! resizer's row buffers, CBOR parsing, AMQP frames). Zeroing on free means none of those
//! copies outlive their owner in freed-but-not-reused heap memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// The zeroing allocator. Install it with `#[global_allocator]` in the binary.
pub struct ZeroingAlloc;

/// Whether freed blocks are zeroed. Always on in production; tests of the wipe proof turn it off
/// to show that the proof would catch a leak.
pub fn zeroing_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

impl ZeroingAlloc {
    /// Turns zeroing of freed blocks on or off for the whole process.
    pub fn set_enabled(on: bool) {
        ENABLED.store(on, Ordering::Relaxed);
    }
}

fn zero(ptr: *mut u8, len: usize) {
    if len > 0 && ENABLED.load(Ordering::Relaxed) {
        // SAFETY: the caller owns `len` bytes at `ptr` (a live block about to be freed).
        // explicit_bzero cannot be elided as a dead store before free().
        unsafe { libc::explicit_bzero(ptr.cast(), len) };
    }
}

// SAFETY: every method forwards to `System` with the same layout; the only addition is zeroing
// memory the caller still owns, before it is released.
unsafe impl GlobalAlloc for ZeroingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        zero(ptr, layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // System::realloc may move the block and free the old one unzeroed, so every resize is
        // done here by hand: allocate, copy, zero the old block, free it.
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new_ptr = System.alloc(new_layout);
        if !new_ptr.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new_ptr
    }
}
