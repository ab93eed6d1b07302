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
use tracing::{info, warn};

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
    /// The broker connection ended while serving; unacked jobs go back to the queue.
    #[error("the broker connection was lost; unacked jobs return to the queue")]
    ConnectionLost,
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

/// A worker connected to the broker and consuming.
pub struct Worker {
    conn: lapin::Connection,
    consuming: Consuming,
    source: std::pin::Pin<Box<dyn Stream<Item = Incoming> + Send>>,
    shared: Arc<Shared>,
}

impl Worker {
    /// Prepares the spill directory, connects, declares the topology and starts consuming,
    /// rendering with the configured executor.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        let executor = crate::executor::from_config(&config).map_err(ServeError::Executor)?;
        Self::start_with(config, executor).await
    }

    /// The same, with another executor.
    pub async fn start_with(
        config: Config,
        executor: Arc<dyn Executor>,
    ) -> Result<Self, ServeError> {
        let (spill, leftovers) = SpillDir::prepare(&config.spill_dir)?;
        if leftovers > 0 {
            warn!(leftovers, "wiped spill files left by an earlier run");
        }
        let conn = broker::connect(&config, "midnit-worker").await?;
        let (consuming, source) = Consuming::start(&conn, &config).await?;
        info!(
            queue = %config.queue,
            concurrency = config.concurrency,
            broker = %config.amqp_url.redacted(),
            "consuming"
        );
        let signer = Some(Arc::new(receipt_signer(&config)?));
        let shared = Arc::new(Shared {
            config,
            spill,
            executor,
            stats: Stats::default(),
            signer,
        });
        Ok(Self {
            conn,
            consuming,
            source: Box::pin(source),
            shared,
        })
    }

    /// The worker's shared state (counters, configuration).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` fires, then stops consuming, finishes in-flight jobs (bounded
    /// by the drain timeout) and closes the connection.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Drained, ServeError> {
        let (stopped, tracker) = accept(self.source, &self.shared, &shutdown).await;
        if stopped == Stopped::Shutdown {
            info!("shutdown requested: no new jobs");
            if let Err(e) = self.consuming.cancel().await {
                warn!(error = %e, "could not cancel the consumer");
            }
        }
        let timeout = Duration::from_secs(self.shared.config.drain_timeout_secs);
        let drained = drain(&tracker, timeout).await;
        self.consuming.close().await;
        let _ = self.conn.close(200, "worker stopping".into()).await;
        match (stopped, drained.abandoned) {
            (Stopped::SourceEnded, _) => Err(ServeError::ConnectionLost),
            (Stopped::Shutdown, 0) => {
                info!("all in-flight jobs answered; bye");
                Ok(drained)
            }
            (Stopped::Shutdown, n) => Err(ServeError::DrainTimeout(n)),
        }
    }
}
