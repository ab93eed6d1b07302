//! # midnit-worker
//!
//! A queue-driven worker that renders images from a collector's photos, replies, and wipes
//! every byte of the job. A job travels through the modules in this order:
//!
//! 1. [`intake`] — AMQP properties and the CBOR body become a typed [`intake::Job`]; every
//!    limit that can be checked without decoding is checked ([`pipeline::probe`] reads headers).
//! 2. [`executor`] — runs the pure [`pipeline::render`] (decode → compose a [`recipe`] →
//!    resize → encode): by default
//!    in a single-use renderer process per job under kernel limits ([`executor::Isolated`]),
//!    or in-process on the blocking pool ([`executor::InProcess`]).
//! 3. [`worker`] — seals the reply (outputs copied, then wiped, then the receipt taken),
//!    publishes it through [`broker`] with confirms, then acks. One place decides ack,
//!    requeue or reject.
//! 4. [`wipe`] — [`wipe::SecretBuf`] and [`wipe::SpillFile`] drop guards zero what a job held
//!    and feed its [`wipe::Ledger`]; [`wipe::ZeroingAlloc`] zeroes every freed heap block.
//!
//! Around them: [`protocol`] (the v1 wire contract), [`config`], [`serve`] (a worker on the
//! broker, start to clean exit), [`http`] (health and metrics), [`client`] (the backend's side), [`memqueue`] (the demo's
//! in-process queue), [`bench`] (the load generator), [`telemetry`], [`request_file`], [`samples`], [`gallery`] (the recipe examples), [`demo`], [`commands`].

pub mod bench;
pub mod broker;
pub mod client;
pub mod commands;
pub mod config;
pub mod demo;
pub mod executor;
pub mod gallery;
pub mod http;
pub mod intake;
pub mod memqueue;
pub mod pipeline;
pub mod protocol;
pub mod recipe;
pub mod request_file;
pub mod samples;
pub mod serve;
pub mod telemetry;
pub mod wipe;
pub mod worker;
