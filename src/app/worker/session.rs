//! One broker connection with its consumer, and reconnecting with backoff when it is lost.

use super::{Incoming, Running};
use crate::app::broker::{self, BrokerError, Consuming};
use crate::app::config::{BrokerSettings, SecretUrl};
use futures_util::Stream;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// One broker connection with its consumer.
pub(super) struct Session {
    conn: Arc<lapin::Connection>,
    pub(super) consuming: Consuming,
    pub(super) source: std::pin::Pin<Box<dyn Stream<Item = Incoming> + Send>>,
}

impl Session {
    pub(super) async fn open(
        config: &BrokerSettings,
        url: &SecretUrl,
        prefetch: usize,
    ) -> Result<Self, BrokerError> {
        let name = format!("midnit-worker {} {}", config.queue, std::process::id());
        let conn = Arc::new(broker::connect_to(config, url, &name).await?);
        let (consuming, source) = match Consuming::start(&conn, config, prefetch).await {
            Ok(started) => started,
            Err(e) => {
                let _ = conn.close(200, "setup failed".into()).await;
                return Err(e);
            }
        };
        Ok(Self {
            conn,
            consuming,
            source: Box::pin(source),
        })
    }

    /// Stops consuming and closes the channels and the connection. Dropping the session then
    /// frees lapin's buffers, which the zeroing allocator wipes.
    pub(super) async fn close(self, cancel_first: bool) {
        if cancel_first {
            if let Err(e) = self.consuming.cancel().await {
                warn!(error = %e, "could not cancel the consumer");
            }
        }
        self.consuming.close().await;
        let _ = self.conn.close(200, "worker stopping".into()).await;
    }
}

/// Delays between reconnect attempts: exponential from `initial` to `max`, each with ±25 %
/// jitter so a fleet of workers does not reconnect in lockstep.
pub(super) struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
    pub(super) attempts: u32,
}

impl Backoff {
    pub(super) fn new(config: &BrokerSettings) -> Self {
        let initial = Duration::from_millis(config.reconnect_initial_ms);
        Self {
            next: initial,
            initial,
            max: Duration::from_millis(config.reconnect_max_ms),
            attempts: 0,
        }
    }

    pub(super) fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempts += 1;
        base.mul_f64(0.75 + 0.5 * jitter_unit())
    }

    pub(super) fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }
}

/// A number in [0, 1) that differs between processes and calls (not cryptographic).
fn jitter_unit() -> f64 {
    (crate::app::unrepeated_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Opens a new session, retrying with backoff and moving round the configured nodes after each
/// failure; `Ok(None)` if shutdown came first. Logs the first failure and then every tenth, not
/// every attempt. Only what can heal is retried (a broker that is down, refused credentials);
/// settings that can never connect (a TLS file that does not parse) end the worker.
pub(super) async fn reconnect(
    run: &Running,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Result<Option<Session>, BrokerError> {
    loop {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        let url = run.node();
        let attempt = Session::open(&run.broker, &url, run.concurrency);
        let opened = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(None),
            opened = attempt => opened,
        };
        match opened {
            Ok(session) => {
                if backoff.attempts > 0 {
                    run.handling.stats.reconnected();
                    info!(attempts = backoff.attempts, broker = %url.redacted(), "reconnected to the broker");
                }
                backoff.reset();
                run.consuming();
                return Ok(Some(session));
            }
            Err(e @ BrokerError::Config(_)) => return Err(e),
            Err(e) => {
                run.next_node();
                let delay = backoff.delay();
                if backoff.attempts == 1 || backoff.attempts.is_multiple_of(10) {
                    warn!(error = %e, attempt = backoff.attempts, retry_in_ms = delay.as_millis() as u64, "broker unreachable; retrying");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_bounded_jitter() {
        let config = BrokerSettings {
            reconnect_initial_ms: 100,
            reconnect_max_ms: 1_000,
            ..BrokerSettings::default()
        };
        let mut b = Backoff::new(&config);
        let delays: Vec<u128> = (0..8).map(|_| b.delay().as_millis()).collect();
        let bases = [100u128, 200, 400, 800, 1_000, 1_000, 1_000, 1_000];
        for (d, base) in delays.iter().zip(bases) {
            assert!(*d >= base * 3 / 4 && *d <= base * 5 / 4, "{delays:?}");
        }
        b.reset();
        assert!(b.delay().as_millis() <= 125);
    }
}
