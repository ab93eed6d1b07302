//! Around the stages: the **app** that runs them — the worker's loop on the broker, its
//! configuration, health and metrics, logging, and the command-line commands.

pub mod broker;
pub mod config;
pub mod http;
pub mod memqueue;
pub mod serve;
pub mod telemetry;
pub mod trace;
pub mod worker;

/// A number that differs between processes and between calls, for what must not repeat but
/// need not be secret (reconnect jitter, trace and span ids): the standard hasher's random
/// per-process keys over the clock and a counter. Never for keys or anything an attacker must
/// not guess.
pub(crate) fn unrepeated_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
