//! Publishing with confirms on a channel of its own, reopened when the broker closes it, and
//! settling a delivery (ack, requeue, dead-letter record) through it.

use super::{op, BrokerError};
use crate::app::config::{BrokerSettings, Topology};
use crate::app::worker::{ReplyOutcome, Settle, TransportError};
use crate::protocol::CONTENT_TYPE;
use crate::render::executor::BoxFuture;
use lapin::options::{
    BasicAckOptions, BasicPublishOptions, BasicRejectOptions, ConfirmSelectOptions,
};
use lapin::Acker;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use std::sync::Arc;
use std::time::Duration;

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

pub(super) struct LapinSettle {
    pub(super) acker: Acker,
    pub(super) publisher: Arc<Publisher>,
}

fn transport(e: impl std::fmt::Display) -> TransportError {
    TransportError(e.to_string())
}

impl Publisher {
    /// Opens the publishing channel, in confirm mode, on `conn`.
    pub(super) async fn open(
        conn: &Arc<Connection>,
        config: &BrokerSettings,
    ) -> Result<Self, BrokerError> {
        let channel = confirming_channel(conn).await?;
        Ok(Self {
            conn: conn.clone(),
            channel: tokio::sync::Mutex::new(channel),
            confirm_timeout: Duration::from_secs(config.reply_confirm_timeout_secs),
            persistent: config.topology == Topology::Durable,
            dead_letter_exchange: config.dlx(),
        })
    }

    /// Closes the publishing channel.
    pub(super) async fn close(&self) {
        let channel = self.channel.lock().await.clone();
        let _ = channel.close(200, "worker stopping".into()).await;
    }

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
        traceparent: Option<&str>,
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
        if let Some(context) = traceparent {
            let mut headers = lapin::types::FieldTable::default();
            headers.insert(
                crate::app::trace::TRACEPARENT.into(),
                lapin::types::AMQPValue::LongString(context.into()),
            );
            props = props.with_headers(headers);
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
        traceparent: Option<&'a str>,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<ReplyOutcome, TransportError>> {
        Box::pin(
            self.publisher
                .publish(reply_to, correlation_id, traceparent, body),
        )
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
