//! The backend's side of [midnit-worker](../README.md): send render jobs over RabbitMQ, await
//! their replies, and check the signed receipt of what the worker wiped.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use midnit_client::{Client, Options, OutputSpec, Request};
//! let photo = std::fs::read("figure.jpg")?;
//! let client = Client::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "midnit.render")
//!     .await?
//!     .with_pinned_key(midnit_client::parse_hex("d04a…").unwrap_or([0; 32]));
//! let request = Request::thumbnail(photo, OutputSpec::new("thumb", "jpeg").width(512));
//! let rendered = client.render(&request, &Options::default()).await?;
//! std::fs::write("thumb.jpg", &rendered.outputs[0].data)?;
//! # Ok(()) }
//! ```
//!
//! - [`wire`]: the request and reply types of contract v1, and every error code.
//! - [`receipt`]: the receipt and its COSE_Sign1 attestation, verified against a pinned key.
//! - [`Client`]: one connection, many requests in flight, replies by direct reply-to (never
//!   stored on the broker).
//! - [`sealed`] and [`directory`]: contract v2, requests sealed with HPKE to the fleet's
//!   current epoch key from a signed key directory ([`Client::with_directory`]), so the broker
//!   and any relay carry only ciphertext.

mod client;
pub mod directory;
pub mod receipt;
mod render;
pub mod sealed;
pub mod wire;

pub use client::{Client, ClientError, RawProps};
pub use directory::{DirectoryError, KeyDirectory};
pub use receipt::{hex, parse_hex, AttestationError, Attested, Receipt, VerifyError};
pub use render::{Options, RenderError, Rendered};
pub use wire::{ErrorBody, ErrorCode, OutputData, OutputSpec, Reply, Request, Status};
