//! The recipe parser and checker, including the cost estimate, on any CBOR item.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midnit_worker::config::Limits;
use midnit_worker::recipe::{check, parse_cbor, RecipeLimits, Shape};

fuzz_target!(|data: &[u8]| {
    if let Ok(recipe) = parse_cbor(data) {
        let shape = Shape {
            width: 4000,
            height: 3000,
            shrinkable: true,
        };
        let inputs = [("photo", shape), ("logo", shape)];
        let _ = check(&recipe, &inputs, &RecipeLimits::new(&Limits::default()));
    }
});
