//! An in-process queue with the broker's delivery semantics that matter to the worker
//! (one delivery per message, a reply per correlation id, ack/reject). The demo uses it when no
//! RabbitMQ is reachable, so the very same [`crate::app::worker`] code runs with nothing installed.

use crate::app::worker::{Incoming, Props, ReplyOutcome, Settle, TransportError};
use crate::protocol::{CONTENT_TYPE, DIRECT_REPLY_TO};
use crate::render::executor::BoxFuture;
use futures_util::Stream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// The sending side of an in-process queue.
#[derive(Clone)]
pub struct MemQueue {
    tx: mpsc::Sender<Incoming>,
    waiters: Waiters,
}

/// Creates a queue holding up to `capacity` undelivered messages, and its delivery stream.
pub fn mem_queue(capacity: usize) -> (MemQueue, impl Stream<Item = Incoming> + Send + Unpin) {
    let (tx, mut rx) = mpsc::channel(capacity.max(1));
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let queue = MemQueue {
        tx,
        waiters: Waiters::default(),
    };
    (queue, stream)
}

impl MemQueue {
    /// Enqueues a request body; the receiver gets its reply.
    pub async fn submit(&self, body: Vec<u8>, correlation_id: &str) -> oneshot::Receiver<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap()
            .insert(correlation_id.into(), tx);
        let incoming = Incoming {
            body,
            props: Props {
                correlation_id: Some(correlation_id.into()),
                reply_to: Some(DIRECT_REPLY_TO.into()),
                content_type: Some(CONTENT_TYPE.into()),
                ..Props::default()
            },
            settle: Box::new(MemSettle {
                waiters: self.waiters.clone(),
            }),
        };
        // The receiving loop outlives every submit in the demo; a closed queue drops the
        // request, and its receiver then reports the closed channel.
        let _ = self.tx.send(incoming).await;
        rx
    }
}

struct MemSettle {
    waiters: Waiters,
}

impl Settle for MemSettle {
    fn reply<'a>(
        &'a self,
        _reply_to: &'a str,
        correlation_id: Option<&'a str>,
        _traceparent: Option<&'a str>,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<ReplyOutcome, TransportError>> {
        let waiter = correlation_id.and_then(|id| self.waiters.lock().unwrap().remove(id));
        let outcome = match waiter.map(|tx| tx.send(body.to_vec())) {
            Some(Ok(())) => ReplyOutcome::Delivered,
            _ => ReplyOutcome::Returned,
        };
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn reject(self: Box<Self>, _requeue: bool) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn dead_letter<'a>(&'a self, _record: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>> {
        // The demo's in-process queue keeps no dead letters.
        Box::pin(std::future::ready(Ok(())))
    }
}
