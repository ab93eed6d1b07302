//! Counters of what the worker did, for logs, the demo and (later) metrics.

use super::Outcome;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Live counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Stats {
    ok: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    rejected: AtomicU64,
    returned: AtomicU64,
    reply_failed: AtomicU64,
    wiped_bytes: AtomicU64,
    ready: AtomicBool,
    reconnects: AtomicU64,
    idle_wipes: AtomicU64,
    crash_requeues: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Jobs answered `ok`.
    pub ok: u64,
    /// Jobs answered with an error, by code.
    pub errors: BTreeMap<&'static str, u64>,
    /// Messages rejected to the dead-letter queue (no usable `reply_to`).
    pub rejected: u64,
    /// Replies the broker returned (requester gone).
    pub returned: u64,
    /// Replies that were not confirmed (job requeued).
    pub reply_failed: u64,
    /// Bytes wiped by finished jobs (receipts plus reply bodies).
    pub wiped_bytes: u64,
    /// Connected to the broker and consuming.
    pub ready: bool,
    /// Broker connections reopened after a loss.
    pub reconnects: u64,
    /// Idle connections replaced so their buffers are wiped.
    pub idle_wipes: u64,
    /// Jobs requeued after their renderer crashed (not yet at the delivery limit).
    pub crash_requeues: u64,
}

impl Stats {
    pub(super) fn finished(&self, outcome: &Outcome, wiped: u64) {
        match outcome {
            Outcome::Ok => {
                self.ok.fetch_add(1, Relaxed);
            }
            Outcome::Error(code) => {
                let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
                *errors.entry(code.as_str()).or_default() += 1;
            }
        }
        self.wiped_bytes.fetch_add(wiped, Relaxed);
    }

    pub(super) fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    pub(super) fn returned(&self) {
        self.returned.fetch_add(1, Relaxed);
    }

    /// Marks the worker connected and consuming (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Relaxed);
    }

    /// Counts a reconnect after a lost connection.
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Relaxed);
    }

    pub(super) fn crash_requeued(&self) {
        self.crash_requeues.fetch_add(1, Relaxed);
    }

    /// Counts an idle connection replaced.
    pub fn idle_wiped(&self) {
        self.idle_wipes.fetch_add(1, Relaxed);
    }

    pub(super) fn reply_failed(&self) {
        self.reply_failed.fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            ok: self.ok.load(Relaxed),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            rejected: self.rejected.load(Relaxed),
            returned: self.returned.load(Relaxed),
            reply_failed: self.reply_failed.load(Relaxed),
            wiped_bytes: self.wiped_bytes.load(Relaxed),
            ready: self.ready.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            idle_wipes: self.idle_wipes.load(Relaxed),
            crash_requeues: self.crash_requeues.load(Relaxed),
        }
    }
}
