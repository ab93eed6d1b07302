//! Around the stages: the **app** that runs them — the worker's loop on the broker, its
//! configuration, health and metrics, logging, and the command-line commands.

pub mod broker;
pub mod config;
pub mod http;
pub mod memqueue;
pub mod serve;
pub mod telemetry;
pub mod trace;
pub mod worker;
