//! The transport seam: a delivered message ([`Incoming`]) and how it is answered and settled
//! ([`Settle`]). The worker is written against these, not against lapin, so the same code
//! serves the real broker ([`crate::app::broker`]) and the demo's in-process queue
//! ([`crate::app::memqueue`]).

use crate::render::executor::BoxFuture;

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
    /// The requester's W3C trace context (`traceparent` header), when it sent a valid one.
    pub traceparent: Option<crate::app::trace::TraceParent>,
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
    /// Publishes `body` to `reply_to` with `correlation_id` (and the job's `traceparent`
    /// header), waiting for the broker's confirm.
    fn reply<'a>(
        &'a self,
        reply_to: &'a str,
        correlation_id: Option<&'a str>,
        traceparent: Option<&'a str>,
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
