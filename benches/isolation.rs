//! What isolation costs per job: the same small job (a ~200 KB JPEG to a 256 px JPEG) rendered
//! in-process, by a pre-started single-use renderer (pipes, prlimit, exit: the default), and by
//! a renderer started for the job (fork, exec, seccomp on top).
//!
//! `cargo bench --bench isolation`

// `criterion_group!` writes an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use midnit_worker::intake::{intake, Meta};
use midnit_worker::job::Job;
use midnit_worker::job::Limits;
use midnit_worker::protocol::encode_request;
use midnit_worker::render::executor::{Executor, InProcess, Isolated};
use midnit_worker::tools::samples;
use midnit_worker::wipe::{Ledger, SecretBuf, ZeroingAlloc};

#[global_allocator]
static ALLOC: ZeroingAlloc = ZeroingAlloc;

fn job(body: &[u8], limits: &Limits) -> Job {
    let ledger = Ledger::new();
    let body = SecretBuf::new(body.to_vec(), "request.body", &ledger);
    intake(body, &Meta::default(), limits, None, &ledger).unwrap()
}

fn bench(c: &mut Criterion) {
    let photo = samples::jpeg(&samples::figure_photo(1000, 750, 3), 92);
    let body = encode_request(&samples::thumbnail_request(photo, "jpeg", 256));
    let limits = Limits::default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    let in_process = InProcess::new(limits.clone(), 1);
    let binary: std::path::PathBuf = env!("CARGO_BIN_EXE_midnit-worker").into();
    let max = limits.max_job_memory_bytes;
    let isolated = Isolated::new(binary.clone(), limits.clone(), 1, max);
    let cold = Isolated::with_spares(binary, limits.clone(), 1, max, 0);
    let mut group = c.benchmark_group("isolation");
    group.sample_size(30);
    group.bench_function("in_process", |b| {
        b.iter(|| {
            runtime
                .block_on(in_process.execute(job(&body, &limits)))
                .unwrap()
        })
    });
    for (name, executor) in [("isolated", &isolated), ("isolated_cold_start", &cold)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(executor.execute(job(&body, &limits)))
                    .unwrap()
            })
        });
    }
    group.finish();

    // The same with a pause between jobs (not timed), as when the worker is not saturated: the
    // replacement renderer is ready and warm when the next job comes.
    let mut paced = c.benchmark_group("isolation_paced");
    paced.sample_size(10);
    paced.warm_up_time(std::time::Duration::from_millis(500));
    paced.measurement_time(std::time::Duration::from_secs(1));
    for (name, executor) in [
        ("in_process", &in_process as &dyn Executor),
        ("isolated", &isolated),
    ] {
        paced.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = std::time::Duration::ZERO;
                for _ in 0..iters {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    let job = job(&body, &limits);
                    let started = std::time::Instant::now();
                    runtime.block_on(executor.execute(job)).unwrap();
                    timed += started.elapsed();
                }
                timed
            })
        });
    }
    paced.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
