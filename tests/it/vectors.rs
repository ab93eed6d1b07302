//! The conformance vectors (`docs/contract/vectors.json`): request bodies of every error class
//! and of each kind of job, with the reply each must get from a worker started with
//! `docs/contract/worker.toml`, and one attestation with its exact signed bytes. Every client
//! (Rust, Python, TypeScript) runs them against the real worker; this file makes them, and a
//! test keeps the committed file equal to what it makes (`CONTRACT_WRITE=1` rewrites it).

use base64::Engine as _;
use ciborium::Value as V;
use midnit_worker::tools::samples::{self, hostile};
use midnit_worker::wipe::{hex, ReceiptSigner};
use serde_json::{json, Value};

/// The receipt key's seed of the test worker (the documented test vector's; never a real key).
pub const SEED: [u8; 32] = [0x11; 32];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn cbor(v: &V) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn map(entries: Vec<(&str, V)>) -> V {
    V::Map(
        entries
            .into_iter()
            .map(|(k, v)| (V::Text(k.into()), v))
            .collect(),
    )
}

fn out(name: &str, format: &str, extra: Vec<(&str, V)>) -> V {
    let mut e = vec![
        ("name", V::Text(name.into())),
        ("format", V::Text(format.into())),
    ];
    e.extend(extra);
    map(e)
}

fn int(n: u64) -> V {
    V::Integer(n.into())
}

fn body(inputs: Vec<(&str, Vec<u8>)>, rest: Vec<(&str, V)>) -> Vec<u8> {
    let inputs = V::Map(
        inputs
            .into_iter()
            .map(|(k, b)| (V::Text(k.into()), V::Bytes(b)))
            .collect(),
    );
    let mut e = vec![("v", int(1)), ("inputs", inputs)];
    e.extend(rest);
    cbor(&map(e))
}

fn photo() -> Vec<u8> {
    samples::jpeg(&samples::figure_photo(64, 48, 3), 90)
}

fn thumb(width: u64) -> V {
    V::Array(vec![out("thumb", "jpeg", vec![("width", int(width))])])
}

fn ok(outputs: &[(&str, &str, u32, u32)]) -> Value {
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|(n, f, w, h)| json!({"name": n, "format": f, "width": w, "height": h}))
        .collect();
    json!({"status": "ok", "outputs": outputs})
}

fn error(code: &str, message_prefix: &str) -> Value {
    json!({"status": "error", "code": code, "retryable": false, "message_prefix": message_prefix})
}

fn job(name: &str, body: Vec<u8>, expect: Value) -> Value {
    json!({"name": name, "queue": "default", "deadline": "later", "body": b64(&body), "expect": expect})
}

fn jobs() -> Vec<Value> {
    let p = photo;
    let recipe = map(vec![
        ("canvas", map(vec![("width", int(96)), ("height", int(64))])),
        (
            "layers",
            V::Array(vec![
                map(vec![(
                    "photo",
                    map(vec![("input", V::Text("photo".into()))]),
                )]),
                map(vec![(
                    "text",
                    map(vec![
                        ("text", V::Text("Aurora".into())),
                        (
                            "box",
                            map(vec![
                                ("x", int(4)),
                                ("y", int(40)),
                                ("width", int(88)),
                                ("height", int(20)),
                            ]),
                        ),
                        ("size", int(20)),
                    ]),
                )]),
            ]),
        ),
    ]);
    let bad_recipe = map(vec![
        ("canvas", map(vec![("width", int(96)), ("height", int(64))])),
        (
            "layers",
            V::Array(vec![map(vec![(
                "text",
                map(vec![
                    ("text", V::Text("x".into())),
                    (
                        "box",
                        map(vec![
                            ("x", int(4)),
                            ("y", int(40)),
                            ("width", int(88)),
                            ("height", int(20)),
                        ]),
                    ),
                    ("size", int(900)),
                ]),
            )])]),
        ),
    ]);
    let preset = |name: &str| ("preset", V::Text(name.into()));
    let mut v = vec![
        job(
            "thumbnail",
            body(vec![("photo", p())], vec![("outputs", thumb(32))]),
            ok(&[("thumb", "jpeg", 32, 24)]),
        ),
        job(
            "recipe",
            body(
                vec![("photo", p())],
                vec![
                    ("recipe", recipe),
                    ("outputs", V::Array(vec![out("card", "png", vec![])])),
                ],
            ),
            ok(&[("card", "png", 96, 64)]),
        ),
        job(
            "preset",
            body(vec![("photo", p())], vec![preset("avatar")]),
            ok(&[("avatar", "webp", 32, 32)]),
        ),
        job(
            "preset_with_recipe_and_own_output",
            body(
                vec![("photo", p())],
                vec![preset("card"), ("outputs", thumb(16))],
            ),
            ok(&[("card", "png", 64, 48), ("thumb", "jpeg", 16, 12)]),
        ),
        job(
            "request.malformed",
            cbor(&V::Text("not a map".into())),
            error("request.malformed", "the body is not a CBOR map"),
        ),
        job(
            "request.malformed.field",
            body(
                vec![("photo", p())],
                vec![(
                    "outputs",
                    V::Array(vec![out(
                        "t",
                        "jpeg",
                        vec![("quality", V::Text("high".into()))],
                    )]),
                )],
            ),
            error("request.malformed", "outputs[0].quality:"),
        ),
        job(
            "request.unsupported_version",
            cbor(&map(vec![("v", int(2))])),
            error("request.unsupported_version", ""),
        ),
        job(
            "request.too_large",
            body(
                vec![("photo", vec![0; 70_000])],
                vec![("outputs", thumb(32))],
            ),
            error("request.too_large", ""),
        ),
        job(
            "request.invalid",
            body(
                vec![("photo", p())],
                vec![(
                    "outputs",
                    V::Array(vec![out("t", "jpeg", vec![("quality", int(900))])]),
                )],
            ),
            error("request.invalid", "outputs[0].quality:"),
        ),
        job(
            "request.invalid.preset",
            body(vec![("photo", p())], vec![preset("nope")]),
            error("request.invalid", "preset:"),
        ),
        job(
            "input.empty",
            body(vec![("photo", vec![])], vec![("outputs", thumb(32))]),
            error("input.empty", "inputs.photo:"),
        ),
        job(
            "input.too_large",
            body(
                vec![("photo", vec![0; 40_000])],
                vec![("outputs", thumb(32))],
            ),
            error("input.too_large", "inputs.photo:"),
        ),
        job(
            "input.unsupported_format",
            body(
                vec![("photo", [b"BM".as_slice(), &[0; 62]].concat())],
                vec![("outputs", thumb(32))],
            ),
            error("input.unsupported_format", "inputs.photo:"),
        ),
        job(
            "input.undecodable",
            body(
                vec![("photo", hostile::truncated(&p(), 300))],
                vec![("outputs", thumb(32))],
            ),
            error("input.undecodable", "inputs.photo:"),
        ),
        job(
            "limits.inputs",
            body(
                ["a", "b", "c", "d", "e"].map(|n| (n, vec![1])).to_vec(),
                vec![("outputs", thumb(32))],
            ),
            error("limits.inputs", ""),
        ),
        job(
            "limits.pixels",
            body(
                vec![("photo", hostile::png_header_only(30_000, 30_000))],
                vec![("outputs", thumb(32))],
            ),
            error("limits.pixels", "inputs.photo:"),
        ),
        job(
            "limits.frames",
            body(
                vec![("photo", hostile::gif_many_frames(11))],
                vec![("outputs", thumb(32))],
            ),
            error("limits.frames", "inputs.photo:"),
        ),
        job(
            "limits.output",
            body(vec![("photo", p())], vec![("outputs", thumb(9000))]),
            error("limits.output", "outputs[0].width:"),
        ),
        job(
            "limits.complexity",
            body(
                vec![("photo", hostile::jpeg_many_scans(16, 16, 101))],
                vec![("outputs", thumb(32))],
            ),
            error("limits.complexity", "inputs.photo:"),
        ),
        job(
            "recipe.invalid",
            body(
                vec![("photo", p())],
                vec![("recipe", bad_recipe), ("outputs", thumb(32))],
            ),
            error("recipe.invalid", "recipe.layers[0].text.size:"),
        ),
    ];
    let mut expired = job(
        "job.expired",
        body(vec![("photo", p())], vec![("outputs", thumb(32))]),
        error("job.expired", ""),
    );
    expired["deadline"] = json!("past");
    v.push(expired);
    let mut required = job(
        "request.preset_required",
        body(vec![("photo", p())], vec![("outputs", thumb(32))]),
        error("request.preset_required", "preset:"),
    );
    required["queue"] = json!("presets_only");
    v.push(required);
    let mut only = job(
        "presets_only.preset",
        body(vec![("photo", p())], vec![preset("avatar")]),
        ok(&[("avatar", "webp", 32, 32)]),
    );
    only["queue"] = json!("presets_only");
    v.push(only);
    v
}

/// The documented attestation vector with the exact bytes a verifier signs and checks.
fn attestation() -> Value {
    let signer = ReceiptSigner::from_seed(&SEED);
    let facts = midnit_worker::wipe::vector_attested(&signer);
    let cose = signer.attest(&facts);
    let sign1: Vec<V> = match ciborium::from_reader::<V, _>(cose.as_slice()).unwrap() {
        V::Tag(18, inner) => match *inner {
            V::Array(items) => items,
            _ => unreachable!(),
        },
        _ => unreachable!(),
    };
    let (protected, payload) = (sign1[0].as_bytes().unwrap(), sign1[2].as_bytes().unwrap());
    let sig_structure = cbor(&V::Array(vec![
        V::Text("Signature1".into()),
        V::Bytes(protected.clone()),
        V::Bytes(vec![]),
        V::Bytes(payload.clone()),
    ]));
    json!({
        "public_key": hex(&signer.public_key()),
        "attestation": hex(&cose),
        "sig_structure": hex(&sig_structure),
        "signature": hex(sign1[3].as_bytes().unwrap()),
        "request_body": b64(b"request body"),
        "correlation_id": "job-1",
        "facts": {
            "status": "ok",
            "time": facts.time,
            "outputs": [{"name": "thumb", "format": "jpeg", "width": 512, "height": 384,
                         "sha256": hex(&midnit_worker::wipe::sha256(b"output bytes"))}],
            "receipt": serde_json::to_value(&facts.receipt).unwrap(),
        },
    })
}

/// The whole vectors file.
pub fn vectors() -> Value {
    json!({
        "about": "Conformance vectors of the midnit-worker contract v1. Run each job's body \
                  (base64) against a worker started with docs/contract/worker.toml and the \
                  test receipt key (seed 0x11 x 32): `queue` default is its plain queue, \
                  presets_only a second worker with MIDNIT_PRESETS_ONLY=true; `deadline` past \
                  means a deadline header already passed. Check status, outputs (name, format, \
                  width, height, in order) or code, retryable and that the message starts with \
                  message_prefix, and every reply's attestation against public_key. \
                  `attestation` is an offline vector: its sig_structure is the exact signed \
                  bytes.",
        "public_key": hex(&ReceiptSigner::from_seed(&SEED).public_key()),
        "attestation": attestation(),
        "jobs": jobs(),
    })
}

pub const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/contract/vectors.json");

#[test]
fn the_committed_vectors_are_the_ones_this_file_makes() {
    let made = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("CONTRACT_WRITE").is_some() {
        std::fs::write(PATH, &made).unwrap();
    }
    let committed = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        committed == made,
        "docs/contract/vectors.json is stale: run `CONTRACT_WRITE=1 cargo test --test it vectors`"
    );
}
