//! The thumbnail kernel, in-process: a 12 MP JPEG to a 512 px JPEG (q85), through intake and
//! the pipeline exactly as a worker runs it (wiping included).
//!
//! `cargo bench --bench thumbnail` (with a second case that turns the zeroing allocator off,
//! to measure its share)

// `criterion_group!` writes an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use midnit_worker::intake::{intake, Meta};
use midnit_worker::job::Limits;
use midnit_worker::protocol::encode_request;
use midnit_worker::render::render;
use midnit_worker::tools::samples;
use midnit_worker::wipe::{Ledger, SecretBuf, ZeroingAlloc};
use std::hint::black_box;

#[global_allocator]
static ALLOC: ZeroingAlloc = ZeroingAlloc;

fn bench(c: &mut Criterion) {
    let photo = samples::jpeg(&samples::figure_photo(4000, 3000, 1), 90);
    let body = encode_request(&samples::thumbnail_request(photo, "jpeg", 512));
    let limits = Limits::default();
    let mut group = c.benchmark_group("thumbnail");
    group.sample_size(20);
    let run = || {
        let ledger = Ledger::new();
        let body = SecretBuf::new(body.clone(), "request.body", &ledger);
        let job = intake(body, &Meta::default(), &limits, None, &ledger).unwrap();
        black_box(render(&job, &limits).unwrap())
    };
    group.bench_function("12mp_jpeg_to_512_jpeg", |b| b.iter(run));
    // The zeroing allocator's share: the same job with freed blocks left as they are (the
    // job's own buffers are still wiped by their guards). Never how a worker runs.
    ZeroingAlloc::set_enabled(false);
    group.bench_function("12mp_jpeg_to_512_jpeg_allocator_zeroing_off", |b| {
        b.iter(run)
    });
    ZeroingAlloc::set_enabled(true);
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
