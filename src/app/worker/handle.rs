//! One delivery from arrival to settlement: processed (intake → render → seal), its reply
//! published (tried again, or replaced by a short error, if the broker will not take it), then
//! settled as [`decide`] says, with its timings and outcome counted and logged.

use super::delivery::{Incoming, Props, ReplyOutcome, Settle};
use super::stats::{Stage, Stats};
use crate::protocol::{ErrorCode, JobError};
use crate::reply::process::{Delivery, Processor};
use crate::reply::settle::{decide, Attempt, DeadLetterRecord, Published, Settlement};
use crate::wipe::{now_unix_ms, off_runtime, Ledger, SecretBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, info_span, warn, Instrument};

/// What handling a delivery needs: the processor, the counters, and the attempt policy.
pub struct Handling {
    /// Intake → render → seal.
    pub processor: Processor,
    /// Counters.
    pub stats: Stats,
    /// How many deliveries a crashing job gets.
    pub attempts: AttemptPolicy,
}

fn usable_reply_to(props: &Props) -> Option<&str> {
    let r = props.reply_to.as_deref()?;
    let ok = !r.is_empty() && r.len() <= 255 && !r.chars().any(char::is_control);
    ok.then_some(r)
}

/// How many times a reply is tried before the short error reply is sent instead.
const PUBLISH_ATTEMPTS: u32 = 3;

/// Runs one delivery to its end: reply (if anyone can be answered), then settle as [`decide`]
/// says.
pub async fn handle(incoming: Incoming, shared: Arc<Handling>) {
    let Incoming {
        body,
        props,
        settle,
    } = incoming;
    let span = info_span!(
        "job",
        id = props.correlation_id.as_deref().unwrap_or("-"),
        redelivered = props.redelivered,
        trace_id = tracing::field::Empty,
    );
    if let Some(parent) = &props.traceparent {
        crate::app::trace::continue_in(&span, parent);
    }
    let reply_context = crate::app::trace::for_reply(&span, props.traceparent.as_ref());
    span.record("trace_id", reply_context.trace_id_hex());
    let traceparent = reply_context.format();
    let props = &props;
    let traceparent = traceparent.as_str();
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
        let attempt = shared.attempts.attempt(props);
        let Some(reply_to) = usable_reply_to(props).map(str::to_owned) else {
            off_runtime(body).await;
            warn!("message has no usable reply_to: acked, with a dead-letter record");
            let settlement = decide(false, false, attempt.is_last(), Published::Nothing);
            settle_as(
                settlement, settle, &shared, props, None, body_bytes, attempt,
            )
            .await;
            return;
        };
        let delivery = Delivery {
            body,
            ledger,
            started_ms,
            content_type: props.content_type.clone(),
            correlation_id: props.correlation_id.clone(),
            deadline_ms: props.deadline_ms,
            redelivered: props.redelivered,
        };
        let processor = &shared.processor;
        let processed = processor.process(delivery).await;
        let crashed = processed.crashed();
        if crashed && !attempt.is_last() {
            off_runtime(processed).await;
            shared.stats.crash_requeued();
            warn!(
                attempt = attempt.number,
                of = attempt.limit,
                "the renderer crashed; requeueing the job for another attempt"
            );
            let settlement = decide(true, true, false, Published::Nothing);
            settle_as(
                settlement, settle, &shared, props, None, body_bytes, attempt,
            )
            .await;
            return;
        }
        let context = processed.context;
        let sealed = processor.seal(processed.result, &context).await;
        let code = sealed.code;
        let reply_at = Instant::now();
        let mut published = publish(
            &*settle,
            &reply_to,
            props,
            traceparent,
            &sealed.body,
            &shared,
        )
        .await;
        if published == Published::Failed {
            let short = JobError::new(
                ErrorCode::Internal,
                "the reply could not be delivered to the broker; send the request again",
            );
            let fallback = processor.seal(Err(short), &context).await;
            if publish(
                &*settle,
                &reply_to,
                props,
                traceparent,
                &fallback.body,
                &shared,
            )
            .await
                == Published::Reply
            {
                published = Published::Fallback;
            }
            off_runtime(fallback.body).await;
        }
        let settlement = decide(true, crashed, attempt.is_last(), published);
        let outcome = match (published, code) {
            (Published::Fallback, _) => Outcome::Error(ErrorCode::Internal),
            (_, Some(code)) => Outcome::Error(code),
            (_, None) => Outcome::Ok,
        };
        settle_as(
            settlement, settle, &shared, props, code, body_bytes, attempt,
        )
        .await;
        if matches!(settlement, Settlement::Requeue) {
            return;
        }
        processor.answered(&context);
        let reply_bytes = sealed.body.len();
        let wiping = Instant::now();
        let timings = sealed.timings;
        let (wiped_bytes, peak, wipe_time) = (
            sealed.wiped_bytes,
            sealed.renderer_peak_rss,
            sealed.wipe_time,
        );
        // A reply body can be megabytes: its wipe goes to the blocking pool.
        off_runtime(sealed.body).await;
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
        stats.job_took(&outcome, started.elapsed());
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

/// Publishes a reply, trying up to [`PUBLISH_ATTEMPTS`] times (the transport reopens a channel
/// the broker closed in between).
async fn publish(
    settle: &dyn Settle,
    reply_to: &str,
    props: &Props,
    traceparent: &str,
    body: &SecretBuf,
    shared: &Handling,
) -> Published {
    for attempt in 1..=PUBLISH_ATTEMPTS {
        match settle
            .reply(
                reply_to,
                props.correlation_id.as_deref(),
                Some(traceparent),
                body.as_slice(),
            )
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
    shared: &Handling,
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
            let record = DeadLetterRecord::new(
                reason,
                props.correlation_id.as_deref(),
                code,
                body_bytes,
                attempt,
            )
            .encode();
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

/// How many deliveries a job whose renderer crashes gets, and how they are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// A quorum queue counts earlier deliveries (`x-delivery-count`).
    pub counted: bool,
    /// Deliveries allowed in all.
    pub delivery_limit: u32,
}

impl AttemptPolicy {
    /// Which attempt this delivery is.
    fn attempt(&self, props: &Props) -> Attempt {
        let limit = u64::from(self.delivery_limit);
        match (self.counted, props.delivery_count) {
            (true, Some(count)) => Attempt {
                number: count + 1,
                limit,
            },
            // A classic queue only says whether the message was delivered before.
            _ => Attempt {
                number: if props.redelivered { 2 } else { 1 },
                limit: limit.min(2),
            },
        }
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
