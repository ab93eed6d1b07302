//! The **worker**: the loop that takes deliveries, runs each job through intake → executor →
//! reply → ack → wipe, and shuts down cleanly.
//!
//! The loop is written against [`Incoming`] and [`Settle`], not against lapin, so the same code
//! serves the real broker ([`crate::broker`]) and the in-process queue of the demo
//! ([`crate::memqueue`]). What happens to a delivery — reply then ack, requeue, or reject to the
//! dead-letter queue — is decided in one place: [`handle`].

mod reply;
mod stats;

pub use reply::{seal, Sealing};
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
use tracing::{info, info_span, warn, Instrument};

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
    /// Rejects the delivery: `requeue` puts it back for another try, otherwise the broker
    /// drops it (the jobs queue has no dead-letter exchange: a message there holds a photo).
    fn reject(self: Box<Self>, requeue: bool) -> BoxFuture<'static, Result<(), TransportError>>;
    /// Publishes a dead-letter record (what happened to a job, never its body) to the
    /// dead-letter exchange, waiting for the broker's confirm.
    fn dead_letter<'a>(&'a self, record: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>>;
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
                    // Idle time starts over with every job, not only while one is in flight.
                    idle_since = Instant::now();
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

/// What becomes of a delivery once it has been dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Done: acknowledge it.
    Ack,
    /// Put it back for another try (another delivery, maybe on another worker).
    Requeue,
    /// Acknowledge it and leave a record of why in the dead-letter queue.
    DeadLetter(Reason),
}

/// Why a delivery was dead-lettered (the record's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It had no usable `reply_to`: nobody to answer.
    NoReplyTo,
    /// Its renderer crashed on every attempt; it was answered `internal`.
    Crashed,
    /// Its reply could not be published, however often tried.
    Unpublishable,
}

impl Reason {
    /// The record's wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoReplyTo => "no_reply_to",
            Self::Crashed => "renderer_crashed",
            Self::Unpublishable => "reply_unpublishable",
        }
    }
}

/// How publishing the answer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Nothing was published: there was nobody to answer, or an answer must wait for a
    /// later attempt.
    Nothing,
    /// The reply was confirmed (or returned because the requester is gone).
    Reply,
    /// The reply could not be published, but a short error reply was.
    Fallback,
    /// Neither could be published.
    Failed,
}

/// The one place that decides what becomes of a delivery: from whether it had someone to
/// answer, whether its renderer crashed, whether this is its last allowed attempt, and what
/// was published.
pub fn decide(
    has_reply_to: bool,
    crashed: bool,
    last_attempt: bool,
    published: Published,
) -> Settlement {
    use Settlement::*;
    match (has_reply_to, crashed, last_attempt, published) {
        (false, ..) => DeadLetter(Reason::NoReplyTo),
        // Maybe the job, maybe the machine: a fresh renderer on another delivery.
        (true, true, false, Published::Nothing) => Requeue,
        (true, _, false, Published::Failed) => Requeue,
        (true, _, true, Published::Failed) => DeadLetter(Reason::Unpublishable),
        (true, _, _, Published::Fallback) => DeadLetter(Reason::Unpublishable),
        (true, true, _, _) => DeadLetter(Reason::Crashed),
        (true, false, _, _) => Ack,
    }
}

/// How many times a reply is tried before the short error reply is sent instead.
const PUBLISH_ATTEMPTS: u32 = 3;

/// Runs one delivery to its end: reply (if anyone can be answered), then settle as [`decide`]
/// says.
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
        let body_bytes = body.len();
        info!(body_bytes, "job received");
        let ledger = Ledger::new();
        let body = SecretBuf::new(body, "request.body", &ledger);
        let attempt = Attempt::of(&props, &shared.config);
        let Some(reply_to) = usable_reply_to(&props).map(str::to_owned) else {
            body.wipe();
            warn!("message has no usable reply_to: acked, with a dead-letter record");
            let settlement = decide(false, false, attempt.is_last(), Published::Nothing);
            settle_as(
                settlement, settle, &shared, &props, None, body_bytes, attempt,
            )
            .await;
            return;
        };
        let (result, request_sha256) = run_job(body, &props, &shared, &ledger).await;
        let crashed = matches!(&result, Err(e) if e.crashed);
        if crashed && !attempt.is_last() {
            drop(result);
            shared.stats.crash_requeued();
            warn!(
                attempt = attempt.number,
                of = attempt.limit,
                "the renderer crashed; requeueing the job for another attempt"
            );
            let settlement = decide(true, true, false, Published::Nothing);
            settle_as(
                settlement, settle, &shared, &props, None, body_bytes, attempt,
            )
            .await;
            return;
        }
        let sealing = SealJob {
            shared: shared.clone(),
            ledger: ledger.clone(),
            started_ms,
            correlation_id: props.correlation_id.clone(),
            request_sha256,
        };
        let sealed = sealing.seal(result).await;
        let code = sealed.code;
        let reply_at = Instant::now();
        let mut published = publish(&*settle, &reply_to, &props, &sealed.body, &shared).await;
        if published == Published::Failed {
            let short = JobError::new(
                ErrorCode::Internal,
                "the reply could not be delivered to the broker; send the request again",
            );
            let fallback = sealing.seal(Err(short)).await;
            if publish(&*settle, &reply_to, &props, &fallback.body, &shared).await
                == Published::Reply
            {
                published = Published::Fallback;
            }
            fallback.body.wipe();
        }
        let settlement = decide(true, crashed, attempt.is_last(), published);
        let outcome = match (published, code) {
            (Published::Fallback, _) => Outcome::Error(ErrorCode::Internal),
            (_, Some(code)) => Outcome::Error(code),
            (_, None) => Outcome::Ok,
        };
        settle_as(
            settlement, settle, &shared, &props, code, body_bytes, attempt,
        )
        .await;
        if matches!(settlement, Settlement::Requeue) {
            return;
        }
        let reply_bytes = sealed.body.len();
        let wiping = Instant::now();
        let timings = sealed.timings;
        let (wiped_bytes, peak, wipe_time) = (
            sealed.wiped_bytes,
            sealed.renderer_peak_rss,
            sealed.wipe_time,
        );
        // A reply body can be megabytes: its wipe goes to the blocking pool.
        let _ = tokio::task::spawn_blocking(move || sealed.body.wipe()).await;
        let stats = &shared.stats;
        stats.observe(Stage::Wipe, wipe_time + wiping.elapsed());
        stats.observe(Stage::Reply, reply_at.elapsed());
        if let Some(bytes) = peak {
            stats.renderer_peak(bytes);
        }
        if let Some(t) = &timings {
            stats.observe(Stage::Decode, t.decode);
            if !t.compose.is_zero() {
                stats.observe(Stage::Compose, t.compose);
            }
            stats.observe(Stage::Render, t.resize);
            stats.observe(Stage::Encode, t.encode);
        }
        stats.finished(&outcome, wiped_bytes + reply_bytes as u64);
        let t = timings.unwrap_or_default();
        info!(
            outcome = outcome.label(),
            total_ms = ms(started.elapsed()),
            decode_ms = ms(t.decode),
            compose_ms = ms(t.compose),
            resize_ms = ms(t.resize),
            encode_ms = ms(t.encode),
            reply_ms = ms(reply_at.elapsed()),
            wiped_bytes,
            renderer_peak_rss_kib = peak.map_or(0, |b| b / 1024),
            reply_bytes_wiped = reply_bytes,
            "job done"
        );
    }
    .instrument(span)
    .await
}

/// What sealing a reply needs, owned, so it can run on the blocking pool.
struct SealJob {
    shared: Arc<Shared>,
    ledger: Ledger,
    started_ms: u64,
    correlation_id: Option<String>,
    request_sha256: [u8; 32],
}

impl SealJob {
    /// Seals `result` off the async runtime: it copies, wipes, hashes and signs megabytes.
    async fn seal(&self, result: Result<Rendered, JobError>) -> reply::Sealed {
        let (shared, ledger) = (self.shared.clone(), self.ledger.clone());
        let (started_ms, id, digest) = (
            self.started_ms,
            self.correlation_id.clone(),
            self.request_sha256,
        );
        let sealed = tokio::task::spawn_blocking(move || {
            let sealing = Sealing {
                ledger: &ledger,
                started_ms,
                signer: shared.signer.as_deref(),
                correlation_id: id.as_deref(),
                request_sha256: digest,
                max_reply_bytes: shared.config.limits.max_reply_bytes,
            };
            seal(result, &sealing)
        })
        .await;
        match sealed {
            Ok(sealed) => sealed,
            // Sealing only fails by a bug: answer without the outputs rather than not at all.
            Err(_) => {
                let sealing = Sealing {
                    ledger: &self.ledger,
                    started_ms,
                    signer: self.shared.signer.as_deref(),
                    correlation_id: self.correlation_id.as_deref(),
                    request_sha256: digest,
                    max_reply_bytes: self.shared.config.limits.max_reply_bytes,
                };
                seal(
                    Err(JobError::new(
                        ErrorCode::Internal,
                        "sealing the reply failed",
                    )),
                    &sealing,
                )
            }
        }
    }
}

/// Publishes a reply, trying up to [`PUBLISH_ATTEMPTS`] times (the transport reopens a channel
/// the broker closed in between).
async fn publish(
    settle: &dyn Settle,
    reply_to: &str,
    props: &Props,
    body: &SecretBuf,
    shared: &Shared,
) -> Published {
    for attempt in 1..=PUBLISH_ATTEMPTS {
        match settle
            .reply(reply_to, props.correlation_id.as_deref(), body.as_slice())
            .await
        {
            Ok(ReplyOutcome::Delivered) => return Published::Reply,
            Ok(ReplyOutcome::Returned) => {
                shared.stats.returned();
                warn!("reply returned by the broker: the requester's queue is gone");
                return Published::Reply;
            }
            Err(e) => {
                shared.stats.reply_failed();
                warn!(error = %e, attempt, of = PUBLISH_ATTEMPTS, reply_bytes = body.len(), "reply not confirmed");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
        }
    }
    Published::Failed
}

/// Carries out a settlement on the transport.
async fn settle_as(
    settlement: Settlement,
    settle: Box<dyn Settle>,
    shared: &Shared,
    props: &Props,
    code: Option<ErrorCode>,
    body_bytes: usize,
    attempt: Attempt,
) {
    match settlement {
        Settlement::Ack => {
            if let Err(e) = settle.ack().await {
                warn!(error = %e, "ack failed after the reply was sent; a duplicate reply may follow");
            }
        }
        Settlement::Requeue => {
            if let Err(e) = settle.reject(true).await {
                warn!(error = %e, "requeue failed; the broker will redeliver");
            }
        }
        Settlement::DeadLetter(reason) => {
            shared.stats.rejected();
            let record = DeadLetterRecord {
                reason: reason.as_str(),
                correlation_id: props.correlation_id.as_deref(),
                code: code.map(ErrorCode::as_str),
                body_bytes,
                attempt: attempt.number,
                at_ms: now_unix_ms(),
            };
            let record = serde_json::to_vec(&record).expect("a record is plain data");
            if let Err(e) = settle.dead_letter(&record).await {
                warn!(error = %e, "the dead-letter record could not be published");
            }
            warn!(
                reason = reason.as_str(),
                "acked with a dead-letter record (the job's body is not kept)"
            );
            if let Err(e) = settle.ack().await {
                warn!(error = %e, "ack failed; the broker will redeliver");
            }
        }
    }
}

/// What the dead-letter queue keeps of a job: what happened, never its body.
#[derive(Debug, serde::Serialize)]
struct DeadLetterRecord<'a> {
    reason: &'static str,
    correlation_id: Option<&'a str>,
    code: Option<&'static str>,
    body_bytes: usize,
    attempt: u64,
    at_ms: u64,
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
) -> (Result<Rendered, JobError>, [u8; 32]) {
    let meta = Meta {
        content_type: props.content_type.clone(),
    };
    let task_shared = shared.clone();
    let task_ledger = ledger.clone();
    let checks = precheck(props);
    let intake_task = tokio::task::spawn_blocking(move || {
        let digest = crate::wipe::sha256(body.as_slice());
        if let Err(e) = checks {
            body.wipe();
            return (Err(e), digest);
        }
        let spill = Spill {
            dir: &task_shared.spill,
            threshold: task_shared.config.spill_threshold_bytes,
        };
        let job = intake(
            body,
            &meta,
            &task_shared.config.limits,
            Some(spill),
            &task_ledger,
        );
        (job, digest)
    });
    let (job, digest) = match intake_task.await {
        Ok(done) => done,
        Err(_) => {
            return (
                Err(JobError::new(
                    ErrorCode::Internal,
                    "intake crashed on this job",
                )),
                [0; 32],
            )
        }
    };
    match job {
        Ok(job) => (shared.executor.execute(job).await, digest),
        Err(e) => (Err(e), digest),
    }
}

/// What is checked of a delivery before its body is parsed: a correlation id, the deadline.
fn precheck(props: &Props) -> Result<(), JobError> {
    if props.correlation_id.as_deref().is_none_or(str::is_empty) {
        return Err(JobError::new(
            ErrorCode::RequestMalformed,
            "correlation_id: missing (the message property is required)",
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settlement_of_every_case_is_decided_in_one_table() {
        use Published::*;
        use Reason::*;
        use Settlement::*;
        let table = [
            // (reply_to, crashed, last, published) -> settlement
            ((false, false, false, Nothing), DeadLetter(NoReplyTo)),
            ((false, true, true, Nothing), DeadLetter(NoReplyTo)),
            ((true, true, false, Nothing), Requeue),
            ((true, false, false, Reply), Ack),
            ((true, false, true, Reply), Ack),
            ((true, true, true, Reply), DeadLetter(Crashed)),
            ((true, false, false, Failed), Requeue),
            ((true, true, false, Failed), Requeue),
            ((true, false, true, Failed), DeadLetter(Unpublishable)),
            ((true, false, false, Fallback), DeadLetter(Unpublishable)),
            ((true, true, true, Fallback), DeadLetter(Unpublishable)),
        ];
        for ((r, c, l, p), want) in table {
            assert_eq!(decide(r, c, l, p), want, "{r} {c} {l} {p:?}");
        }
    }
}
