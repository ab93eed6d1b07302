//! Where a thumbnail's time goes, stage by stage, on a 12 MP JPEG (4000x3000, q90) to 512 px:
//! decoding at full scale and at 1/4 scale (shrink-on-load), the same photo progressive at 1/4
//! and 1/8 (where scans are skipped), resizing from each, encoding the JPEG, and wiping the
//! decoded pixels. `cargo bench --bench thumbnail` is the whole pipeline.
//!
//! `cargo bench --bench stages`

// `criterion_group!` writes an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use midnit_worker::intake::{intake, Meta};
use midnit_worker::job::Job;
use midnit_worker::job::Limits;
use midnit_worker::protocol::encode_request;
use midnit_worker::render::{decode, encode, geometry, resize};
use midnit_worker::tools::samples;
use midnit_worker::wipe::{Ledger, SecretBuf, ZeroingAlloc};
use std::hint::black_box;

#[global_allocator]
static ALLOC: ZeroingAlloc = ZeroingAlloc;

fn job(photo: &[u8], side: Option<u32>, limits: &Limits) -> Job {
    let mut request = samples::thumbnail_request(photo.to_vec(), "jpeg", 512);
    request.outputs[0].width = side;
    request.outputs[0].height = side;
    let ledger = Ledger::new();
    let body = SecretBuf::new(encode_request(&request), "request.body", &ledger);
    intake(body, &Meta::default(), limits, None, &ledger).unwrap()
}

fn bench(c: &mut Criterion) {
    midnit_worker::wipe::prefer_mmap_for_big_blocks();
    let limits = Limits::default();
    let photo = samples::jpeg(&samples::figure_photo(4000, 3000, 1), 90);
    let thumb = job(&photo, Some(512), &limits);
    let full_size = job(&photo, None, &limits);
    let ledger = Ledger::new();
    let mut group = c.benchmark_group("stages");
    group.sample_size(20);

    let decode_for = |j: &Job| decode::decode(&j.inputs[0], &limits, &ledger, &j.outputs).unwrap();
    group.bench_function("decode_12mp_full_scale", |b| {
        b.iter(|| black_box(decode_for(&full_size)))
    });
    group.bench_function("decode_12mp_shrink_on_load", |b| {
        b.iter(|| black_box(decode_for(&thumb)))
    });

    // The same photo as a progressive file (jpeg-encoder's spectral-selection script), at 1/4
    // (its high AC bands skipped) and at 1/8 (only the DC scan read).
    let progressive = {
        let img = samples::figure_photo(4000, 3000, 1);
        let mut file = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut file, 90);
        enc.set_progressive(true);
        enc.encode(img.as_raw(), 4000, 3000, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        file
    };
    for (name, side) in [
        ("decode_12mp_progressive_shrink_on_load", 512),
        ("decode_12mp_progressive_eighth", 256),
    ] {
        let j = job(&progressive, Some(side), &limits);
        group.bench_function(name, |b| b.iter(|| black_box(decode_for(&j))));
    }

    let full = decode_for(&full_size);
    let shrunk = decode_for(&thumb);
    let plan = &thumb.outputs[0];
    for (name, src) in [
        ("resize_12mp_to_512", &full),
        ("resize_1000px_to_512", &shrunk),
    ] {
        let mut p = geometry::plan(src.full.0, src.full.1, src.orientation, plan);
        let (sx, sy) = (
            f64::from(src.pixels.width) / f64::from(src.full.0),
            f64::from(src.pixels.height) / f64::from(src.full.1),
        );
        p.crop = (p.crop.0 * sx, p.crop.1 * sy, p.crop.2 * sx, p.crop.3 * sy);
        group.bench_function(name, |b| {
            b.iter(|| black_box(resize::resize(&src.pixels, &p, "r".into(), &ledger).unwrap()))
        });
    }

    let p = geometry::plan(shrunk.full.0, shrunk.full.1, shrunk.orientation, plan);
    let mut p2 = p;
    p2.crop = (
        0.0,
        0.0,
        f64::from(shrunk.pixels.width),
        f64::from(shrunk.pixels.height),
    );
    let small = resize::resize(&shrunk.pixels, &p2, "r".into(), &ledger).unwrap();
    group.bench_function("encode_512_jpeg_q85", |b| {
        b.iter(|| black_box(encode::encode(&small, plan, None, &ledger).unwrap()))
    });

    let bytes = full.pixels.buf.len();
    group.bench_function("wipe_12mp_rgb_pixels", |b| {
        b.iter_batched(
            || SecretBuf::new(vec![7u8; bytes], "pixels", &ledger),
            |buf| buf.wipe(),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
