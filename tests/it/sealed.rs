//! Sealed jobs across implementations: what the Python and TypeScript packages seal the Rust
//! crate opens, and the other way round (HPKE, RFC 9180 base mode, X25519 / HKDF-SHA256 /
//! ChaCha20-Poly1305, over three independent code bases: the `hpke` crate, the Python
//! package's own HPKE over `cryptography`, and the TypeScript one over Node's crypto).

use midnit_client::sealed::{open_request, seal_reply, EpochChain, SealError};

/// A client's two scripts: seal a request, open a reply.
struct Peer {
    program: &'static str,
    dir: &'static str,
    seal: &'static str,
    open: &'static str,
}

const PYTHON: Peer = Peer {
    program: "python3",
    dir: "/",
    seal: SEAL,
    open: OPEN,
};

const NODE: Peer = Peer {
    program: "node",
    dir: concat!(env!("CARGO_MANIFEST_DIR"), "/clients/typescript"),
    seal: NODE_SEAL,
    open: NODE_OPEN,
};

const NODE_SEAL: &str = r#"
const { sealed } = require("./dist");
const [epoch, pk, body] = process.argv.slice(1);
const [req, reply] = sealed.sealRequest(Number(epoch), Buffer.from(pk, "hex"), Buffer.from(body, "hex"));
const raw = reply.privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32);
console.log(JSON.stringify({ sealed: req.toString("hex"), reply_private: raw.toString("hex") }));
"#;

const NODE_OPEN: &str = r#"
const { sealed } = require("./dist");
const [key, req, rep] = process.argv.slice(1).map((h) => Buffer.from(h, "hex"));
try {
  console.log(JSON.stringify({ body: sealed.openReply(sealed.ReplyKeys.fromPrivate(key), req, rep).toString("hex") }));
} catch (e) {
  if (!(e instanceof sealed.SealError)) throw e;
  console.log(JSON.stringify({ refused: true }));
}
"#;

fn run(peer: &Peer, script: &str, args: &[String]) -> serde_json::Value {
    let flag = if peer.program == "node" { "-e" } else { "-c" };
    let out = std::process::Command::new(peer.program)
        .arg(flag)
        .arg(script)
        .args(args)
        .current_dir(peer.dir)
        .output()
        .expect("the client runs (pip install ./clients/python; npm ci && npm run build)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn unhex(v: &serde_json::Value) -> Vec<u8> {
    crate::harness::unhex(v.as_str().unwrap())
}

const SEAL: &str = r#"
import json, sys
from cryptography.hazmat.primitives import serialization as z
from midnit_client import sealed
req, reply = sealed.seal_request(int(sys.argv[1]), bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]))
key = reply.private.private_bytes(z.Encoding.Raw, z.PrivateFormat.Raw, z.NoEncryption())
print(json.dumps({"sealed": req.hex(), "reply_private": key.hex()}))
"#;

const OPEN: &str = r#"
import json, sys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from midnit_client import sealed
keys = sealed.ReplyKeys(X25519PrivateKey.from_private_bytes(bytes.fromhex(sys.argv[1])))
try:
    body = sealed.open_reply(keys, bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]))
    print(json.dumps({"body": body.hex()}))
except sealed.SealError:
    print(json.dumps({"refused": True}))
"#;

#[test]
fn python_seals_a_request_rust_opens_it_and_the_sealed_reply_opens_in_python() {
    round_trip(&PYTHON);
}

#[test]
fn typescript_seals_a_request_rust_opens_it_and_the_sealed_reply_opens_in_typescript() {
    round_trip(&NODE);
}

fn round_trip(peer: &Peer) {
    let keys = EpochChain::new(5, [9; 32]).keys();
    let body = b"a v1 request body".to_vec();
    let hex = midnit_worker::wipe::hex;
    let made = run(
        peer,
        peer.seal,
        &["5".into(), hex(&keys.public_key()), hex(&body)],
    );
    let sealed = unhex(&made["sealed"]);
    assert!(
        !sealed.windows(body.len()).any(|w| w == body),
        "plaintext on the wire"
    );
    let opened = open_request(&keys, &sealed)
        .unwrap_or_else(|e| panic!("Rust opens what {} sealed: {e}", peer.program));
    assert_eq!(opened.body.as_slice(), body);
    // Sealed for epoch 5, refused by epoch 6's keys.
    let mut later = EpochChain::new(5, [9; 32]);
    later.advance();
    assert_eq!(
        open_request(&later.keys(), &sealed).err(),
        Some(SealError::Open)
    );

    let reply = seal_reply(&opened.reply_key, &sealed, b"a v1 reply").unwrap();
    let private = made["reply_private"].as_str().unwrap().to_owned();
    let back = run(
        peer,
        peer.open,
        &[private.clone(), hex(&sealed), hex(&reply)],
    );
    assert_eq!(unhex(&back["body"]), b"a v1 reply");
    // A relay that edits one byte gets a refusal, not a different reply.
    let mut edited = reply.clone();
    let last = edited.len() - 1;
    edited[last] ^= 1;
    let refused = run(peer, peer.open, &[private, hex(&sealed), hex(&edited)]);
    assert_eq!(refused["refused"], true);
}

/// Where the sealed-job test vectors live: what a device implementation (docs/DEVICE.md)
/// checks itself against. Written with `CONTRACT_WRITE=1 cargo test --test it sealed_vectors`.
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/contract/sealed-vectors.json"
);
const ORIGIN_MS: u64 = 1_800_000_000_000;
const CHAIN_SEED: [u8; 32] = [0x5a; 32];
const DIRECTORY_SEED: [u8; 32] = [0x24; 32];

fn vector_state() -> midnit_worker::keys::KeyState {
    midnit_worker::keys::KeyState {
        epoch: 0,
        chain: zeroize::Zeroizing::new(CHAIN_SEED),
        origin_ms: ORIGIN_MS,
        epoch_secs: 3600,
        directory_key: zeroize::Zeroizing::new(DIRECTORY_SEED),
    }
}

/// Makes the vectors: the ratchet's first epochs, a signed directory at epoch 1, a real
/// request sealed to epoch 1 with a known reply key, and the worker's real sealed reply.
async fn make_vectors() -> serde_json::Value {
    use midnit_client::sealed::{seal_reply, seal_request, ReplyKeys};
    use midnit_worker::reply::process::{Delivery, Processor};
    let hex = midnit_worker::wipe::hex;
    let mut chain = EpochChain::new(0, CHAIN_SEED);
    let mut epochs = Vec::new();
    for _ in 0..3 {
        let keys = chain.keys();
        epochs.push(serde_json::json!({
            "epoch": chain.epoch(),
            "chain": hex(chain.chain()),
            "private_key": hex(keys.private_key().as_ref()),
            "public_key": hex(&keys.public_key()),
        }));
        chain.advance();
    }
    let at = ORIGIN_MS + 3_600_000 + 5_000;
    let ring = midnit_worker::keys::Keyring::new(vector_state(), None, 900, 1, at).unwrap();
    let directory = ring.directory(at);
    let photo = midnit_worker::tools::samples::jpeg(
        &midnit_worker::tools::samples::figure_photo(16, 12, 1),
        80,
    );
    let request = midnit_worker::protocol::Request::thumbnail(
        photo,
        midnit_worker::protocol::OutputSpec::new("thumb", "png").width(8),
    );
    let body = midnit_worker::protocol::encode_request(&request);
    let mut one = EpochChain::new(0, CHAIN_SEED);
    one.advance();
    let reply_keys = ReplyKeys::generate();
    let sealed = seal_request(1, &one.keys().public_key(), &body, &reply_keys).unwrap();
    let processor = Processor::local(&Default::default(), &Default::default());
    let reply = processor
        .process_one(Delivery::local(body.clone(), "vector-1"))
        .await;
    let reply_body = reply.body.as_slice().to_vec();
    let sealed_reply = seal_reply(&reply_keys.public_key(), &sealed, &reply_body).unwrap();
    serde_json::json!({
        "about": "Sealed jobs (contract v2): HPKE RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, empty aad. See docs/DEVICE.md. All byte strings are hex.",
        "ratchet": {
            "salt": hex(b"midnit epoch ratchet v1"),
            "seed": hex(&CHAIN_SEED),
            "epochs": epochs,
        },
        "directory": {
            "directory_public_key": hex(&ring.directory_public_key()),
            "verified_at_ms": at,
            "signed": hex(&directory),
        },
        "request": {
            "epoch": 1,
            "info": hex(&[b"midnit v2 request".as_slice(), &1u64.to_be_bytes()].concat()),
            "body": hex(&body),
            "reply_private_key": hex(reply_keys.private_key().as_ref()),
            "reply_public_key": hex(&reply_keys.public_key()),
            "sealed": hex(&sealed),
        },
        "reply": {
            "info": hex(&[b"midnit v2 reply".as_slice(), &midnit_worker::wipe::sha256(&sealed)].concat()),
            "body": hex(&reply_body),
            "sealed": hex(&sealed_reply),
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_vectors_open_in_rust_python_and_typescript() {
    use midnit_client::sealed::{open_reply, EpochKeys, ReplyKeys};
    if std::env::var_os("CONTRACT_WRITE").is_some() {
        let v = make_vectors().await;
        std::fs::write(VECTORS, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    // The ratchet from its seed.
    let mut chain = EpochChain::new(0, CHAIN_SEED);
    for e in v["ratchet"]["epochs"].as_array().unwrap() {
        assert_eq!(unhex(&e["chain"]), chain.chain());
        assert_eq!(unhex(&e["public_key"]), chain.keys().public_key());
        assert_eq!(unhex(&e["private_key"]), *chain.keys().private_key());
        chain.advance();
    }
    // The directory verifies with the directory key, names epochs 1 and 2.
    let dir_key: [u8; 32] = unhex(&v["directory"]["directory_public_key"])
        .try_into()
        .unwrap();
    let at = v["directory"]["verified_at_ms"].as_u64().unwrap();
    let signed = unhex(&v["directory"]["signed"]);
    let dir = midnit_client::KeyDirectory::verify(&signed, &dir_key, at).unwrap();
    assert_eq!(dir.key_for(at).unwrap().0, 1);
    assert_eq!(
        dir.keys[0].public_key.as_slice(),
        unhex(&v["ratchet"]["epochs"][1]["public_key"])
    );
    // The worker's side opens the request with epoch 1's private key; the reply opens with
    // the reply private key, to the body given.
    let private: [u8; 32] = unhex(&v["ratchet"]["epochs"][1]["private_key"])
        .try_into()
        .unwrap();
    let sealed = unhex(&v["request"]["sealed"]);
    let opened = open_request(&EpochKeys::from_private(1, &private).unwrap(), &sealed).unwrap();
    assert_eq!(opened.body.as_slice(), unhex(&v["request"]["body"]));
    assert_eq!(
        opened.reply_key.as_slice(),
        unhex(&v["request"]["reply_public_key"])
    );
    let reply_private: [u8; 32] = unhex(&v["request"]["reply_private_key"])
        .try_into()
        .unwrap();
    let sealed_reply = unhex(&v["reply"]["sealed"]);
    let reply_keys = ReplyKeys::from_private(&reply_private).unwrap();
    assert_eq!(
        open_reply(&reply_keys, &sealed, &sealed_reply).unwrap(),
        unhex(&v["reply"]["body"])
    );
    let reply = midnit_worker::protocol::decode_reply(&unhex(&v["reply"]["body"])).unwrap();
    assert_eq!(reply.outputs[0].width, 8);
    // Python and TypeScript open the same reply.
    for peer in [&PYTHON, &NODE] {
        let args = [
            v["request"]["reply_private_key"]
                .as_str()
                .unwrap()
                .to_owned(),
            v["request"]["sealed"].as_str().unwrap().to_owned(),
            v["reply"]["sealed"].as_str().unwrap().to_owned(),
        ];
        let back = run(peer, peer.open, &args);
        assert_eq!(
            unhex(&back["body"]),
            unhex(&v["reply"]["body"]),
            "{}",
            peer.program
        );
    }
}
