//! The worker's check of a renderer's answer: any two frames must give a checked result or
//! `internal`, and a receipt of bounded size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midnit_worker::job::Limits;
use midnit_worker::render::executor::accept;
use midnit_worker::intake::plan_outputs;
use midnit_worker::protocol::OutputSpec;
use midnit_worker::wipe::{Ledger, SecretBuf};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b) * data.len() / 256);
    let (first, report) = data.split_at(split.min(data.len()));
    let ledger = Ledger::new();
    let limits = Limits::default();
    let spec = OutputSpec {
        name: "t".into(),
        format: "png".into(),
        width: Some(64),
        ..OutputSpec::default()
    };
    let plans = plan_outputs(&[spec], &limits).unwrap();
    let first = SecretBuf::new(first.to_vec(), "renderer.reply", &ledger);
    let report = SecretBuf::new(report.to_vec(), "renderer.report", &ledger);
    let _ = accept(&first, &report, &plans, &limits, &ledger);
    let receipt = ledger.receipt(0);
    assert!(receipt.wiped.len() <= midnit_worker::wipe::MAX_ENTRIES + 65);
});
