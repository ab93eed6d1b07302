//! The **worker**: connected to the broker, consuming, handling each delivery ([`handle`]),
//! reconnecting when the broker is lost (`session`), replacing an idle connection, and
//! draining on shutdown — from start-up to a clean exit.

mod accept;
mod delivery;
mod handle;
mod session;
mod stats;

pub use accept::{accept, drain, Drained, Stopped};
pub use delivery::{Incoming, Props, ReplyOutcome, Settle, TransportError};
pub use handle::{handle, AttemptPolicy, Handling, Outcome};
pub use stats::{Stage, Stats, StatsSnapshot};

use crate::app::broker::BrokerError;
use crate::app::config::{
    BrokerSettings, Config, ExecutorKind, ExecutorSettings, KeySettings, SealedMode, Topology,
};
use crate::job::Limits;
use crate::keys::{KeyState, Keyring};
use crate::render::executor::{Executor, InProcess, Isolated};
use crate::reply::process::Processor;
use crate::wipe::{KeyError, ReceiptSigner, SpillDir, SpillError};
use futures_util::Stream;
use session::{reconnect, Backoff, Session};
use std::path::Path;
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
    /// The fleet's key state cannot be loaded or does not fit the settings.
    #[error(transparent)]
    Keys(#[from] crate::keys::StateError),
    /// The key page cannot be mapped.
    #[error("cannot map the key page: {0}")]
    KeyPage(std::io::Error),
    /// The health and metrics listener cannot bind its address.
    #[error("cannot listen for health and metrics on {0}: {1}")]
    Http(String, std::io::Error),
    /// Shutdown gave up on jobs that did not finish in time; the broker redelivers them.
    #[error("{0} jobs did not finish within the drain timeout; the broker will redeliver them")]
    DrainTimeout(usize),
}

impl ServeError {
    /// The process exit code: 2 for what only a change of configuration or files can mend
    /// (nothing is retried), 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Broker(BrokerError::Config(_))
            | Self::Spill(_)
            | Self::Key(_)
            | Self::Keys(_)
            | Self::Executor(_)
            | Self::Http(..) => 2,
            Self::Broker(_) | Self::KeyGen(_) | Self::KeyPage(_) | Self::DrainTimeout(_) => 1,
        }
    }
}

/// The receipt signer: from the configured key file, or a fresh key whose public half is
/// logged (backends verify receipts against it).
pub fn receipt_signer(key_file: Option<&Path>) -> Result<ReceiptSigner, ServeError> {
    let signer = match key_file {
        Some(path) => ReceiptSigner::from_file(path)?,
        None => ReceiptSigner::generate().map_err(ServeError::KeyGen)?,
    };
    info!(public_key = %signer.public_key_hex(), "receipts are signed with ed25519");
    Ok(signer)
}

/// The keyring of sealed requests: from the fleet's key state file, or a state made at start
/// for this worker alone (its directory key logged). `None` when sealing is off.
pub fn keyring(k: &KeySettings) -> Result<Option<Keyring>, ServeError> {
    if k.sealed == SealedMode::Off {
        return Ok(None);
    }
    let now = crate::wipe::now_unix_ms();
    let (state, source) = match &k.key_state_file {
        Some(path) => (KeyState::read(path)?, Some(path.clone())),
        None => {
            warn!("no key_state_file: this worker made a key state of its own; a fleet shares one (`midnit-worker keys init`)");
            let state =
                KeyState::generate(k.ephemeral_epoch_secs, now).map_err(ServeError::KeyGen)?;
            (state, None)
        }
    };
    if state.epoch_secs <= k.epoch_grace_secs {
        return Err(ServeError::Keys(crate::keys::StateError {
            path: k.key_state_file.clone().unwrap_or_default(),
            message: format!(
                "epoch_secs: the epoch ({} s) must be longer than epoch_grace_secs ({} s)",
                state.epoch_secs, k.epoch_grace_secs
            ),
        }));
    }
    let ring = Keyring::new(state, source, k.epoch_grace_secs, k.replay_entries, now)
        .map_err(ServeError::KeyPage)?;
    let status = ring.status();
    info!(
        epoch = status.epoch,
        directory_key = %midnit_client::hex(&ring.directory_public_key()),
        locked = status.locked,
        sealed = ?k.sealed,
        "sealed requests: epoch keys loaded (the directory key is what clients pin)"
    );
    if !status.locked {
        warn!("the key page could not be locked in RAM (RLIMIT_MEMLOCK): it may be swapped");
    }
    Ok(Some(ring))
}

/// Moves the keyring with the epoch clock (every second) and follows its state file (every
/// `follow`), until `stop`.
async fn key_clock(shared: Arc<Handling>, follow: Duration, stop: CancellationToken) {
    let Some(keys) = shared.processor.keys.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_follow = std::time::Instant::now();
    let mut erased_seen = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::wipe::now_unix_ms();
        let ticked = keys.tick(now);
        if ticked.advanced > 0 {
            info!(
                epoch = keys.status().epoch,
                "epoch advanced; the old chain value is overwritten"
            );
        }
        if let Some(erased) = ticked.erased {
            info!(
                epoch = erased,
                "grace period over: the past epoch's private key is erased"
            );
        }
        let status = keys.status();
        shared.stats.keys(&status, status.erased - erased_seen);
        erased_seen = status.erased;
        if last_follow.elapsed() >= follow {
            last_follow = std::time::Instant::now();
            match keys.follow(now) {
                Ok(true) => warn!(
                    epoch = keys.status().epoch,
                    "the key state file holds another fleet state: keys replaced"
                ),
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "the key state file cannot be read; keeping the keys held")
                }
            }
        }
    }
}

/// The executor the `[executor]` section asks for, rendering at most `concurrency` jobs at
/// once under `limits`.
pub fn executor_for(
    settings: &ExecutorSettings,
    limits: &Limits,
    concurrency: usize,
) -> std::io::Result<Arc<dyn Executor>> {
    Ok(match settings.executor {
        ExecutorKind::InProcess => Arc::new(InProcess::new(limits.clone(), concurrency)),
        ExecutorKind::Isolated => {
            let binary = match &settings.renderer_binary {
                Some(path) => path.clone(),
                None => std::env::current_exe()?,
            };
            let max = limits.max_job_memory_bytes;
            Arc::new(Isolated::new(binary, limits.clone(), concurrency, max))
        }
    })
}

/// The processor of a worker's jobs: its executor, its limits, its spill directory and its
/// receipt key.
pub fn processor(config: &Config, executor: Arc<dyn Executor>) -> Result<Processor, ServeError> {
    let (spill, leftovers) = SpillDir::prepare(&config.wipe.spill_dir)?;
    if leftovers > 0 {
        warn!(leftovers, "wiped spill files left by an earlier run");
    }
    check_spill_medium(&spill, config.wipe.spill_require_tmpfs)?;
    let signer = receipt_signer(config.wipe.receipt_key_file.as_deref())?;
    Ok(Processor {
        executor,
        limits: config.limits.clone(),
        presets: Arc::new(config.presets.clone()),
        spill: Some((spill, config.wipe.spill_threshold_bytes)),
        signer: Some(Arc::new(signer)),
        sealed: config.keys.sealed,
        keys: keyring(&config.keys)?.map(Arc::new),
    })
}

/// Refuses (`require`) or warns about a spill directory that is not on tmpfs: large inputs are
/// written there, and on a disk their bytes outlive the overwrite (journals, remapped blocks).
fn check_spill_medium(spill: &SpillDir, require: bool) -> Result<(), ServeError> {
    let on_memory = spill.is_memory_backed().map_err(|source| SpillError::Io {
        path: spill.path().to_owned(),
        source,
    })?;
    match (on_memory, require) {
        (true, _) => Ok(()),
        (false, true) => Err(SpillError::OnDisk(spill.path().to_owned()).into()),
        (false, false) => {
            warn!(spill_dir = %spill.path().display(), "the spill directory is not on tmpfs: spilled inputs reach a disk (set spill_require_tmpfs = true to refuse)");
            Ok(())
        }
    }
}

/// What the running loop needs: the broker's settings, how many jobs at once, when to drain
/// and to wipe, and the handling of each delivery.
pub(crate) struct Running {
    broker: BrokerSettings,
    concurrency: usize,
    drain_timeout: Duration,
    idle_wipe: Option<Duration>,
    key_follow: Duration,
    handling: Arc<Handling>,
    /// Which of the broker's URLs (a cluster's nodes) the next connection goes to.
    node: std::sync::atomic::AtomicUsize,
}

impl Running {
    /// The broker URL the next connection goes to.
    fn node(&self) -> crate::app::config::SecretUrl {
        let i = self.node.load(std::sync::atomic::Ordering::Relaxed);
        self.broker.amqp_url.nth(i)
    }

    /// Moves on to the next node (after a failed attempt or a lost connection).
    fn next_node(&self) {
        self.node.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts the key clock, if the worker has keys; it stops with the returned guard.
    fn key_clock(&self) -> tokio_util::sync::DropGuard {
        let stop = CancellationToken::new();
        if self.handling.processor.keys.is_some() {
            tokio::spawn(key_clock(
                self.handling.clone(),
                self.key_follow,
                stop.clone(),
            ));
        }
        stop.drop_guard()
    }
}

impl Running {
    /// Marks the worker ready and says so.
    fn consuming(&self) {
        self.handling.stats.set_ready(true);
        info!(
            queue = %self.broker.queue,
            concurrency = self.concurrency,
            broker = %self.node().redacted(),
            "consuming"
        );
    }

    async fn drain_all(&self, tracker: &TaskTracker) -> Result<Drained, ServeError> {
        tracker.close();
        let drained = drain(tracker, self.drain_timeout).await;
        match drained.abandoned {
            0 => {
                info!("all in-flight jobs answered; bye");
                Ok(drained)
            }
            n => Err(ServeError::DrainTimeout(n)),
        }
    }
}

/// A worker connected to the broker and consuming.
pub struct Worker {
    session: Option<Session>,
    run: Running,
}

impl Worker {
    /// Prepares the spill directory, connects, declares the topology and starts consuming,
    /// rendering with the configured executor. Fails if the broker cannot be reached now.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        let executor = executor_for(&config.executor, &config.limits, config.worker.concurrency)
            .map_err(ServeError::Executor)?;
        Self::start_with(config, executor).await
    }

    /// The same, with another executor.
    pub async fn start_with(
        config: Config,
        executor: Arc<dyn Executor>,
    ) -> Result<Self, ServeError> {
        let mut worker = Self::prepare(config, executor)?;
        let run = &worker.run;
        worker.session = Some(Session::open(&run.broker, &run.node(), run.concurrency).await?);
        worker.run.consuming();
        Ok(worker)
    }

    /// Everything but the broker connection: `run` connects (and keeps reconnecting, with
    /// backoff) until it is told to stop. This is what `serve` uses, so a worker started
    /// before its broker waits for it instead of exiting. The zeroing allocator is the
    /// binary's to switch (`main`), not the worker's: two workers in one process share it.
    pub fn prepare(config: Config, executor: Arc<dyn Executor>) -> Result<Self, ServeError> {
        let wipe = &config.wipe;
        if !wipe.wipe_memory {
            warn!("wipe_memory = false: freed memory is NOT zeroed and idle connections are NOT wiped (test setting)");
        }
        let idle_wipe = (wipe.wipe_memory && wipe.idle_wipe_secs > 0)
            .then(|| Duration::from_secs(wipe.idle_wipe_secs));
        let handling = Arc::new(Handling {
            processor: processor(&config, executor)?,
            stats: Stats::default(),
            attempts: AttemptPolicy {
                counted: config.broker.topology == Topology::Durable,
                delivery_limit: config.broker.delivery_limit,
            },
        });
        handling.stats.set_concurrency(config.worker.concurrency);
        let run = Running {
            concurrency: config.worker.concurrency,
            drain_timeout: Duration::from_secs(config.worker.drain_timeout_secs),
            idle_wipe,
            key_follow: Duration::from_secs(config.keys.key_follow_secs),
            handling,
            broker: config.broker,
            node: Default::default(),
        };
        Ok(Self { session: None, run })
    }

    /// How the worker handles deliveries: its processor and counters.
    pub fn handling(&self) -> Arc<Handling> {
        self.run.handling.clone()
    }

    /// Serves until `shutdown` fires, then stops consuming, finishes in-flight jobs (bounded
    /// by the drain timeout) and closes the connection.
    ///
    /// A lost connection is reopened with backoff (in-flight jobs of the dead channel are not
    /// acked, so the broker redelivers them); a connection that carried jobs and has been idle
    /// for `idle_wipe_secs` is replaced so its buffers are freed and zeroed.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<Drained, ServeError> {
        let tracker = TaskTracker::new();
        let run = &self.run;
        let _key_clock = run.key_clock();
        let stats = &run.handling.stats;
        let mut backoff = Backoff::new(&run.broker);
        let mut lost = false;
        loop {
            let mut session = match self.session.take() {
                Some(session) => session,
                None => match reconnect(run, &mut backoff, &shutdown).await {
                    Ok(Some(session)) => session,
                    Ok(None) => break,
                    Err(e) => {
                        tracker.close();
                        return Err(e.into());
                    }
                },
            };
            if std::mem::take(&mut lost) {
                stats.reconnected();
                info!("reconnected to the broker; consuming again");
            }
            let source = &mut session.source;
            let stopped = accept(source, &run.handling, &shutdown, &tracker, run.idle_wipe).await;
            match stopped {
                Stopped::Shutdown => {
                    info!("shutdown requested: no new jobs");
                    if let Err(e) = session.consuming.cancel().await {
                        warn!(error = %e, "could not cancel the consumer");
                    }
                    let drained = run.drain_all(&tracker).await;
                    session.close(false).await;
                    stats.set_ready(false);
                    return drained;
                }
                Stopped::Idle => {
                    // `close` consumes the session: its buffers are freed (and zeroed) here.
                    session.close(true).await;
                    stats.idle_wiped();
                    debug!(
                        "idle: replaced the broker connection (its buffers are freed and zeroed)"
                    );
                    backoff.reset();
                }
                Stopped::SourceEnded => {
                    lost = true;
                    // A cluster's node may be the one that went: try the next one first.
                    run.next_node();
                    stats.set_ready(false);
                    warn!(in_flight = tracker.len(), "the broker connection was lost; unacked jobs return to the queue; reconnecting");
                    drop(session);
                }
            }
        }
        // Shutdown while disconnected: jobs still running belong to a dead channel (their reply
        // or ack fails and the broker redelivers them); give them the drain time to end.
        run.drain_all(&tracker).await
    }

    /// Serves one source of deliveries that is not the broker (the demo's in-process queue)
    /// with the same handling, until it ends or `shutdown` fires, then drains.
    pub async fn run_on<S>(
        self,
        mut source: S,
        shutdown: CancellationToken,
    ) -> Result<Drained, ServeError>
    where
        S: Stream<Item = Incoming> + Unpin,
    {
        let tracker = TaskTracker::new();
        let run = &self.run;
        let _key_clock = run.key_clock();
        run.handling.stats.set_ready(true);
        accept(&mut source, &run.handling, &shutdown, &tracker, None).await;
        run.drain_all(&tracker).await
    }
}
