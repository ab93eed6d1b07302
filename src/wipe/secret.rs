//! [`SecretBuf`]: a byte buffer holding job data, zeroed and recorded when dropped.

use super::{now_unix_ms, Ledger, WipeEntry, WipeMethod};

/// Job bytes with a drop guard: on drop the whole allocation (length and spare capacity) is
/// zeroed and the wipe is recorded in the job's ledger under `artifact`.
///
/// Growing through [`std::io::Write`] never leaves an unwiped copy behind: the old allocation is
/// zeroed before it is freed.
pub struct SecretBuf {
    bytes: Vec<u8>,
    artifact: String,
    ledger: Ledger,
}

impl SecretBuf {
    /// Takes ownership of `bytes`, to be wiped as `artifact`.
    pub fn new(bytes: Vec<u8>, artifact: impl Into<String>, ledger: &Ledger) -> Self {
        ledger.meter().alloc(bytes.capacity());
        Self {
            bytes,
            artifact: artifact.into(),
            ledger: ledger.clone(),
        }
    }

    /// `len` zero bytes (a scratch plane, a coverage mask).
    pub fn zeroed(len: usize, artifact: impl Into<String>, ledger: &Ledger) -> Self {
        Self::new(vec![0; len], artifact, ledger)
    }

    /// The job's ledger this buffer reports to.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize, artifact: impl Into<String>, ledger: &Ledger) -> Self {
        Self::new(Vec::with_capacity(capacity), artifact, ledger)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The name the wipe is recorded under.
    pub fn artifact(&self) -> &str {
        &self.artifact
    }

    /// Renames the artifact (e.g. when a buffer changes role).
    pub fn rename(&mut self, artifact: impl Into<String>) {
        self.artifact = artifact.into();
    }

    /// Wipes now. Same as dropping, but explicit on the happy path.
    pub fn wipe(self) {}

    fn grow(&mut self, additional: usize) {
        let wanted = self.bytes.len() + additional;
        if wanted <= self.bytes.capacity() {
            return;
        }
        let mut bigger = Vec::with_capacity(wanted.max(self.bytes.capacity() * 2));
        bigger.extend_from_slice(&self.bytes);
        self.ledger.meter().alloc(bigger.capacity());
        let mut old = std::mem::replace(&mut self.bytes, bigger);
        self.ledger.meter().free(old.capacity());
        wipe_vec(&mut old);
    }
}

fn wipe_vec(v: &mut Vec<u8>) {
    let cap = v.capacity();
    v.clear();
    if cap == 0 {
        return;
    }
    // SAFETY: `as_mut_ptr` points to an allocation of `cap` bytes owned by `v`; writing zeros
    // through the raw pointer never forms a reference to the (possibly uninitialised) spare
    // capacity, and explicit_bzero cannot be elided.
    unsafe { libc::explicit_bzero(v.as_mut_ptr().cast(), cap) };
}

impl std::io::Write for SecretBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.grow(buf.len());
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        let held = self.bytes.len() as u64;
        self.ledger.meter().free(self.bytes.capacity());
        wipe_vec(&mut self.bytes);
        self.ledger.record(WipeEntry {
            artifact: std::mem::take(&mut self.artifact),
            bytes: held,
            method: WipeMethod::Zeroize,
            at_ms: now_unix_ms(),
            error: None,
            process: None,
        });
    }
}

impl std::ops::Deref for SecretBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::ops::DerefMut for SecretBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

/// Never prints the bytes: only the artifact name and length.
impl std::fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBuf")
            .field("artifact", &self.artifact)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn dropping_a_buffer_records_its_length_under_its_artifact_name() {
        let ledger = Ledger::new();
        SecretBuf::new(vec![7; 1234], "input.photo", &ledger).wipe();
        let receipt = ledger.receipt(0);
        let entry = receipt.entry("input.photo").expect("recorded");
        assert_eq!(entry.bytes, 1234);
        assert_eq!(entry.method, WipeMethod::Zeroize);
        assert_eq!(receipt.wiped_bytes, 1234);
    }

    #[test]
    fn wiping_zeroes_the_whole_allocation_including_spare_capacity() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0xAB; 48]);
        v.truncate(16);
        let ptr = v.as_ptr();
        let mut v = std::mem::ManuallyDrop::new(v);
        wipe_vec(&mut v);
        // SAFETY: the allocation is still live (ManuallyDrop), 64 bytes long.
        let all = unsafe { std::slice::from_raw_parts(ptr, 64) };
        assert!(all.iter().all(|&b| b == 0));
        // SAFETY: rebuild and free the allocation we leaked on purpose above.
        drop(unsafe { Vec::from_raw_parts(ptr as *mut u8, 0, 64) });
    }

    #[test]
    fn writing_past_capacity_keeps_every_byte_in_order() {
        let ledger = Ledger::new();
        let mut buf = SecretBuf::with_capacity(4, "reply.body", &ledger);
        for chunk in [&b"abc"[..], b"defgh", b"ijklmnopqrstuvwxyz"] {
            buf.write_all(chunk).unwrap();
        }
        assert_eq!(buf.as_slice(), b"abcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn debug_output_never_contains_the_bytes() {
        let buf = SecretBuf::new(b"canary-canary".to_vec(), "x", &Ledger::new());
        assert!(!format!("{buf:?}").contains("canary"));
    }
}
