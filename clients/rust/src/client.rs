//! The backend's side of the contract: send a render request, await its reply.
//!
//! Replies come back by RabbitMQ's direct reply-to, so a reply is never stored on the broker:
//! the client consumes `amq.rabbitmq.reply-to` (no-ack) on the channel it publishes from, and
//! routes each reply to its waiting caller by `correlation_id`. Many requests may be in flight
//! on one client at once: a `Client` is `Send + Sync`; share it behind an `Arc`.

use crate::directory::KeyDirectory;
use crate::wire::{
    decode_reply, encode_request, Reply, Request, CONTENT_TYPE, DEADLINE_HEADER, DIRECT_REPLY_TO,
    EPOCH_HEADER, SENT_HEADER,
};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Why a request got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker connection failed.
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    /// No reply arrived in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The reply was not a valid v1 reply.
    #[error("the reply is not a valid v1 reply: {0}")]
    BadReply(String),
    /// The client's reply consumer stopped.
    #[error("the reply consumer stopped")]
    Closed,
    /// The broker refused to take the job (publisher confirm nack).
    #[error("the broker refused the job")]
    Refused,
    /// The connection settings are unusable.
    #[error("{0}")]
    Config(String),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// A connection to the broker that sends render requests and awaits their replies.
pub struct Client {
    conn: Connection,
    channel: Channel,
    queue: String,
    pending: Pending,
    next_id: AtomicU64,
    prefix: String,
    persistent: bool,
    pinned_key: Option<[u8; 32]>,
    directory: Mutex<Option<KeyDirectory>>,
}

/// Properties of a raw message, for sending requests the typed API would not build.
#[derive(Debug, Clone, Default)]
pub struct RawProps {
    /// `correlation_id` (None: omitted).
    pub correlation_id: Option<String>,
    /// `reply_to` (None: omitted; Some(direct) for direct reply-to).
    pub reply_to: Option<String>,
    /// `content_type` (None: omitted).
    pub content_type: Option<String>,
    /// The deadline header, in ms since the Unix epoch (None: omitted).
    pub deadline_ms: Option<u64>,
    /// The epoch header of a sealed request (None: omitted).
    pub epoch: Option<u64>,
}

impl Client {
    /// Connects to `url` and prepares to send jobs to `queue` of the transient topology
    /// (non-persistent messages).
    pub async fn connect(url: &str, queue: &str) -> Result<Self, ClientError> {
        let props = ConnectionProperties::default().with_connection_name("midnit-client".into());
        let conn = Connection::connect(url, props).await?;
        Self::on(conn, queue, false).await
    }

    /// A client on an open connection. `persistent` publishes jobs persistent (durable
    /// topology) and waits for the broker's confirm of each, so a job the call returned for
    /// is on the broker's disk.
    pub async fn on(conn: Connection, queue: &str, persistent: bool) -> Result<Self, ClientError> {
        let channel = conn.create_channel().await?;
        if persistent {
            channel
                .confirm_select(lapin::options::ConfirmSelectOptions::default())
                .await?;
        }
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut replies = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                "".into(),
                no_ack,
                FieldTable::default(),
            )
            .await?;
        let pending: Pending = Arc::default();
        let routes = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(mut delivery)) = replies.next().await {
                let Some(id) = delivery.properties.correlation_id().as_ref() else {
                    continue;
                };
                let waiter = routes.lock().unwrap().remove(id.as_str());
                if let Some(tx) = waiter {
                    let _ = tx.send(std::mem::take(&mut delivery.data));
                }
            }
            routes.lock().unwrap().clear();
        });
        let prefix = format!("{:x}-{}", std::process::id(), now_unix_ms());
        Ok(Self {
            conn,
            channel,
            queue: queue.into(),
            pending,
            next_id: AtomicU64::new(0),
            prefix,
            persistent,
            pinned_key: None,
            directory: Mutex::new(None),
        })
    }

    /// Checks every reply [`Client::render`] returns against the worker's pinned ed25519
    /// public key (its attestation must be signed by it and match the reply and request).
    pub fn with_pinned_key(mut self, public_key: [u8; 32]) -> Self {
        self.pinned_key = Some(public_key);
        self
    }

    /// Seals every request [`Client::render`] sends to the worker fleet's current epoch key
    /// from `directory` (verified with [`KeyDirectory::verify`] against the pinned directory
    /// key), and opens the sealed replies: the broker and anything between carry only
    /// ciphertext. The default for every client that has a directory.
    pub fn with_directory(self, directory: KeyDirectory) -> Self {
        self.set_directory(directory);
        self
    }

    /// Replaces the key directory (fetched again, e.g. after `request.reseal`).
    pub fn set_directory(&self, directory: KeyDirectory) {
        *self.directory.lock().unwrap() = Some(directory);
    }

    /// The key directory requests are sealed to, if any.
    pub fn directory(&self) -> Option<KeyDirectory> {
        self.directory.lock().unwrap().clone()
    }

    /// The pinned key, if any.
    pub fn pinned_key(&self) -> Option<&[u8; 32]> {
        self.pinned_key.as_ref()
    }

    /// A fresh correlation id, unique to this client.
    pub fn new_correlation_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
    }

    /// Sends `request` and waits up to `timeout` for its reply, whatever it says (the typed
    /// [`Client::render`] turns error replies into errors and checks attestations).
    pub async fn reply(&self, request: &Request, timeout: Duration) -> Result<Reply, ClientError> {
        let id = self.new_correlation_id();
        let raw = self
            .send_raw(&encode_request(request), &RawProps::request(&id))
            .await?;
        let bytes = Self::await_raw(raw, timeout).await?;
        decode_reply(&bytes).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    /// Publishes any body with any properties. When the properties name a correlation id, the
    /// returned receiver gets the reply with that id.
    pub async fn send_raw(
        &self,
        body: &[u8],
        props: &RawProps,
    ) -> Result<oneshot::Receiver<Vec<u8>>, ClientError> {
        let (tx, rx) = oneshot::channel();
        if let Some(id) = &props.correlation_id {
            self.pending.lock().unwrap().insert(id.clone(), tx);
        }
        let mode = if self.persistent { 2 } else { 1 };
        let mut p = BasicProperties::default().with_delivery_mode(mode);
        if let Some(v) = &props.correlation_id {
            p = p.with_correlation_id(v.as_str().into());
        }
        if let Some(v) = &props.reply_to {
            p = p.with_reply_to(v.as_str().into());
        }
        if let Some(v) = &props.content_type {
            p = p.with_content_type(v.as_str().into());
        }
        let mut headers = FieldTable::default();
        let sent = i64::try_from(now_unix_ms()).unwrap_or(i64::MAX);
        headers.insert(SENT_HEADER.into(), AMQPValue::LongLongInt(sent));
        if let Some(deadline) = props.deadline_ms {
            let value = AMQPValue::LongLongInt(i64::try_from(deadline).unwrap_or(i64::MAX));
            headers.insert(DEADLINE_HEADER.into(), value);
        }
        if let Some(epoch) = props.epoch {
            let value = AMQPValue::LongLongInt(i64::try_from(epoch).unwrap_or(i64::MAX));
            headers.insert(EPOCH_HEADER.into(), value);
        }
        p = p.with_headers(headers);
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                p,
            )
            .await?;
        if self.persistent {
            if let lapin::Confirmation::Nack(_) = confirm.await? {
                return Err(ClientError::Refused);
            }
        }
        Ok(rx)
    }

    /// Waits for a reply obtained from [`Client::send_raw`].
    pub async fn await_raw(
        rx: oneshot::Receiver<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.conn.close(200, "client done".into()).await;
    }
}

impl RawProps {
    /// The properties of a well-formed request with direct reply-to.
    pub fn request(correlation_id: &str) -> Self {
        Self {
            correlation_id: Some(correlation_id.into()),
            reply_to: Some(DIRECT_REPLY_TO.into()),
            content_type: Some(CONTENT_TYPE.into()),
            deadline_ms: None,
            epoch: None,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
