//! The header probe on any file: a header or a typed error, in time linear in the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midnit_worker::job::Limits;
use midnit_worker::intake::probe::probe_bytes;

fuzz_target!(|data: &[u8]| {
    let _ = probe_bytes(data, "photo", &Limits::default());
});
