//! The backend's side of the contract: the `midnit-client` crate (`clients/rust`), which a
//! backend depends on, re-exported for the worker's own tools; and [`for_worker`], which
//! connects it the way the worker connects (its URL, `frame_max` and TLS settings).

pub use midnit_client::{Client, ClientError, Options, RawProps, RenderError, Rendered};

use crate::app::broker::{self, BrokerError};
use crate::app::config::{BrokerSettings, Topology};

/// A client of the worker configured by `config`: its broker, its queue, persistent jobs when
/// its topology is durable.
pub async fn for_worker(config: &BrokerSettings) -> Result<Client, ClientError> {
    let conn = broker::connect(config, "midnit-client")
        .await
        .map_err(|e| match e {
            BrokerError::Connect { source, .. } | BrokerError::Op { source, .. } => {
                ClientError::Broker(source)
            }
            other => ClientError::Config(other.to_string()),
        })?;
    let durable = config.topology == Topology::Durable;
    Client::on(conn, &config.queue, durable).await
}
