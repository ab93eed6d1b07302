//! The recipe parser and checker, including the cost estimate, on any CBOR item.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midnit_worker::job::Limits;
use midnit_worker::intake::recipe::parse_cbor;
use midnit_worker::recipe::{check, Shape};

fuzz_target!(|data: &[u8]| {
    if let Ok(recipe) = parse_cbor(data) {
        let shape = Shape {
            width: 4000,
            height: 3000,
            shrinkable: true,
        };
        let inputs = [("photo", shape), ("logo", shape)];
        let _ = check(&recipe, &inputs, &Limits::default().recipe());
    }
});
