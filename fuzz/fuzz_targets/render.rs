//! Decode and render under tight limits: any input file as a thumbnail job (to PNG and JPEG),
//! through intake and the whole pipeline. A typed error is fine; a panic or an abort is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midnit_worker::job::Limits;
use midnit_worker::intake::{intake, Meta};
use midnit_worker::protocol::{encode_request, OutputSpec, Request};
use midnit_worker::wipe::{Ledger, SecretBuf};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_input_pixels: 1 << 20,
        max_input_dimension: 2048,
        max_frames: 16,
        max_output_pixels: 1 << 16,
        ..Limits::default()
    };
    let output = |name: &str, format: &str| OutputSpec {
        name: name.into(),
        format: format.into(),
        width: Some(64),
        height: Some(64),
        ..OutputSpec::default()
    };
    let request = Request {
        v: 1,
        inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(data.to_vec()))].into(),
        recipe: None,
        outputs: vec![output("p", "png"), output("j", "jpeg")],
        preset: None,
    };
    let ledger = Ledger::new();
    let body = SecretBuf::new(encode_request(&request), "request.body", &ledger);
    if let Ok(job) = intake(body, &Meta::default(), &limits, None, &ledger) {
        let _ = midnit_worker::render::render(&job, &limits);
    }
});
