//! The whole request parser: any bytes as a request body must give a job or a typed error,
//! never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midnit_worker::job::Limits;
use midnit_worker::intake::{intake, Meta};
use midnit_worker::wipe::{Ledger, SecretBuf};

fuzz_target!(|data: &[u8]| {
    let ledger = Ledger::new();
    let body = SecretBuf::new(data.to_vec(), "request.body", &ledger);
    let _ = intake(body, &Meta::default(), &Limits::default(), None, &ledger);
});
