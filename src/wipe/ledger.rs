//! The wipe ledger of one job, and the receipt that is a snapshot of it.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError};

/// How an artifact was destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WipeMethod {
    /// The whole allocation was overwritten with zeros (`explicit_bzero`) before being freed.
    Zeroize,
    /// A spill file was overwritten with zeros, fsynced, read back and checked, then unlinked.
    OverwriteVerifyUnlink,
    /// The wipe was attempted and failed; `error` says how. Never silently omitted.
    Failed,
}

/// One destroyed artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WipeEntry {
    /// What it was: `request.body`, `input.photo`, `pixels.photo.decoded`, `output.thumb`, …
    pub artifact: String,
    /// How many bytes of job data it held.
    pub bytes: u64,
    /// How it was destroyed.
    pub method: WipeMethod,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Why the wipe failed (only with `method: failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which process held and wiped it: absent for the worker itself, `renderer` for the
    /// single-use renderer process of the isolated executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

/// The wipe ledger of one job. Cloning shares it. Entries are only added by the wiping code
/// ([`super::SecretBuf`] and [`super::SpillFile`] drop guards).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    entries: Arc<Mutex<Vec<WipeEntry>>>,
}

impl Ledger {
    /// A new, empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn record(&self, entry: WipeEntry) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }

    /// Adds the entries a renderer process's own wiping code reported, marked as its.
    pub fn record_reported(&self, entries: Vec<WipeEntry>, process: &str) {
        let mut all = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for mut e in entries {
            e.process = Some(process.to_owned());
            all.push(e);
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
        Receipt::new(started_at_ms, wiped)
    }
}

/// What was wiped for one job, when and how; carried in every reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// When the worker received the job (ms since the Unix epoch).
    pub started_at_ms: u64,
    /// When the receipt was sealed into the reply.
    pub sealed_at_ms: u64,
    /// Sum of `bytes` over the successful entries.
    pub wiped_bytes: u64,
    /// Number of failed wipes (each also listed in `wiped` with `method: failed`).
    pub failures: u32,
    /// Every destroyed artifact, in the order it was destroyed.
    pub wiped: Vec<WipeEntry>,
}

impl Receipt {
    fn new(started_at_ms: u64, wiped: Vec<WipeEntry>) -> Self {
        let ok = wiped.iter().filter(|e| e.method != WipeMethod::Failed);
        let wiped_bytes = ok.map(|e| e.bytes).sum();
        let failures = wiped
            .iter()
            .filter(|e| e.method == WipeMethod::Failed)
            .count() as u32;
        Self {
            started_at_ms,
            sealed_at_ms: super::now_unix_ms(),
            wiped_bytes,
            failures,
            wiped,
        }
    }

    /// The entry for `artifact`, if it was wiped.
    pub fn entry(&self, artifact: &str) -> Option<&WipeEntry> {
        self.wiped.iter().find(|e| e.artifact == artifact)
    }
}
