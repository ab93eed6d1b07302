//! The **broker** side of the worker: connecting with lapin, declaring the topology, turning
//! deliveries into [`Incoming`] jobs, and publishing replies with confirms.
//!
//! Topology declared on every connection (all names configurable):
//! - `<queue>` — the jobs queue: a classic queue (`topology = transient`) or a quorum queue
//!   with `x-delivery-limit` (`durable`). It has no dead-letter exchange on purpose: whatever
//!   the broker itself would dead-letter (a job over its delivery limit, an expired one) holds
//!   a photo, so it is dropped instead;
//! - `<queue>.dlx` — a fanout exchange the *worker* publishes dead-letter records to: what
//!   happened to a job (correlation id, code, sizes, time), never its body;
//! - `<queue>.dead` — the dead-letter queue bound to it, with `x-message-ttl`.
//!
//! Deliveries use manual acks with `basic_qos(prefetch = concurrency)`. Replies go through a
//! separate channel in confirm mode with the mandatory flag, so a reply to a vanished queue is
//! returned (and counted) instead of silently dropped. A publisher channel the broker closes
//! (a reply over its `max_message_size`, say) is reopened for the next publish.

use crate::config::{Config, Topology};
use crate::executor::BoxFuture;
use crate::protocol::{CONTENT_TYPE, DEADLINE_HEADER, SENT_HEADER};
use crate::worker::{Incoming, Props, ReplyOutcome, Settle, TransportError};
use futures_util::{Stream, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::Acker;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use std::sync::Arc;
use std::time::Duration;

/// A broker failure at start-up or while consuming.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Could not connect.
    #[error("cannot connect to the broker at {url}: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The cause.
        source: lapin::Error,
    },
    /// The connection settings are unusable (URL, TLS files).
    #[error("broker settings: {0}")]
    Config(String),
    /// A protocol operation failed.
    #[error("{what}: {source}")]
    Op {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: lapin::Error,
    },
}

fn op(what: &'static str) -> impl FnOnce(lapin::Error) -> BrokerError {
    move |source| BrokerError::Op { what, source }
}

/// Opens a connection named `name`, with the configured `frame_max` (unless the URL sets one)
/// and, for `amqps://`, the configured CA bundle and client certificate.
pub async fn connect(config: &Config, name: &str) -> Result<Connection, BrokerError> {
    let url = config.amqp_url.redacted();
    let failed = |source| BrokerError::Connect {
        url: url.clone(),
        source,
    };
    let mut uri: AMQPUri = config
        .amqp_url
        .expose()
        .parse()
        .map_err(|e: String| BrokerError::Config(format!("amqp_url: {e}")))?;
    uri.query.frame_max.get_or_insert(config.frame_max);
    let tls = tls_config(config)?;
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime().map_err(failed)?;
    Connection::connect_uri_with_config(uri, props, tls, runtime)
        .await
        .map_err(failed)
}

/// The TLS settings for `amqps://`: extra CA certificates and an optional client identity.
fn tls_config(config: &Config) -> Result<OwnedTLSConfig, BrokerError> {
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| BrokerError::Config(format!("{key} {}: {e}", path.display())))
    };
    let cert_chain = match &config.tls_ca_file {
        Some(path) => Some(
            String::from_utf8(read("tls_ca_file", path)?)
                .map_err(|_| BrokerError::Config("tls_ca_file is not PEM text".into()))?,
        ),
        None => None,
    };
    let identity = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read("tls_cert_file", cert)?,
            key: read("tls_key_file", key)?,
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// The jobs queue's arguments for the configured topology.
pub fn queue_arguments(config: &Config) -> FieldTable {
    let mut args = FieldTable::default();
    if config.topology == Topology::Durable {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        // The broker's backstop for jobs that kill whole workers: the worker itself answers
        // and dead-letters a job whose renderer crashed `delivery_limit` times.
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(config.delivery_limit)),
        );
    }
    args
}

/// Declares the jobs queue, the dead-letter exchange and the dead-letter queue for the
/// configured topology:
/// - transient: a classic queue (messages are published non-persistent);
/// - durable: a quorum queue with `x-delivery-limit`.
///
/// The dead-letter queue drops messages after `dead_letter_ttl_secs`: they may hold photos.
pub async fn declare_topology(channel: &Channel, config: &Config) -> Result<(), BrokerError> {
    let (dlx, dlq) = (config.dlx(), config.dlq());
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(op("declaring the dead-letter exchange"))?;
    let queue_opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut dead_args = FieldTable::default();
    let ttl_ms = config.dead_letter_ttl_secs.saturating_mul(1000);
    dead_args.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
    );
    channel
        .queue_declare(dlq.as_str().into(), queue_opts, dead_args)
        .await
        .map_err(op("declaring the dead-letter queue"))?;
    channel
        .queue_bind(
            dlq.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(op("binding the dead-letter queue"))?;
    channel
        .queue_declare(
            config.queue.as_str().into(),
            queue_opts,
            queue_arguments(config),
        )
        .await
        .map_err(op("declaring the jobs queue"))?;
    Ok(())
}

/// Deletes what [`declare_topology`] declared (the jobs queue, the dead-letter queue and
/// exchange): for the demo, the load generator and tests, which use queues of their own.
pub async fn delete_topology(config: &Config, name: &str) -> Result<(), BrokerError> {
    let conn = connect(config, name).await?;
    let ch = conn
        .create_channel()
        .await
        .map_err(op("opening a channel"))?;
    for queue in [config.queue.clone(), config.dlq()] {
        ch.queue_delete(queue.as_str().into(), Default::default())
            .await
            .map_err(op("deleting a queue"))?;
    }
    ch.exchange_delete(config.dlx().as_str().into(), Default::default())
        .await
        .map_err(op("deleting the dead-letter exchange"))?;
    let _ = conn.close(200, "topology deleted".into()).await;
    Ok(())
}

/// A worker's consuming side: the channel jobs arrive on and the channel replies leave by.
pub struct Consuming {
    consume: Channel,
    tag: String,
    publisher: Arc<Publisher>,
}

/// Publishes replies (and dead-letter records) with confirms, on a channel of its own that is
/// reopened when the broker closes it.
pub struct Publisher {
    conn: Arc<Connection>,
    channel: tokio::sync::Mutex<Channel>,
    confirm_timeout: Duration,
    /// Replies to named queues are persistent (durable topology): they survive a broker
    /// restart like the jobs did. Direct reply-to replies are never stored either way.
    persistent: bool,
    /// Where dead-letter records go.
    dead_letter_exchange: String,
}

async fn confirming_channel(conn: &Connection) -> Result<Channel, BrokerError> {
    let channel = conn
        .create_channel()
        .await
        .map_err(op("opening a channel"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(op("enabling publisher confirms"))?;
    Ok(channel)
}

impl Consuming {
    /// Declares the topology, sets the prefetch and starts consuming.
    pub async fn start(
        conn: &Arc<Connection>,
        config: &Config,
    ) -> Result<(Self, impl Stream<Item = Incoming> + Unpin), BrokerError> {
        let consume = conn
            .create_channel()
            .await
            .map_err(op("opening a channel"))?;
        declare_topology(&consume, config).await?;
        let prefetch = u16::try_from(config.concurrency).unwrap_or(u16::MAX);
        consume
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(op("setting the prefetch"))?;
        let channel = confirming_channel(conn).await?;
        let publisher = Arc::new(Publisher {
            conn: conn.clone(),
            channel: tokio::sync::Mutex::new(channel),
            confirm_timeout: Duration::from_secs(config.reply_confirm_timeout_secs),
            persistent: config.topology == Topology::Durable,
            dead_letter_exchange: config.dlx(),
        });
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
        let channel = self.publisher.channel.lock().await.clone();
        let _ = channel.close(200, "worker stopping".into()).await;
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

struct LapinSettle {
    acker: Acker,
    publisher: Arc<Publisher>,
}

fn transport(e: impl std::fmt::Display) -> TransportError {
    TransportError(e.to_string())
}

impl Publisher {
    /// The publishing channel, reopened first if the broker closed it.
    async fn channel(&self) -> Result<Channel, TransportError> {
        let mut current = self.channel.lock().await;
        if !current.status().connected() {
            if !self.conn.status().connected() {
                return Err(TransportError("the broker connection is gone".into()));
            }
            tracing::warn!("the broker closed the publishing channel; reopening it");
            *current = confirming_channel(&self.conn).await.map_err(transport)?;
        }
        Ok(current.clone())
    }

    async fn publish(
        &self,
        reply_to: &str,
        correlation_id: Option<&str>,
        body: &[u8],
    ) -> Result<ReplyOutcome, TransportError> {
        let direct = reply_to.starts_with(crate::protocol::DIRECT_REPLY_TO);
        let mode = if self.persistent && !direct { 2 } else { 1 };
        let mut props = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(mode);
        if let Some(id) = correlation_id {
            props = props.with_correlation_id(id.into());
        }
        // Mandatory makes the broker return a reply whose queue is gone. RabbitMQ 3.x returns
        // every mandatory publish to a direct reply-to name even when it delivered it, so the
        // flag is only set for named reply queues; a direct reply-to requester that went away
        // is invisible to the worker (its reply is dropped by the broker, never stored).
        let options = BasicPublishOptions {
            mandatory: !direct,
            ..Default::default()
        };
        self.confirmed("", reply_to, options, body, props).await
    }

    /// Publishes a dead-letter record (JSON) to the dead-letter exchange.
    async fn dead_letter(&self, record: &[u8]) -> Result<(), TransportError> {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let exchange = self.dead_letter_exchange.clone();
        self.confirmed(&exchange, "", BasicPublishOptions::default(), record, props)
            .await
            .map(drop)
    }

    async fn confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        options: BasicPublishOptions,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<ReplyOutcome, TransportError> {
        let channel = self.channel().await?;
        let confirm = channel
            .basic_publish(exchange.into(), routing_key.into(), options, body, props)
            .await
            .map_err(transport)?;
        let confirmation = tokio::time::timeout(self.confirm_timeout, confirm)
            .await
            .map_err(|_| TransportError("the broker did not confirm the reply in time".into()))?
            .map_err(transport)?;
        match confirmation {
            Confirmation::Ack(None) => Ok(ReplyOutcome::Delivered),
            Confirmation::Ack(Some(mut returned)) => {
                // The broker handed our reply back: wipe that copy too.
                crate::wipe::wipe_bytes(&mut returned.delivery.data);
                Ok(ReplyOutcome::Returned)
            }
            Confirmation::Nack(_) => Err(TransportError("the broker refused the reply".into())),
            Confirmation::NotRequested => Ok(ReplyOutcome::Delivered),
        }
    }
}

impl Settle for LapinSettle {
    fn reply<'a>(
        &'a self,
        reply_to: &'a str,
        correlation_id: Option<&'a str>,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<ReplyOutcome, TransportError>> {
        Box::pin(self.publisher.publish(reply_to, correlation_id, body))
    }

    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            self.acker
                .ack(BasicAckOptions::default())
                .await
                .map(drop)
                .map_err(transport)
        })
    }

    fn reject(self: Box<Self>, requeue: bool) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            self.acker
                .reject(BasicRejectOptions { requeue })
                .await
                .map(drop)
                .map_err(transport)
        })
    }

    fn dead_letter<'a>(&'a self, record: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(self.publisher.dead_letter(record))
    }
}
