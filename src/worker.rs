//! The **worker**: the loop that takes deliveries, runs each job through intake → executor →
//! reply → ack → wipe, and shuts down cleanly.
//!
//! The loop is written against [`Incoming`] and [`Settle`], not against lapin, so the same code
//! serves the real broker ([`crate::broker`]) and the in-process queue of the demo
//! ([`crate::memqueue`]). What happens to a delivery — reply then ack, requeue, or reject to the
//! dead-letter queue — is decided in one place: [`handle`].

mod reply;
mod stats;

pub use reply::{seal, Signing};
pub use stats::{Stage, Stats, StatsSnapshot};

use crate::config::Config;
use crate::executor::{BoxFuture, Executor};
use crate::intake::{intake, Meta, Spill};
use crate::pipeline::Rendered;
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::{now_unix_ms, Ledger, ReceiptSigner, SecretBuf, SpillDir};
use futures_util::{Stream, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, info_span, warn, Instrument};

/// The AMQP properties the worker reads.
#[derive(Debug, Clone, Default)]
pub struct Props {
    /// Echoed on the reply; required.
    pub correlation_id: Option<String>,
    /// Where the reply goes; a message without one is dead-lettered.
    pub reply_to: Option<String>,
    /// Must be `application/cbor` when present.
    pub content_type: Option<String>,
    /// Whether the broker delivered this message before.
    pub redelivered: bool,
    /// How many times it was delivered before (a quorum queue's `x-delivery-count`).
    pub delivery_count: Option<u64>,
    /// When the requester published it (ms since the Unix epoch), if it said.
    pub sent_ms: Option<u64>,
    /// When the job stops being useful (ms since the Unix epoch): the deadline header, or the
    /// message's `timestamp` + `expiration`, whichever is earlier.
    pub deadline_ms: Option<u64>,
}

/// What became of a published reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The broker confirmed it and routed it.
    Delivered,
    /// The broker returned it: the requester's queue does not exist (any more).
    Returned,
}

/// A transport failure (connection or channel gone, confirm refused or late).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// How a delivery is answered and settled on its transport.
pub trait Settle: Send + Sync + 'static {
    /// Publishes `body` to `reply_to` with `correlation_id`, waiting for the broker's confirm.
    fn reply<'a>(
        &'a self,
        reply_to: &'a str,
        correlation_id: Option<&'a str>,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<ReplyOutcome, TransportError>>;
    /// Acknowledges the delivery: the job is done.
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>>;
    /// Rejects the delivery: `requeue` puts it back for another try, otherwise it is
    /// dead-lettered.
    fn reject(self: Box<Self>, requeue: bool) -> BoxFuture<'static, Result<(), TransportError>>;
}

/// One delivered message.
pub struct Incoming {
    /// The body, moved out of the transport's delivery.
    pub body: Vec<u8>,
    /// Its properties.
    pub props: Props,
    /// How to answer and settle it.
    pub settle: Box<dyn Settle>,
}

/// Everything a job needs from the worker.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The private spill directory.
    pub spill: SpillDir,
    /// Where jobs are rendered.
    pub executor: Arc<dyn Executor>,
    /// Counters.
    pub stats: Stats,
    /// Signs every receipt.
    pub signer: Option<Arc<ReceiptSigner>>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Jobs still running when the drain timeout expired (0 on a clean drain).
    pub abandoned: usize,
}

/// Why the accept loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Shutdown was requested.
    Shutdown,
    /// The source ended (the consumer was cancelled or the connection was lost).
    SourceEnded,
    /// The source carried jobs and has had none in flight for the idle-wipe time: time to
    /// replace the connection so its buffers are freed.
    Idle,
}

/// Takes deliveries from `source` and starts a task for each on `tracker`, until the source
/// ends, `shutdown` fires, or — with `idle_wipe` set — the source has carried at least one job
/// and no job has been in flight for that long.
pub async fn accept<S>(
    source: &mut S,
    shared: &Arc<Shared>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    idle_wipe: Option<Duration>,
) -> Stopped
where
    S: Stream<Item = Incoming> + Unpin,
{
    let mut carried_jobs = false;
    let mut idle_since = Instant::now();
    let tick =
        idle_wipe.map(|d| (d / 4).clamp(Duration::from_millis(10), Duration::from_millis(250)));
    loop {
        let idle_check = async {
            match tick {
                Some(t) if carried_jobs => tokio::time::sleep(t).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Stopped::Shutdown,
            next = source.next() => match next {
                Some(incoming) => {
                    carried_jobs = true;
                    tracker.spawn(handle(incoming, shared.clone()));
                }
                None => return Stopped::SourceEnded,
            },
            () = idle_check => {
                if !tracker.is_empty() {
                    idle_since = Instant::now();
                } else if idle_wipe.is_some_and(|d| idle_since.elapsed() >= d) {
                    return Stopped::Idle;
                }
            }
        }
    }
}

/// Waits up to `timeout` for the tracked jobs to finish.
pub async fn drain(tracker: &TaskTracker, timeout: Duration) -> Drained {
    let in_flight = tracker.len();
    if in_flight > 0 {
        info!(in_flight, "draining in-flight jobs");
    }
    match tokio::time::timeout(timeout, tracker.wait()).await {
        Ok(()) => Drained { abandoned: 0 },
        Err(_) => Drained {
            abandoned: tracker.len(),
        },
    }
}

fn usable_reply_to(props: &Props) -> Option<&str> {
    let r = props.reply_to.as_deref()?;
    let ok = !r.is_empty() && r.len() <= 255 && !r.chars().any(char::is_control);
    ok.then_some(r)
}

/// Runs one delivery to its end. The single place where a delivery is acked, requeued or
/// rejected.
pub async fn handle(incoming: Incoming, shared: Arc<Shared>) {
    let Incoming {
        body,
        props,
        settle,
    } = incoming;
    let span = info_span!(
        "job",
        id = props.correlation_id.as_deref().unwrap_or("-"),
        redelivered = props.redelivered
    );
    async move {
        let started = Instant::now();
        let started_ms = now_unix_ms();
        let _in_flight = InFlight::new(&shared.stats);
        if let Some(sent) = props.sent_ms {
            let waited = Duration::from_millis(started_ms.saturating_sub(sent));
            shared.stats.observe(Stage::QueueWait, waited);
        }
        info!(body_bytes = body.len(), "job received");
        let ledger = Ledger::new();
        let body = SecretBuf::new(body, "request.body", &ledger);
        let Some(reply_to) = usable_reply_to(&props) else {
            body.wipe();
            shared.stats.rejected();
            warn!("message has no usable reply_to: rejected without requeue (dead-lettered)");
            if let Err(e) = settle.reject(false).await {
                warn!(error = %e, "reject failed; the broker will redeliver");
            }
            return;
        };
        let result = run_job(body, &props, &shared, &ledger).await;
        let crashed = matches!(&result, Err(e) if e.crashed);
        let attempt = Attempt::of(&props, &shared.config);
        if crashed && !attempt.is_last() {
            // Maybe the job, maybe the machine: another delivery (perhaps on another worker)
            // gets a fresh renderer. No reply yet: the requester waits for the last attempt.
            drop(result);
            shared.stats.crash_requeued();
            warn!(
                attempt = attempt.number,
                of = attempt.limit,
                "the renderer crashed; requeueing the job for another attempt"
            );
            if let Err(e) = settle.reject(true).await {
                warn!(error = %e, "requeue failed; the broker will redeliver");
            }
            return;
        }
        let outcome = Outcome::of(&result);
        let signing = shared
            .signer
            .as_deref()
            .map(|s| (s, props.correlation_id.as_deref()));
        let sealed = seal(result, &ledger, started_ms, signing);
        let reply_at = Instant::now();
        let published = settle
            .reply(
                reply_to,
                props.correlation_id.as_deref(),
                sealed.body.as_slice(),
            )
            .await;
        match published {
            Ok(ReplyOutcome::Delivered) => {}
            Ok(ReplyOutcome::Returned) => {
                shared.stats.returned();
                warn!("reply returned by the broker: the requester's queue is gone; acking");
            }
            Err(e) => {
                error!(error = %e, "reply not confirmed; requeueing the job for another try");
                shared.stats.reply_failed();
                if let Err(e) = settle.reject(true).await {
                    warn!(error = %e, "requeue failed; the broker will redeliver");
                }
                return;
            }
        }
        if crashed {
            // A poison message: answered, then dead-lettered for the operator (the dead-letter
            // queue drops it after its TTL), never redelivered again.
            shared.stats.rejected();
            warn!(
                attempt = attempt.number,
                "the renderer crashed on every attempt: answered `internal` and dead-lettered"
            );
            if let Err(e) = settle.reject(false).await {
                warn!(error = %e, "dead-lettering failed; the broker will redeliver");
            }
        } else if let Err(e) = settle.ack().await {
            warn!(error = %e, "ack failed after the reply was sent; a duplicate reply may follow");
        }
        let reply_bytes = sealed.body.len();
        let wiping = Instant::now();
        sealed.body.wipe();
        let stats = &shared.stats;
        stats.observe(Stage::Wipe, sealed.wipe_time + wiping.elapsed());
        stats.observe(Stage::Reply, reply_at.elapsed());
        if let Some(bytes) = sealed.renderer_peak_rss {
            stats.renderer_peak(bytes);
        }
        if let Some(t) = &sealed.timings {
            stats.observe(Stage::Decode, t.decode);
            if !t.compose.is_zero() {
                stats.observe(Stage::Compose, t.compose);
            }
            stats.observe(Stage::Render, t.resize);
            stats.observe(Stage::Encode, t.encode);
        }
        shared
            .stats
            .finished(&outcome, sealed.wiped_bytes + reply_bytes as u64);
        let t = sealed.timings.unwrap_or_default();
        info!(
            outcome = outcome.label(),
            total_ms = ms(started.elapsed()),
            decode_ms = ms(t.decode),
            compose_ms = ms(t.compose),
            resize_ms = ms(t.resize),
            encode_ms = ms(t.encode),
            reply_ms = ms(reply_at.elapsed()),
            wiped_bytes = sealed.wiped_bytes,
            renderer_peak_rss_kib = sealed.renderer_peak_rss.map_or(0, |b| b / 1024),
            reply_bytes_wiped = reply_bytes,
            "job done"
        );
    }
    .instrument(span)
    .await
}

/// Counts a job in flight for as long as it lives.
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.started();
        Self(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.ended();
    }
}

/// Which delivery of a job this is, and how many a job that crashes its renderer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attempt {
    number: u64,
    limit: u64,
}

impl Attempt {
    fn of(props: &Props, config: &Config) -> Self {
        let limit = u64::from(config.delivery_limit);
        match (config.topology, props.delivery_count) {
            // A quorum queue counts earlier deliveries.
            (crate::config::Topology::Durable, Some(count)) => Self {
                number: count + 1,
                limit,
            },
            // A classic queue only says whether the message was delivered before.
            _ => Self {
                number: if props.redelivered { 2 } else { 1 },
                limit: limit.min(2),
            },
        }
    }

    fn is_last(&self) -> bool {
        self.number >= self.limit
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// A job's outcome for logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Rendered.
    Ok,
    /// Failed with this code.
    Error(ErrorCode),
}

impl Outcome {
    fn of(result: &Result<Rendered, JobError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(e) => Self::Error(e.code),
        }
    }

    /// `ok` or the error code.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error(code) => code.as_str(),
        }
    }
}

async fn run_job(
    body: SecretBuf,
    props: &Props,
    shared: &Arc<Shared>,
    ledger: &Ledger,
) -> Result<Rendered, JobError> {
    if props.correlation_id.as_deref().is_none_or(str::is_empty) {
        return Err(JobError::new(
            ErrorCode::RequestMalformed,
            "the message has no correlation_id",
        ));
    }
    if let Some(deadline) = props.deadline_ms {
        let now = now_unix_ms();
        if now > deadline {
            return Err(JobError::new(
                ErrorCode::JobExpired,
                format!(
                    "the job's deadline passed {} ms before it was picked up",
                    now - deadline
                ),
            ));
        }
    }
    let meta = Meta {
        content_type: props.content_type.clone(),
    };
    let task_shared = shared.clone();
    let task_ledger = ledger.clone();
    let job = tokio::task::spawn_blocking(move || {
        let spill = Spill {
            dir: &task_shared.spill,
            threshold: task_shared.config.spill_threshold_bytes,
        };
        intake(
            body,
            &meta,
            &task_shared.config.limits,
            Some(spill),
            &task_ledger,
        )
    })
    .await
    .map_err(|_| JobError::new(ErrorCode::Internal, "intake crashed on this job"))??;
    shared.executor.execute(job).await
}
