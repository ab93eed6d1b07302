//! The showcase card, in-process: a 1080×1350 card (gradient and stars background, the photo
//! with rounded corners, border, shadow and glow, name and series text) drawn from a 12 MP
//! JPEG and encoded as JPEG q85, through intake and the pipeline as a worker runs it.
//!
//! `taskset -c 0 cargo bench --bench showcase` (one core)

// `criterion_group!` writes an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use midnit_worker::intake::{intake, Meta};
use midnit_worker::job::Limits;
use midnit_worker::protocol::encode_request;
use midnit_worker::recipe::layout;
use midnit_worker::render::compose::{self, place};
use midnit_worker::render::render;
use midnit_worker::tools::gallery;
use midnit_worker::tools::samples;
use midnit_worker::wipe::{Ledger, SecretBuf, ZeroingAlloc};
use std::hint::black_box;

#[global_allocator]
static ALLOC: ZeroingAlloc = ZeroingAlloc;

fn bench(c: &mut Criterion) {
    let photo = samples::jpeg(&samples::collector_photo(4000, 3000, 1), 90);
    let body = encode_request(&gallery::showcase_request(photo));
    let limits = Limits::default();
    let mut group = c.benchmark_group("showcase");
    group.sample_size(20);
    group.bench_function("12mp_jpeg_to_1080x1350_card_jpeg", |b| {
        b.iter(|| {
            let ledger = Ledger::new();
            let body = SecretBuf::new(body.clone(), "request.body", &ledger);
            let job = intake(body, &Meta::default(), &limits, None, &ledger).unwrap();
            let rendered = render(&job, &limits).unwrap();
            assert_eq!(
                (rendered.outputs[0].width, rendered.outputs[0].height),
                (1080, 1350)
            );
            black_box(rendered)
        })
    });
    // The compose stage alone: the photo decoded once, then the card drawn (no encode).
    let ledger = Ledger::new();
    let body = SecretBuf::new(body.clone(), "request.body", &ledger);
    let job = intake(body, &Meta::default(), &limits, None, &ledger).unwrap();
    let recipe = job.recipe.as_ref().unwrap();
    let uses = layout::placements(recipe, layout::whole_area(recipe));
    let sources = place::decode_sources(&job.inputs, &uses, &limits, &ledger).unwrap();
    group.bench_function("compose_1080x1350_card", |b| {
        b.iter(|| black_box(compose::draw(recipe, &sources, &ledger).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
