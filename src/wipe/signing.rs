//! Attested receipts: every reply carries a COSE_Sign1 message (RFC 9052, EdDSA/ed25519) whose
//! payload binds what the worker attests — the job's status or error code, a SHA-256 of the
//! request body, a SHA-256 of every output, the correlation id, the receipt, the signing key's
//! id and the time — so a receipt cannot be moved onto another reply, another request or
//! another outcome.
//!
//! The payload is deterministic CBOR (RFC 8949 §4.2.1: definite lengths, shortest forms, map
//! keys in bytewise order of their encodings). A verifier never re-encodes it: it checks the
//! signature over COSE's `Sig_structure` — `["Signature1", protected, h'', payload]`, an array
//! every CBOR library encodes the same way — then decodes the payload and compares it with the
//! reply. Verification needs the worker's public key, pinned by the verifier; the key id in the
//! protected header only says which pinned key to use.
//!
//! What a signature proves: the attested facts came from a process holding the worker's key.
//! What it cannot prove: that the code holding the key told the truth — a receipt is evidence
//! from the worker's own wiping code, not an external audit (see docs/PRIVACY.md).

use super::Receipt;
use coset::{iana, CborSerializable, TaggedCborSerializable};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// One output as attested: what it is and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedOutput {
    /// The output's name.
    pub name: String,
    /// Its format's wire name.
    pub format: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// SHA-256 of the encoded image.
    pub sha256: ByteBuf,
}

/// What a reply's attestation binds (the COSE payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attested {
    /// Attestation format version: 1.
    pub v: u32,
    /// The signing key's id: the first 8 bytes of the SHA-256 of its public key.
    pub kid: ByteBuf,
    /// When the attestation was made, in milliseconds since the Unix epoch.
    pub time: u64,
    /// `ok` or `error`.
    pub status: String,
    /// The error code, for `status: error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// SHA-256 of the request body as the worker received it.
    pub request: ByteBuf,
    /// The outputs, in reply order (empty for an error).
    pub outputs: Vec<AttestedOutput>,
    /// The job's receipt.
    pub receipt: Receipt,
    /// The request's correlation id.
    pub correlation_id: Option<String>,
}

/// Why an attestation does not check out.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a COSE_Sign1 message of the expected shape.
    #[error("malformed attestation: {0}")]
    Malformed(&'static str),
    /// Signed by another key than the one pinned.
    #[error("signed by key id {found}, not the pinned key's {expected}")]
    WrongKey {
        /// The key id in the message.
        found: String,
        /// The pinned key's id.
        expected: String,
    },
    /// The signature does not match.
    #[error("the signature does not match the attested payload")]
    Mismatch,
}

/// A key loading failure.
#[derive(Debug, thiserror::Error)]
#[error("receipt key {path}: {message}")]
pub struct KeyError {
    path: String,
    message: String,
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The key id of an ed25519 public key: the first 8 bytes of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> [u8; 8] {
    let digest = sha256(public_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

/// `value` as deterministic CBOR (RFC 8949 §4.2.1): map keys sorted by their encodings.
pub fn deterministic_cbor(value: &impl Serialize) -> Vec<u8> {
    fn encoded(v: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).expect("writing to memory cannot fail");
        out
    }
    fn sort(v: &mut ciborium::Value) {
        match v {
            ciborium::Value::Map(entries) => {
                for (k, val) in entries.iter_mut() {
                    sort(k);
                    sort(val);
                }
                entries.sort_by_cached_key(|(k, _)| encoded(k));
            }
            ciborium::Value::Array(items) => items.iter_mut().for_each(sort),
            ciborium::Value::Tag(_, inner) => sort(inner),
            _ => {}
        }
    }
    let mut tree = ciborium::Value::serialized(value).expect("attested values are plain data");
    sort(&mut tree);
    encoded(&tree)
}

/// The worker's receipt-signing key.
pub struct ReceiptSigner {
    key: SigningKey,
}

impl ReceiptSigner {
    /// A fresh key from the kernel's random source.
    pub fn generate() -> std::io::Result<Self> {
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
        let key = SigningKey::from_bytes(&seed);
        super::wipe_bytes(&mut seed);
        Ok(Self { key })
    }

    /// A key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// A key from a file holding its 32-byte seed as 64 hex digits.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let err = |message: String| KeyError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let seed =
            parse_hex::<32>(text.trim()).ok_or_else(|| err("expected 64 hex digits".into()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key, as 64 hex digits.
    pub fn public_key_hex(&self) -> String {
        hex(&self.public_key())
    }

    /// This key's id (see [`key_id`]).
    pub fn key_id(&self) -> [u8; 8] {
        key_id(&self.public_key())
    }

    /// Signs `payload` (deterministic CBOR of an [`Attested`]) as a tagged COSE_Sign1 message.
    pub fn attest(&self, attested: &Attested) -> Vec<u8> {
        let payload = deterministic_cbor(attested);
        let protected = coset::HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(self.key_id().to_vec())
            .build();
        coset::CoseSign1Builder::new()
            .protected(protected)
            .payload(payload)
            .create_signature(&[], |data| self.key.sign(data).to_bytes().to_vec())
            .build()
            .to_tagged_vec()
            .expect("a COSE_Sign1 of plain bytes encodes")
    }
}

/// Checks a tagged COSE_Sign1 attestation against the pinned public key and returns its
/// payload. The caller then compares the payload with the reply it came in.
pub fn verify(attestation: &[u8], pinned_key: &[u8; 32]) -> Result<Attested, VerifyError> {
    let sign1 = coset::CoseSign1::from_tagged_slice(attestation)
        .or_else(|_| coset::CoseSign1::from_slice(attestation))
        .map_err(|_| VerifyError::Malformed("not a COSE_Sign1 message"))?;
    let alg = &sign1.protected.header.alg;
    if *alg
        != Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::EdDSA,
        ))
    {
        return Err(VerifyError::Malformed("not signed with EdDSA"));
    }
    let expected = key_id(pinned_key);
    if sign1.protected.header.key_id != expected {
        return Err(VerifyError::WrongKey {
            found: hex(&sign1.protected.header.key_id),
            expected: hex(&expected),
        });
    }
    let verifying =
        VerifyingKey::from_bytes(pinned_key).map_err(|_| VerifyError::Malformed("public key"))?;
    sign1.verify_signature(&[], |sig, data| {
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| VerifyError::Malformed("signature"))?;
        verifying
            .verify(data, &Signature::from_bytes(&sig))
            .map_err(|_| VerifyError::Mismatch)
    })?;
    let payload = sign1.payload.ok_or(VerifyError::Malformed("no payload"))?;
    ciborium::from_reader(payload.as_slice()).map_err(|_| VerifyError::Malformed("payload"))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `2 * N` hex digits.
pub fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
