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

pub use midnit_client::receipt::{
    deterministic_cbor, hex, key_id, parse_hex, sha256, verify, Attested, AttestedOutput,
    VerifyError,
};

use super::{Ledger, SecretBuf};
use coset::{iana, TaggedCborSerializable};
use ed25519_dalek::{Signer, SigningKey};
use serde_bytes::ByteBuf;
use std::io::Read;
use std::path::Path;

/// A key loading failure.
#[derive(Debug, thiserror::Error)]
#[error("receipt key {path}: {message}")]
pub struct KeyError {
    path: String,
    message: String,
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

/// The attested facts of the documented test vector (docs/PROTOCOL.md, and the conformance
/// vectors in docs/contract/): a job `job-1` with one 10-byte input and one output.
pub fn vector_attested(signer: &ReceiptSigner) -> Attested {
    let ledger = Ledger::new();
    SecretBuf::new(vec![1; 10], "input.photo", &ledger).wipe();
    let mut receipt = ledger.receipt(1_700_000_000_000);
    receipt.sealed_at_ms = 1_700_000_000_050;
    for e in &mut receipt.wiped {
        e.at_ms = 1_700_000_000_040;
    }
    Attested {
        v: 1,
        kid: ByteBuf::from(signer.key_id().to_vec()),
        time: 1_700_000_000_050,
        status: "ok".into(),
        code: None,
        request: ByteBuf::from(sha256(b"request body").to_vec()),
        outputs: vec![AttestedOutput {
            name: "thumb".into(),
            format: "jpeg".into(),
            width: 512,
            height: 384,
            sha256: ByteBuf::from(sha256(b"output bytes").to_vec()),
        }],
        receipt,
        correlation_id: Some("job-1".into()),
    }
}

#[cfg(test)]
mod tests;
