//! Every input the fuzzers ever crashed or hung on (filed by `fuzz/run.sh` into
//! `tests/corpus/<target>/`), and hand-made edge cases beside them, replayed through the same
//! code the fuzz target runs: each must end in a result or a typed error.

use midnit_worker::intake::{intake, Meta};
use midnit_worker::job::Limits;
use midnit_worker::wipe::{Ledger, SecretBuf};
use std::path::Path;

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    out
}

#[test]
fn every_filed_request_ends_in_a_job_or_a_typed_error() {
    let cases = files("request");
    assert!(!cases.is_empty(), "tests/corpus/request/ is empty");
    for (name, data) in cases {
        let ledger = Ledger::new();
        let body = SecretBuf::new(data, "request.body", &ledger);
        if let Err(e) = intake(body, &Meta::default(), &Limits::default(), None, &ledger) {
            assert!(!e.message.is_empty(), "{name}");
        }
    }
}

#[test]
fn every_filed_file_probes_or_fails_typed_and_renders_or_fails_typed() {
    let limits = Limits {
        max_input_pixels: 1 << 20,
        max_input_dimension: 2048,
        max_frames: 16,
        max_output_pixels: 1 << 16,
        ..Limits::default()
    };
    let mut all = files("probe");
    all.extend(files("render"));
    assert!(!all.is_empty());
    for (name, data) in all {
        let _ = midnit_worker::intake::probe::probe_bytes(&data, "photo", &Limits::default());
        let mut request = midnit_worker::tools::samples::thumbnail_request(data, "png", 64);
        request.outputs[0].height = Some(64);
        let ledger = Ledger::new();
        let body = midnit_worker::protocol::encode_request(&request);
        let body = SecretBuf::new(body, "request.body", &ledger);
        if let Ok(job) = intake(body, &Meta::default(), &limits, None, &ledger) {
            let rendered = midnit_worker::render::render(&job, &limits);
            if let Err(e) = rendered {
                assert!(!e.message.is_empty(), "{name}");
            }
        }
    }
}

#[test]
fn every_filed_recipe_parses_and_checks_or_fails_typed() {
    use midnit_worker::intake::recipe::parse_cbor;
    use midnit_worker::recipe::{check, Shape};
    let shape = Shape {
        width: 4000,
        height: 3000,
        shrinkable: true,
    };
    for (name, data) in files("recipe") {
        match parse_cbor(&data) {
            Ok(recipe) => {
                let _ = check(&recipe, &[("photo", shape)], &Limits::default().recipe());
            }
            Err(e) => assert!(e.message.starts_with("recipe"), "{name}: {e}"),
        }
    }
}
