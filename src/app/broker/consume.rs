//! Consuming: the prefetch, the consumer, and each AMQP delivery turned into an [`Incoming`]
//! job with its properties read (sent time, delivery count, deadline).

use super::publish::{LapinSettle, Publisher};
use super::topology::declare_topology;
use super::{op, BrokerError};
use crate::app::config::BrokerSettings;
use crate::app::worker::{Incoming, Props};
use crate::protocol::{DEADLINE_HEADER, SENT_HEADER};
use futures_util::{Stream, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use std::sync::Arc;

/// A worker's consuming side: the channel jobs arrive on and the channel replies leave by.
pub struct Consuming {
    consume: Channel,
    tag: String,
    publisher: Arc<Publisher>,
}

impl Consuming {
    /// Declares the topology, sets the prefetch (jobs taken at once) and starts consuming.
    pub async fn start(
        conn: &Arc<Connection>,
        config: &BrokerSettings,
        prefetch: usize,
    ) -> Result<(Self, impl Stream<Item = Incoming> + Unpin), BrokerError> {
        let consume = conn
            .create_channel()
            .await
            .map_err(op("opening a channel"))?;
        declare_topology(&consume, config).await?;
        let prefetch = u16::try_from(prefetch).unwrap_or(u16::MAX);
        consume
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(op("setting the prefetch"))?;
        let publisher = Arc::new(Publisher::open(conn, config).await?);
        let consumer = consume
            .basic_consume(
                config.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(op("starting the consumer"))?;
        let tag = consumer.tag().to_string();
        let for_stream = publisher.clone();
        let stream = consumer
            .take_while(|d| {
                if let Err(e) = d {
                    tracing::error!(error = %e, "consumer stopped");
                }
                std::future::ready(d.is_ok())
            })
            .filter_map(move |d| std::future::ready(d.ok().map(|d| incoming(d, &for_stream))));
        let this = Self {
            consume,
            tag,
            publisher,
        };
        Ok((this, Box::pin(stream)))
    }

    /// Stops new deliveries (in-flight ones can still be replied to and acked).
    pub async fn cancel(&self) -> Result<(), BrokerError> {
        self.consume
            .basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default())
            .await
            .map_err(op("cancelling the consumer"))
    }

    /// Closes both channels; unacked deliveries go back to the queue.
    pub async fn close(&self) {
        let _ = self.consume.close(200, "worker stopping".into()).await;
        self.publisher.close().await;
    }
}

fn incoming(mut delivery: Delivery, publisher: &Arc<Publisher>) -> Incoming {
    let p = &delivery.properties;
    let text = |s: Option<&lapin::types::ShortString>| s.map(|s| s.as_str().to_owned());
    let props = Props {
        correlation_id: text(p.correlation_id().as_ref()),
        reply_to: text(p.reply_to().as_ref()),
        content_type: text(p.content_type().as_ref()),
        redelivered: delivery.redelivered,
        delivery_count: delivery_count(p),
        sent_ms: sent_ms(p),
        deadline_ms: deadline_ms(p),
        traceparent: traceparent(p),
    };
    Incoming {
        // Moved out, not copied: the worker's SecretBuf owns the only copy from here on.
        body: std::mem::take(&mut delivery.data),
        props,
        settle: Box::new(LapinSettle {
            acker: delivery.acker,
            publisher: publisher.clone(),
        }),
    }
}

/// When the requester published the message: the `x-midnit-sent-ms` header, else the
/// `timestamp` property (whole seconds).
fn sent_ms(p: &BasicProperties) -> Option<u64> {
    let header = p
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(SENT_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
            AMQPValue::LongUInt(n) => Some(u64::from(*n)),
            _ => None,
        });
    header.or_else(|| p.timestamp().map(|s| s.saturating_mul(1000)))
}

/// The requester's `traceparent` header, if it is a valid W3C trace context.
fn traceparent(p: &BasicProperties) -> Option<crate::app::trace::TraceParent> {
    let value = p
        .headers()
        .as_ref()?
        .inner()
        .get(crate::app::trace::TRACEPARENT)?;
    let text = match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?,
        AMQPValue::ShortString(s) => s.as_str(),
        _ => return None,
    };
    crate::app::trace::TraceParent::parse(text)
}

/// Earlier deliveries of this message, from a quorum queue's `x-delivery-count` header.
fn delivery_count(p: &BasicProperties) -> Option<u64> {
    match p.headers().as_ref()?.inner().get("x-delivery-count")? {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// The earlier of the deadline header and `timestamp` (seconds) + `expiration` (ms).
fn deadline_ms(p: &BasicProperties) -> Option<u64> {
    let header = p
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(DEADLINE_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
            AMQPValue::LongUInt(n) => Some(u64::from(*n)),
            AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
            AMQPValue::Timestamp(n) => Some(n.saturating_mul(1000)),
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
            _ => None,
        });
    let expiry = match (p.timestamp(), p.expiration()) {
        (Some(sent), Some(ttl)) => ttl
            .as_str()
            .parse::<u64>()
            .ok()
            .map(|ttl| sent.saturating_mul(1000).saturating_add(ttl)),
        _ => None,
    };
    match (header, expiry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
