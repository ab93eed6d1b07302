//! The wipe ledger of one job, and the receipt that is a snapshot of it.
//!
//! A ledger holds at most [`MAX_ENTRIES`] entries: beyond that, successful wipes are folded
//! into one `other` entry (bytes summed), so a receipt's size is bounded whatever a job does
//! ([`RECEIPT_MAX_BYTES`]); a failed wipe is always listed on its own. Entries reported by a
//! renderer are untrusted: they are marked as the renderer's, their names and errors are
//! shortened to printable text, and every sum saturates instead of overflowing.

pub use midnit_client::receipt::{Receipt, SealedFacts, WipeEntry, WipeMethod};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Most entries a ledger (and so a receipt) lists before folding.
pub const MAX_ENTRIES: usize = 256;

/// Longest artifact name and error text an entry keeps.
pub const MAX_TEXT: usize = 96;

/// Most failed entries a ledger lists (each spill file can fail once).
pub const MAX_FAILURES: usize = 64;

/// An upper bound on a receipt's CBOR size: [`MAX_ENTRIES`] + 1 + `MAX_FAILURES` entries of
/// at most `MAX_TEXT`-byte texts, and the fixed fields (checked by a test).
pub const RECEIPT_MAX_BYTES: usize = 128 * 1024;

/// The name of the entry that folds what did not fit.
pub const FOLDED: &str = "other";

/// The wipe ledger of one job. Cloning shares it. Entries are only added by the wiping code
/// ([`super::SecretBuf`] and [`super::SpillFile`] drop guards).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    entries: Arc<Mutex<Vec<WipeEntry>>>,
    meter: Arc<Meter>,
}

/// What a job's buffers cost: bytes held now, at most, and in all (every [`super::SecretBuf`]
/// reports here), and the pixel visits its drawing code counted. The recipe cost model is
/// tested against these figures.
#[derive(Debug, Default)]
pub struct Meter {
    live: AtomicU64,
    peak: AtomicU64,
    allocated: AtomicU64,
    visits: AtomicU64,
}

/// A reading of a `Meter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metered {
    /// Most bytes held at once.
    pub peak_bytes: u64,
    /// Bytes allocated in all.
    pub allocated_bytes: u64,
    /// Pixel visits counted.
    pub visits: u64,
}

impl Meter {
    pub(crate) fn alloc(&self, bytes: usize) {
        let bytes = bytes as u64;
        self.allocated.fetch_add(bytes, Ordering::Relaxed);
        let live = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(live, Ordering::Relaxed);
    }

    pub(crate) fn free(&self, bytes: usize) {
        self.live.fetch_sub(bytes as u64, Ordering::Relaxed);
    }
}

impl Ledger {
    /// A new, empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `n` pixel visits of drawing work.
    pub fn visit(&self, n: u64) {
        self.meter.visits.fetch_add(n, Ordering::Relaxed);
    }

    /// What the job's buffers and drawing have cost so far.
    pub fn metered(&self) -> Metered {
        let m = &self.meter;
        Metered {
            peak_bytes: m.peak.load(Ordering::Relaxed),
            allocated_bytes: m.allocated.load(Ordering::Relaxed),
            visits: m.visits.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }

    pub(super) fn record(&self, entry: WipeEntry) {
        let mut all = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        push_bounded(&mut all, entry);
    }

    /// Adds the entries a renderer process's own wiping code reported, marked as its, each held
    /// to the ledger's bounds (a compromised renderer could report anything).
    pub fn record_reported(&self, entries: Vec<WipeEntry>, process: &str) {
        let mut all = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for e in entries.into_iter().take(MAX_ENTRIES + MAX_FAILURES + 1) {
            let entry = WipeEntry {
                artifact: printable(&e.artifact),
                error: e.error.as_deref().map(printable),
                process: Some(process.to_owned()),
                ..e
            };
            push_bounded(&mut all, entry);
        }
    }

    /// Every entry recorded so far.
    pub fn entries(&self) -> Vec<WipeEntry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A snapshot of what has been wiped so far.
    pub fn receipt(&self, started_at_ms: u64) -> Receipt {
        let wiped = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        receipt_of(started_at_ms, wiped)
    }
}

/// `text`, shortened to [`MAX_TEXT`] bytes of printable ASCII (anything else becomes `?`).
fn printable(text: &str) -> String {
    text.chars()
        .take(MAX_TEXT)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Cuts `text` to at most [`MAX_TEXT`] bytes, on a character boundary.
fn shorten(text: &mut String) {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Appends `entry`, folding it into the [`FOLDED`] entry once the ledger is full.
fn push_bounded(all: &mut Vec<WipeEntry>, mut entry: WipeEntry) {
    shorten(&mut entry.artifact);
    if let Some(e) = &mut entry.error {
        shorten(e);
    }
    let failures = all
        .iter()
        .filter(|e| e.method == WipeMethod::Failed)
        .count();
    let room = if entry.method == WipeMethod::Failed {
        failures < MAX_FAILURES
    } else {
        all.len() - failures < MAX_ENTRIES
    };
    if room {
        all.push(entry);
        return;
    }
    match all
        .iter_mut()
        .find(|e| e.artifact == FOLDED && e.method != WipeMethod::Failed)
    {
        Some(folded) => {
            folded.bytes = folded.bytes.saturating_add(entry.bytes);
            folded.at_ms = folded.at_ms.max(entry.at_ms);
        }
        None => {
            // The last regular slot becomes the fold.
            let last = all.iter().rposition(|e| e.method != WipeMethod::Failed);
            let mut folded = last.map(|i| all.remove(i)).unwrap_or(WipeEntry {
                artifact: String::new(),
                bytes: 0,
                method: WipeMethod::Zeroize,
                at_ms: 0,
                error: None,
                process: None,
            });
            folded.artifact = FOLDED.into();
            folded.bytes = folded.bytes.saturating_add(entry.bytes);
            folded.at_ms = folded.at_ms.max(entry.at_ms);
            folded.process = None;
            if entry.method == WipeMethod::Failed {
                // No room for another failure: still never hidden.
                folded.method = WipeMethod::Failed;
                folded.error = Some("more failed wipes than a receipt lists".into());
            }
            all.push(folded);
        }
    }
}

/// The receipt of a ledger's `wiped` entries, sealed now.
fn receipt_of(started_at_ms: u64, wiped: Vec<WipeEntry>) -> Receipt {
    let ok = wiped.iter().filter(|e| e.method != WipeMethod::Failed);
    let wiped_bytes = ok.fold(0u64, |sum, e| sum.saturating_add(e.bytes));
    let failures = wiped
        .iter()
        .filter(|e| e.method == WipeMethod::Failed)
        .count() as u32;
    Receipt {
        started_at_ms,
        sealed_at_ms: super::now_unix_ms(),
        wiped_bytes,
        failures,
        wiped,
        sealed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(artifact: &str, bytes: u64, method: WipeMethod) -> WipeEntry {
        WipeEntry {
            artifact: artifact.into(),
            bytes,
            method,
            at_ms: 1,
            error: (method == WipeMethod::Failed).then(|| "e".repeat(500)),
            process: None,
        }
    }

    #[test]
    fn a_flood_of_entries_is_folded_and_no_failure_is_hidden() {
        let ledger = Ledger::new();
        for i in 0..10_000u64 {
            ledger.record(entry(&format!("pixels.{i}"), 10, WipeMethod::Zeroize));
        }
        ledger.record(entry("spill.photo", 5, WipeMethod::Failed));
        let r = ledger.receipt(0);
        assert_eq!(r.wiped.len(), MAX_ENTRIES + 1);
        assert_eq!(r.wiped_bytes, 100_000, "folded bytes still count");
        assert_eq!(r.failures, 1);
        assert!(r.entry(FOLDED).is_some());
    }

    #[test]
    fn reported_entries_are_marked_shortened_and_summed_without_overflow() {
        let ledger = Ledger::new();
        let hostile = vec![
            entry(&"\u{7}x".repeat(1000), u64::MAX, WipeMethod::Zeroize),
            entry("pixels.canvas", u64::MAX, WipeMethod::Zeroize),
        ];
        ledger.record_reported(hostile, "renderer");
        let r = ledger.receipt(0);
        assert_eq!(r.wiped_bytes, u64::MAX);
        assert!(r
            .wiped
            .iter()
            .all(|e| e.process.as_deref() == Some("renderer")));
        assert!(r.wiped[0].artifact.len() <= MAX_TEXT);
        assert!(!r.wiped[0].artifact.contains('\u{7}'));
    }

    #[test]
    fn the_largest_receipt_fits_its_stated_bound() {
        let ledger = Ledger::new();
        for _ in 0..(MAX_ENTRIES + MAX_FAILURES + 10) {
            ledger.record(entry(&"a".repeat(200), u64::MAX, WipeMethod::Zeroize));
            ledger.record(entry(&"b".repeat(200), u64::MAX, WipeMethod::Failed));
        }
        let mut r = ledger.receipt(u64::MAX);
        for e in &mut r.wiped {
            e.at_ms = u64::MAX;
            e.process = Some("renderer".into());
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(&r, &mut bytes).unwrap();
        assert!(bytes.len() <= RECEIPT_MAX_BYTES, "{} bytes", bytes.len());
    }
}
