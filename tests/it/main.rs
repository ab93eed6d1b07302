//! The acceptance tests, in one binary: each module proves one part of the worker against the
//! real broker and, where it matters, the real binary as a child process. [`harness`] is what
//! they share.

// The worker's own allocator, so tests can meter a thread's allocations (`intake_memory`) the
// way the binary does.
#[global_allocator]
static ALLOC: midnit_worker::wipe::ZeroingAlloc = midnit_worker::wipe::ZeroingAlloc;

#[allow(dead_code)]
mod harness;

mod broker;
mod broker_restart;
mod clients;
mod cluster;
mod contract;
mod corpus;
mod deploy;
mod docs;
mod examples;
mod faults;
mod formats;
mod heif_file;
mod hostile;
mod intake_memory;
mod jpeg_scaled;
mod layers;
mod memscan;
mod operations;
mod pipeline;
mod privacy;
mod process;
mod prometheus;
mod readme;
mod recipes;
mod schema_ranges;
mod sealed;
mod sealed_jobs;
mod startup;
mod tls;
mod topology;
mod trace_context;
mod vectors;
