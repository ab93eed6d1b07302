//! # midnit-worker
//!
//! A queue-driven worker that renders images from a collector's photos, replies, and wipes
//! every byte of the job.
//!
//! The modules are declared below in the order of a job's way, and each uses only modules
//! declared before it (`tests/it/layers.rs` checks every `crate::` path):
//!
//! | module | what it is |
//! |---|---|
//! | [`wipe`] | the foundation every stage holds job bytes in: [`wipe::SecretBuf`] and [`wipe::SpillFile`] zero what they held on drop and write it in the job's [`wipe::Ledger`]; [`wipe::ZeroingAlloc`] zeroes every freed heap block; receipts and their signature |
//! | [`settings`](mod@settings) | how a section of settings is declared once ([`settings!`]) |
//! | [`protocol`] | the v1 wire contract: request, reply, error codes, their one encoder |
//! | [`keys`] | sealed jobs' keys: the fleet's key state, the locked key page, the keyring that follows the epoch clock, erases past keys, refuses replays and signs the key directory |
//! | [`recipe`] | the recipe language: types, checks, layout, the cost model |
//! | [`job`] | the types every stage shares: [`job::Job`], its inputs and output plans, [`job::Limits`] |
//! | [`intake`] | stage 1: properties and CBOR body → a checked [`job::Job`]; every limit that can be checked without decoding (the [`intake::probe`] reads headers) |
//! | [`render`] | stage 2: the pure pipeline ([`render::render`]: decode → compose → resize → encode) and where it runs ([`render::executor`]: a single-use confined renderer process per job, or in process) |
//! | [`reply`] | stage 3: one [`reply::process::Processor::process_one`] (intake → render → seal) for every caller, the sealed reply, and the pure ack decision ([`reply::settle::decide`]) |
//! | [`app`] | around the stages: the worker's loop on the broker, configuration, health and metrics, logging |
//! | [`client`] | the backend's side: send a request, await its reply |
//! | [`tools`] | beside the worker: the load generator, the demo, the gallery, samples, the command line's commands |

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]

pub mod wipe;

pub mod settings;

pub mod protocol;

pub mod keys;

pub mod recipe;

pub mod job;

pub mod intake;

pub mod render;

pub mod reply;

pub mod app;

pub mod client;

pub mod tools;
