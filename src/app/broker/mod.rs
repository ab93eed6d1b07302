//! The **broker** side of the worker: connecting with lapin, declaring the topology, turning
//! deliveries into [`Incoming`](crate::app::worker::Incoming) jobs, and publishing replies with confirms.
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

use crate::app::config::{BrokerSettings, SecretUrl};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

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
    /// A connection attempt took longer than `connect_timeout_secs`.
    #[error("no answer from the broker at {0} within connect_timeout_secs")]
    Timeout(String),
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

pub(super) fn op(what: &'static str) -> impl FnOnce(lapin::Error) -> BrokerError {
    move |source| BrokerError::Op { what, source }
}

/// Opens a connection named `name` to the first broker URL (see [`connect_to`]).
pub async fn connect(config: &BrokerSettings, name: &str) -> Result<Connection, BrokerError> {
    connect_to(config, &config.amqp_url.nth(0), name).await
}

/// Opens a connection named `name` to `url` (one of the configured nodes), with the configured
/// `frame_max` (unless the URL sets one) and, for `amqps://`, the configured CA bundle and
/// client certificate.
pub async fn connect_to(
    config: &BrokerSettings,
    url: &SecretUrl,
    name: &str,
) -> Result<Connection, BrokerError> {
    let redacted = url.redacted();
    let failed = |source| BrokerError::Connect {
        url: redacted.clone(),
        source,
    };
    let mut uri: AMQPUri = url
        .expose()
        .parse()
        .map_err(|_| BrokerError::Config("amqp_url: not a valid AMQP URL".into()))?;
    uri.query.frame_max.get_or_insert(config.frame_max);
    let tls = tls_config(config)?;
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime().map_err(failed)?;
    let attempt = Connection::connect_uri_with_config(uri, props, tls, runtime);
    let limit = std::time::Duration::from_secs(config.connect_timeout_secs.max(1));
    match tokio::time::timeout(limit, attempt).await {
        Ok(connected) => connected.map_err(failed),
        Err(_) => Err(BrokerError::Timeout(redacted)),
    }
}

/// The TLS settings for `amqps://`: extra CA certificates and an optional client identity.
fn tls_config(config: &BrokerSettings) -> Result<OwnedTLSConfig, BrokerError> {
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

mod consume;
mod publish;
mod topology;

pub use consume::Consuming;
pub use publish::Publisher;
pub use topology::{declare_topology, delete_topology, queue_arguments};
