//! The topology every connection declares: the jobs queue (classic or quorum), the worker's
//! dead-letter exchange and queue, with the arguments each kind needs.

use super::{connect, op, BrokerError};
use crate::app::config::{BrokerSettings, Topology};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// The jobs queue's arguments for the configured topology.
pub fn queue_arguments(config: &BrokerSettings) -> FieldTable {
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
pub async fn declare_topology(
    channel: &Channel,
    config: &BrokerSettings,
) -> Result<(), BrokerError> {
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
pub async fn delete_topology(config: &BrokerSettings, name: &str) -> Result<(), BrokerError> {
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
