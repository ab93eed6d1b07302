//! A global allocator that zeroes every block before giving it back to the system.
//!
//! Job bytes are copied by libraries we cannot reach into (decoder scratch buffers, the
//! resizer's row buffers, CBOR parsing, AMQP frames). Zeroing on free means none of those
//! copies outlive their owner in freed-but-not-reused heap memory.
//!
//! Big blocks (at least [`BIG_BLOCK`] bytes: pixel buffers, request bodies, lapin's ring
//! buffers) are also marked `MADV_DONTDUMP`, so they stay out of any core dump even if core
//! dumps were turned back on. [`prefer_mmap_for_big_blocks`] makes glibc give each of them its
//! own mapping, so the advice never splits the shared heap and a freed big block leaves the
//! process entirely (after being zeroed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether allocations are metered per thread (tests of memory bounds turn it on).
static METERING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Bytes allocated and not yet freed by this thread, and the most at once since reset.
    static METER: Cell<(isize, isize)> = const { Cell::new((0, 0)) };
}

/// Per-thread allocation metering, for tests that bound how much memory a piece of work takes
/// (the intake bound). Off by default: then it costs one relaxed load per allocation.
pub mod meter {
    use super::*;

    /// Turns metering on or off for the whole process.
    pub fn set_enabled(on: bool) {
        METERING.store(on, Ordering::Relaxed);
    }

    /// Starts this thread's peak over from what it holds now.
    pub fn reset() {
        let _ = METER.try_with(|m| m.set((0, 0)));
    }

    /// The most bytes this thread held at once since [`reset`], beyond what it held then.
    pub fn peak() -> usize {
        METER.try_with(|m| m.get().1.max(0) as usize).unwrap_or(0)
    }

    pub(super) fn add(bytes: isize) {
        if METERING.load(Ordering::Relaxed) {
            let _ = METER.try_with(|m| {
                let (live, peak) = m.get();
                let live = live + bytes;
                m.set((live, peak.max(live)));
            });
        }
    }
}

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

/// Blocks this large or larger are marked `MADV_DONTDUMP`.
pub const BIG_BLOCK: usize = 256 * 1024;

/// Sets glibc's mmap threshold to [`BIG_BLOCK`] (which also stops it from raising the threshold
/// as big blocks are freed). Call once at start, before threads exist.
pub fn prefer_mmap_for_big_blocks() {
    // SAFETY: mallopt only changes allocator tuning; the value is a valid threshold.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, BIG_BLOCK as libc::c_int) };
}

fn dont_dump(ptr: *mut u8, len: usize) {
    if ptr.is_null() || len < BIG_BLOCK {
        return;
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let start = (ptr as usize).next_multiple_of(page);
    let end = (ptr as usize + len) / page * page;
    if end > start {
        // SAFETY: [start, end) lies inside the block just allocated; MADV_DONTDUMP only changes
        // how the range is dumped, never its contents. Failure is harmless (advice only).
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTDUMP) };
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
        // SAFETY: the caller's layout has a non-zero size, as `GlobalAlloc::alloc` requires.
        let ptr = unsafe { System.alloc(layout) };
        dont_dump(ptr, layout.size());
        meter::add(layout.size() as isize);
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        dont_dump(ptr, layout.size());
        meter::add(layout.size() as isize);
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        zero(ptr, layout.size());
        meter::add(-(layout.size() as isize));
        // SAFETY: the caller allocated `ptr` with this allocator and `layout`; `alloc` took it
        // from `System` with the same layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // System::realloc may move the block and free the old one unzeroed, so every resize is
        // done here by hand: allocate, copy, zero the old block, free it.
        // SAFETY: `realloc`'s contract gives a non-zero `new_size` that, rounded up to the
        // block's alignment, does not overflow `isize`; the alignment is the block's own.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size.
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: the old block holds `layout.size()` bytes, the new one `new_size`; they
            // are distinct allocations, and the old one was allocated here with `layout`.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VmFlags line of the mapping of /proc/self/smaps that contains `addr`.
    fn vm_flags_at(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = (a..b).contains(&addr);
                        continue;
                    }
                }
            }
            if inside && line.starts_with("VmFlags:") {
                return line.to_owned();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    fn big_blocks_are_kept_out_of_core_dumps_and_small_ones_are_left_alone() {
        let big = Layout::from_size_align(4 << 20, 16).unwrap();
        let small = Layout::from_size_align(4096, 16).unwrap();
        // SAFETY: plain allocate/free pairs with matching layouts.
        unsafe {
            let b = ZeroingAlloc.alloc(big);
            let s = ZeroingAlloc.alloc(small);
            let page_inside = (b as usize + 8192) & !4095;
            assert!(
                vm_flags_at(page_inside).contains(" dd"),
                "{}",
                vm_flags_at(page_inside)
            );
            assert!(!vm_flags_at(s as usize).contains(" dd"));
            ZeroingAlloc.dealloc(b, big);
            ZeroingAlloc.dealloc(s, small);
        }
    }
}
