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
