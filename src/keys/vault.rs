//! Where key material lives: one page of its own, mapped privately, locked into RAM (never
//! swapped), left out of core dumps (`MADV_DONTDUMP`), not inherited by a forked child
//! (`MADV_WIPEONFORK`), and zeroed before it is unmapped. The keyring keeps every private key
//! and the ratchet's chain value here, in fixed 32-byte slots; an erased slot is zeroed in place.

use std::io;

const PAGE: usize = 4096;
/// Slots of 32 bytes in the page.
pub const SLOTS: usize = PAGE / 32;

/// A locked page of 32-byte key slots.
pub struct Vault {
    ptr: *mut u8,
    locked: bool,
}

// SAFETY: the page is owned by this value alone; every access goes through `&self`/`&mut self`
// (the keyring holds the vault behind a mutex), so moving it between threads is sound.
unsafe impl Send for Vault {}

impl Vault {
    /// Maps and locks a page. Locking can fail under a small `RLIMIT_MEMLOCK`; the page is then
    /// still kept out of core dumps and zeroed on drop, and [`Vault::locked`] says so.
    pub fn new() -> io::Result<Self> {
        // SAFETY: an anonymous private mapping of one page at an address the kernel picks;
        // the result is checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `ptr` is the page just mapped, PAGE bytes long; madvise and mlock only
        // change how the kernel treats it.
        let locked = unsafe {
            libc::madvise(ptr, PAGE, libc::MADV_DONTDUMP);
            libc::madvise(ptr, PAGE, libc::MADV_WIPEONFORK);
            libc::mlock(ptr, PAGE) == 0
        };
        Ok(Self {
            ptr: ptr.cast(),
            locked,
        })
    }

    /// Whether the page is locked into RAM.
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// Slot `i`.
    pub fn slot(&self, i: usize) -> &[u8; 32] {
        assert!(i < SLOTS);
        // SAFETY: slot `i` lies inside the mapped page (checked above), is aligned for u8
        // arrays, and the page lives as long as `self`.
        unsafe { &*self.ptr.add(i * 32).cast::<[u8; 32]>() }
    }

    /// Slot `i`, to write.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8; 32] {
        assert!(i < SLOTS);
        // SAFETY: as in `slot`; `&mut self` makes the borrow unique.
        unsafe { &mut *self.ptr.add(i * 32).cast::<[u8; 32]>() }
    }

    /// Zeroes slot `i` in place.
    pub fn erase(&mut self, i: usize) {
        let slot = self.slot_mut(i);
        // SAFETY: `slot` is 32 writable bytes; explicit_bzero cannot be elided.
        unsafe { libc::explicit_bzero(slot.as_mut_ptr().cast(), 32) };
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        // SAFETY: the page is still mapped and owned by `self`; it is zeroed, unlocked and
        // unmapped exactly once, here.
        unsafe {
            libc::explicit_bzero(self.ptr.cast(), PAGE);
            if self.locked {
                libc::munlock(self.ptr.cast(), PAGE);
            }
            libc::munmap(self.ptr.cast(), PAGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_hold_what_is_written_and_erase_to_zero() {
        let mut v = Vault::new().unwrap();
        v.slot_mut(3).copy_from_slice(&[7; 32]);
        assert_eq!(v.slot(3), &[7; 32]);
        assert_eq!(v.slot(2), &[0; 32], "fresh slots are zero");
        v.erase(3);
        assert_eq!(v.slot(3), &[0; 32]);
    }
}
