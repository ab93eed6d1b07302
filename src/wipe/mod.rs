//! The foundation — **wipe**: every byte a job held is destroyed, and the destruction is written
//! down. Every stage holds job bytes in these guards, so every stage may use this module.
//!
//! - [`SecretBuf`] owns job bytes (a request body, an input, pixels, an encoded output). Dropping
//!   it zeroes the whole allocation and records the wipe in the job's [`Ledger`].
//! - [`SpillDir`] / [`SpillFile`] keep large inputs out of memory: a spill file is overwritten
//!   with zeros, fsynced, read back to check and unlinked when dropped, and recorded likewise.
//! - [`ZeroingAlloc`] is the process's global allocator: every freed heap block is zeroed first,
//!   so copies made inside libraries (codec scratch buffers, resizer buffers, CBOR parsing) die
//!   wiped too. Those wipes are not itemised in receipts: they happen everywhere, all the time.
//! - A [`Receipt`] is a snapshot of the ledger. Only the code that performed a wipe can add an
//!   entry, so a receipt cannot claim a wipe that did not happen.

mod alloc;
mod ledger;
mod secret;
mod signing;
mod spill;

pub use alloc::{meter, prefer_mmap_for_big_blocks, zeroing_enabled, ZeroingAlloc, BIG_BLOCK};
pub use ledger::{
    Ledger, Metered, Receipt, SealedFacts, WipeEntry, WipeMethod, MAX_ENTRIES, RECEIPT_MAX_BYTES,
};
pub use secret::SecretBuf;
pub use signing::vector_attested;
pub use signing::{
    deterministic_cbor, hex, key_id, parse_hex, sha256, verify, Attested, AttestedOutput, KeyError,
    ReceiptSigner, VerifyError,
};
pub use spill::{SpillDir, SpillError, SpillFile, SpillKey, SpillReader};

/// Overwrites `bytes` with zeros in a way the optimiser may not remove.
pub fn wipe_bytes(bytes: &mut [u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: the pointer and length come from a valid mutable slice.
    unsafe { libc::explicit_bzero(bytes.as_mut_ptr().cast(), bytes.len()) };
}

/// Zeroes `bytes` and records the wipe as `artifact`: for buffers owned by a library type (a
/// decoder's image) that cannot become a [`SecretBuf`] without a copy.
pub fn wipe_in_place(bytes: &mut [u8], artifact: impl Into<String>, ledger: &Ledger) {
    wipe_bytes(bytes);
    ledger.record(WipeEntry {
        artifact: artifact.into(),
        bytes: bytes.len() as u64,
        method: WipeMethod::Zeroize,
        at_ms: now_unix_ms(),
        error: None,
        process: None,
    });
}

/// Decodes CBOR from `bytes` with ciborium, through a scratch buffer on the heap that is
/// wiped afterwards. ciborium's `from_reader` keeps its 4 KiB scratch on the stack, where
/// chunks of every byte string it reads (whole inputs, whole outputs) would outlive the call
/// in stack memory that no allocator ever zeroes.
pub fn cbor_from_slice<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, ciborium::de::Error<std::io::Error>> {
    let mut scratch = vec![0u8; 64 * 1024];
    let decoded = ciborium::de::from_reader_with_buffer(bytes, &mut scratch);
    wipe_bytes(&mut scratch);
    decoded
}

/// Drops `value` on the blocking pool and waits until it is gone: for job bytes whose wipe
/// is slow work (megabytes zeroed; a spill file overwritten, synced, read back and unlinked),
/// which must not stall the async runtime and must be done before the receipt is taken.
pub async fn off_runtime<T: Send + 'static>(value: T) {
    // A panic while dropping has already unwound on the pool; nothing is left to wipe here.
    let _ = tokio::task::spawn_blocking(move || {
        drop(value);
        scrub_stack();
    })
    .await;
}

/// Overwrites 64 KiB of the stack below the caller: dead frames of the calls it made (a
/// hasher's last block, a cipher's or decoder's scratch, a derived key) keep copies of what
/// they held until the stack is used again. Called where a thread finishes with job bytes or
/// key material.
#[inline(never)]
pub fn scrub_stack() {
    let mut scratch = [0u8; 64 * 1024];
    // SAFETY: `scratch` is a live local array of that length.
    unsafe { libc::explicit_bzero(scratch.as_mut_ptr().cast(), scratch.len()) };
    std::hint::black_box(&scratch);
}

/// Milliseconds since the Unix epoch, for receipts and logs.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
