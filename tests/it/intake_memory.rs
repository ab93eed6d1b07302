//! Intake is bounded by the body's size: the largest allowed body (64 MiB) of each worst shape
//! is parsed with every allocation of this thread metered, and the peak stays within twice the
//! body plus a constant (the body, the copies of its inputs, and small parsed values).

use crate::harness::cbor::{head, text};
use midnit_worker::intake::{intake, Meta};
use midnit_worker::job::Limits;
use midnit_worker::wipe::{meter, Ledger, SecretBuf};

const MIB: usize = 1 << 20;

fn outputs(out: &mut Vec<u8>) {
    text(out, "outputs");
    head(out, 4, 1);
    head(out, 5, 2);
    text(out, "name");
    text(out, "t");
    text(out, "format");
    text(out, "png");
}

/// A request of `v`, `outputs`, the `inputs` given, and `recipe` bytes if any.
fn body(inputs: &[(&str, Vec<u8>)], recipe: Option<Vec<u8>>) -> Vec<u8> {
    let mut b = Vec::new();
    head(&mut b, 5, 3 + u64::from(recipe.is_some()));
    text(&mut b, "v");
    b.push(1);
    outputs(&mut b);
    text(&mut b, "inputs");
    head(&mut b, 5, inputs.len() as u64);
    for (name, data) in inputs {
        text(&mut b, name);
        head(&mut b, 2, data.len() as u64);
        b.extend_from_slice(data);
    }
    if let Some(r) = recipe {
        text(&mut b, "recipe");
        b.extend_from_slice(&r);
    }
    b
}

/// A photo padded to `size` bytes (a JPEG followed by a trailer: the probe reads only up to
/// its end-of-image marker).
fn photo(size: usize) -> Vec<u8> {
    let mut jpeg = midnit_worker::tools::samples::jpeg(
        &midnit_worker::tools::samples::figure_photo(64, 48, 1),
        90,
    );
    jpeg.resize(size, 0x55);
    jpeg
}

/// The peak this thread's allocations reach while `body` goes through intake.
fn peak_of(body: Vec<u8>) -> (usize, usize, String) {
    let len = body.len();
    let limits = Limits::default();
    let ledger = Ledger::new();
    meter::reset();
    let buf = SecretBuf::new(body, "request.body", &ledger);
    let outcome = match intake(buf, &Meta::default(), &limits, None, &ledger) {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.code.as_str().to_owned(),
    };
    // The body was already allocated before the reset: count it once here.
    (meter::peak() + len, len, outcome)
}

#[test]
fn the_largest_body_of_every_worst_shape_stays_within_twice_its_size() {
    meter::set_enabled(true);
    let max = Limits::default().max_body_bytes;
    let recipe_text = {
        let mut r = Vec::new();
        ciborium::into_writer(
            &serde_json::json!({"canvas": {"width": 100, "height": 100},
                "layers": [{"text": {"text": "x".repeat(max - MIB),
                                     "box": {"x": 0, "y": 0, "width": 10, "height": 10}}}]}),
            &mut r,
        )
        .unwrap();
        r
    };
    let recipe_layers = {
        // As many empty rect layers as fit: each is a few bytes.
        let n = (max - MIB) / 8;
        let mut r = Vec::new();
        head(&mut r, 5, 2);
        text(&mut r, "canvas");
        ciborium::into_writer(&serde_json::json!({"width": 10, "height": 10}), &mut r).unwrap();
        text(&mut r, "layers");
        head(&mut r, 4, n as u64);
        for _ in 0..n {
            r.extend_from_slice(&[0xa1, 0x64, b'r', b'e', b'c', b't', 0xa0]);
        }
        r
    };
    let deep = {
        // An unknown field holding arrays nested as deep as the body allows.
        let mut r = Vec::new();
        head(&mut r, 5, 1);
        text(&mut r, "canvas");
        r.extend(std::iter::repeat_n(0x81, max - MIB));
        r.push(0);
        r
    };
    let grid_of = |names: &[&str]| {
        let mut r = Vec::new();
        ciborium::into_writer(
            &serde_json::json!({"canvas": {"width": 64, "height": 64},
                "layers": [{"grid": {"inputs": names, "columns": 4}}]}),
            &mut r,
        )
        .unwrap();
        Some(r)
    };
    let names: Vec<String> = (0..16).map(|i| format!("p{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let sixteen: Vec<(&str, Vec<u8>)> = names
        .iter()
        .map(|n| (*n, photo((max - 2 * MIB) / 16)))
        .collect();
    let shapes: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "two inputs of the largest size",
            body(
                &[("a", photo(32 * MIB - 4096)), ("b", photo(32 * MIB - 4096))],
                grid_of(&["a", "b"]),
            ),
            "ok",
        ),
        ("sixteen inputs", body(&sixteen, grid_of(&names)), "ok"),
        (
            "one input filling the body",
            body(&[("a", photo(max - MIB))], None),
            "input.too_large",
        ),
        (
            "a recipe text of 63 MiB",
            body(&[("photo", photo(1000))], Some(recipe_text)),
            "recipe.invalid",
        ),
        (
            "millions of layers",
            body(&[("photo", photo(1000))], Some(recipe_layers)),
            "recipe.invalid",
        ),
        (
            "arrays nested a million deep",
            body(&[("photo", photo(1000))], Some(deep)),
            "request.malformed",
        ),
    ];
    for (label, body, code) in shapes {
        assert!(body.len() <= max, "{label}: {} bytes", body.len());
        let (peak, len, outcome) = peak_of(body);
        println!(
            "{label}: body {:.1} MiB, peak {:.1} MiB ({outcome})",
            len as f64 / MIB as f64,
            peak as f64 / MIB as f64
        );
        assert_eq!(outcome, code, "{label}");
        assert!(
            peak <= 2 * len + 4 * MIB,
            "{label}: peak {peak} for a {len}-byte body"
        );
    }
}
