//! Sealed jobs across implementations: what the Python package seals the Rust crate opens,
//! and the other way round (HPKE, RFC 9180 base mode, X25519 / HKDF-SHA256 /
//! ChaCha20-Poly1305, over two independent code bases: the `hpke` crate and the Python
//! package's own HPKE over `cryptography`).

use midnit_client::sealed::{open_request, seal_reply, EpochChain, SealError};

fn python(script: &str, args: &[String]) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .current_dir("/")
        .output()
        .expect("python3 runs (pip install ./clients/python)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn unhex(v: &serde_json::Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).unwrap())
        .collect()
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
    let keys = EpochChain::new(5, [9; 32]).keys();
    let body = b"a v1 request body".to_vec();
    let hex = midnit_worker::wipe::hex;
    let made = python(SEAL, &["5".into(), hex(&keys.public_key()), hex(&body)]);
    let sealed = unhex(&made["sealed"]);
    assert!(
        !sealed.windows(body.len()).any(|w| w == body),
        "plaintext on the wire"
    );
    let opened = open_request(&keys, &sealed).expect("Rust opens what Python sealed");
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
    let back = python(OPEN, &[private.clone(), hex(&sealed), hex(&reply)]);
    assert_eq!(unhex(&back["body"]), b"a v1 reply");
    // A relay that edits one byte gets a refusal, not a different reply.
    let mut edited = reply.clone();
    let last = edited.len() - 1;
    edited[last] ^= 1;
    let refused = python(OPEN, &[private, hex(&sealed), hex(&edited)]);
    assert_eq!(refused["refused"], true);
}
