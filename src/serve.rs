//! `serve`: a worker on the real broker, from start-up to a clean exit.

use crate::broker::{self, BrokerError, Consuming};
use crate::config::Config;
use crate::executor::Executor;
use crate::wipe::{KeyError, ReceiptSigner, SpillDir, SpillError};
use crate::worker::{accept, drain, Drained, Incoming, Shared, Stats, Stopped};
use futures_util::Stream;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Why the worker could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The spill directory is unusable.
    #[error(transparent)]
    Spill(#[from] SpillError),
    /// The broker is unreachable or refused the topology.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The receipt key cannot be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No random source for a fresh receipt key.
    #[error("cannot generate a receipt key: {0}")]
    KeyGen(std::io::Error),
    /// The renderer binary cannot be located.
    #[error("cannot locate the renderer binary: {0}")]
    Executor(std::io::Error),
    /// The health and metrics listener cannot bind its address.
    #[error("cannot listen for health and metrics on {0}: {1}")]
    Http(String, std::io::Error),
    /// Shutdown gave up on jobs that did not finish in time; the broker redelivers them.
    #[error("{0} jobs did not finish within the drain timeout; the broker will redeliver them")]
    DrainTimeout(usize),
}

/// The receipt signer: from the configured key file, or a fresh key whose public half is
/// logged (backends verify receipts against it).
pub fn receipt_signer(config: &Config) -> Result<ReceiptSigner, ServeError> {
    let signer = match &config.receipt_key_file {
        Some(path) => ReceiptSigner::from_file(path)?,
        None => ReceiptSigner::generate().map_err(ServeError::KeyGen)?,
    };
    info!(public_key = %signer.public_key_hex(), "receipts are signed with ed25519");
    Ok(signer)
}

/// One broker connection with its consumer.
struct Session {
    conn: Arc<lapin::Connection>,
    consuming: Consuming,
    source: std::pin::Pin<Box<dyn Stream<Item = Incoming> + Send>>,
}

impl Session {
    async fn open(config: &Config) -> Result<Self, BrokerError> {
        let name = format!("midnit-worker {} {}", config.queue, std::process::id());
        let conn = Arc::new(broker::connect(config, &name).await?);
        let (consuming, source) = match Consuming::start(&conn, config).await {
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
    async fn close(self, cancel_first: bool) {
        if cancel_first {
            if let Err(e) = self.consuming.cancel().await {
                warn!(error = %e, "could not cancel the consumer");
            }
        }
        self.consuming.close().await;
        let _ = self.conn.close(200, "worker stopping".into()).await;
    }
}

/// Marks the worker ready and says so.
fn consuming(shared: &Shared) {
    let config = &shared.config;
    shared.stats.set_ready(true);
    info!(
        queue = %config.queue,
        concurrency = config.concurrency,
        broker = %config.amqp_url.redacted(),
        "consuming"
    );
}

/// Delays between reconnect attempts: exponential from `initial` to `max`, each with ±25 %
/// jitter so a fleet of workers does not reconnect in lockstep.
struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    fn new(config: &Config) -> Self {
        let initial = Duration::from_millis(config.reconnect_initial_ms);
        Self {
            next: initial,
            initial,
            max: Duration::from_millis(config.reconnect_max_ms),
            attempts: 0,
        }
    }

    fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempts += 1;
        base.mul_f64(0.75 + 0.5 * jitter_unit())
    }

    fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }
}

/// A number in [0, 1) that differs between processes and calls (not cryptographic).
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A worker connected to the broker and consuming.
pub struct Worker {
    session: Option<Session>,
    shared: Arc<Shared>,
}

impl Worker {
    /// Prepares the spill directory, connects, declares the topology and starts consuming,
    /// rendering with the configured executor. Fails if the broker cannot be reached now.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        let executor = crate::executor::from_config(&config).map_err(ServeError::Executor)?;
        Self::start_with(config, executor).await
    }

    /// The same, with another executor.
    pub async fn start_with(
        config: Config,
        executor: Arc<dyn Executor>,
    ) -> Result<Self, ServeError> {
        let mut worker = Self::prepare(config, executor)?;
        worker.session = Some(Session::open(&worker.shared.config).await?);
        worker.consuming();
        Ok(worker)
    }

    /// Everything but the broker connection: `run` connects (and keeps reconnecting, with
    /// backoff) until it is told to stop. This is what `serve` uses, so a worker started
    /// before its broker waits for it instead of exiting.
    pub fn prepare(config: Config, executor: Arc<dyn Executor>) -> Result<Self, ServeError> {
        crate::wipe::ZeroingAlloc::set_enabled(config.wipe_memory);
        if !config.wipe_memory {
            warn!("wipe_memory = false: freed memory is NOT zeroed and idle connections are NOT wiped (test setting)");
        }
        let (spill, leftovers) = SpillDir::prepare(&config.spill_dir)?;
        if leftovers > 0 {
            warn!(leftovers, "wiped spill files left by an earlier run");
        }
        let signer = Some(Arc::new(receipt_signer(&config)?));
        let shared = Arc::new(Shared {
            config,
            spill,
            executor,
            stats: Stats::default(),
            signer,
        });
        Ok(Self {
            session: None,
            shared,
        })
    }

    fn consuming(&self) {
        consuming(&self.shared);
    }

    /// The worker's shared state (counters, configuration).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` fires, then stops consuming, finishes in-flight jobs (bounded
    /// by the drain timeout) and closes the connection.
    ///
    /// A lost connection is reopened with backoff (in-flight jobs of the dead channel are not
    /// acked, so the broker redelivers them); a connection that carried jobs and has been idle
    /// for `idle_wipe_secs` is replaced so its buffers are freed and zeroed.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<Drained, ServeError> {
        let tracker = TaskTracker::new();
        let config = &self.shared.config;
        let idle_wipe = (config.wipe_memory && config.idle_wipe_secs > 0)
            .then(|| Duration::from_secs(config.idle_wipe_secs));
        let mut backoff = Backoff::new(config);
        let mut lost = false;
        loop {
            let mut session = match self.session.take() {
                Some(session) => session,
                None => match reconnect(&self.shared, &mut backoff, &shutdown).await {
                    Some(session) => session,
                    None => break,
                },
            };
            if std::mem::take(&mut lost) {
                self.shared.stats.reconnected();
                info!("reconnected to the broker; consuming again");
            }
            let stopped = accept(
                &mut session.source,
                &self.shared,
                &shutdown,
                &tracker,
                idle_wipe,
            )
            .await;
            match stopped {
                Stopped::Shutdown => {
                    info!("shutdown requested: no new jobs");
                    if let Err(e) = session.consuming.cancel().await {
                        warn!(error = %e, "could not cancel the consumer");
                    }
                    let drained = drain_all(&self.shared, &tracker).await;
                    session.close(false).await;
                    self.shared.stats.set_ready(false);
                    return drained;
                }
                Stopped::Idle => {
                    // `close` consumes the session: its buffers are freed (and zeroed) here.
                    session.close(true).await;
                    self.shared.stats.idle_wiped();
                    debug!(
                        "idle: replaced the broker connection (its buffers are freed and zeroed)"
                    );
                    backoff.reset();
                }
                Stopped::SourceEnded => {
                    lost = true;
                    self.shared.stats.set_ready(false);
                    warn!(in_flight = tracker.len(), "the broker connection was lost; unacked jobs return to the queue; reconnecting");
                    drop(session);
                }
            }
        }
        // Shutdown while disconnected: jobs still running belong to a dead channel (their reply
        // or ack fails and the broker redelivers them); give them the drain time to end.
        drain_all(&self.shared, &tracker).await
    }
}

async fn drain_all(shared: &Shared, tracker: &TaskTracker) -> Result<Drained, ServeError> {
    tracker.close();
    let timeout = Duration::from_secs(shared.config.drain_timeout_secs);
    let drained = drain(tracker, timeout).await;
    match drained.abandoned {
        0 => {
            info!("all in-flight jobs answered; bye");
            Ok(drained)
        }
        n => Err(ServeError::DrainTimeout(n)),
    }
}

/// Opens a new session, retrying with backoff; `None` if shutdown came first. Logs the
/// first failure and then every tenth, not every attempt.
async fn reconnect(
    shared: &Shared,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Option<Session> {
    loop {
        if shutdown.is_cancelled() {
            return None;
        }
        let attempt = Session::open(&shared.config);
        let opened = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return None,
            opened = attempt => opened,
        };
        match opened {
            Ok(session) => {
                if backoff.attempts > 0 {
                    shared.stats.reconnected();
                    info!(attempts = backoff.attempts, "reconnected to the broker");
                }
                backoff.reset();
                consuming(shared);
                return Some(session);
            }
            Err(e) => {
                let delay = backoff.delay();
                if backoff.attempts == 1 || backoff.attempts % 10 == 0 {
                    warn!(error = %e, attempt = backoff.attempts, retry_in_ms = delay.as_millis() as u64, "broker unreachable; retrying");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
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
        let config = Config {
            reconnect_initial_ms: 100,
            reconnect_max_ms: 1_000,
            ..Config::default()
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
