//! Signed receipts: the worker signs each receipt (ed25519) together with the job's
//! correlation id, so a backend can show that *this* worker issued *this* receipt for *this*
//! job, and that nobody edited it since.
//!
//! What a signature proves: the receipt's content came from a process holding the worker's
//! key. What it cannot prove: that the code holding the key told the truth — a receipt is
//! evidence from the worker's own wiping code, not an external audit (see docs/PRIVACY.md).

use super::Receipt;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;

/// A receipt signature as carried in a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptSignature {
    /// Always `ed25519`.
    pub alg: String,
    /// The signer's public key (32 bytes).
    pub key: serde_bytes::ByteBuf,
    /// The signature (64 bytes) over [`signed_bytes`].
    pub sig: serde_bytes::ByteBuf,
}

/// Why a signature does not check out.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The signature is malformed.
    #[error("malformed signature: {0}")]
    Malformed(&'static str),
    /// Signed by another key than the one expected.
    #[error("signed by {found}, expected {expected}")]
    WrongKey {
        /// The key in the signature.
        found: String,
        /// The key the verifier trusts.
        expected: String,
    },
    /// The signature does not match the receipt and correlation id.
    #[error("the signature does not match this receipt")]
    Mismatch,
}

/// A key loading failure.
#[derive(Debug, thiserror::Error)]
#[error("receipt key {path}: {message}")]
pub struct KeyError {
    path: String,
    message: String,
}

/// The bytes a signature covers: CBOR of `{"v": 1, "correlation_id": …, "receipt": …}`.
pub fn signed_bytes(correlation_id: Option<&str>, receipt: &Receipt) -> Vec<u8> {
    #[derive(Serialize)]
    struct Signed<'a> {
        v: u32,
        correlation_id: Option<&'a str>,
        receipt: &'a Receipt,
    }
    let mut out = Vec::new();
    let signed = Signed {
        v: 1,
        correlation_id,
        receipt,
    };
    ciborium::into_writer(&signed, &mut out).expect("writing to memory cannot fail");
    out
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

    /// A key from a file holding its 32-byte seed as 64 hex digits.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let err = |message: String| KeyError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let seed =
            parse_hex::<32>(text.trim()).ok_or_else(|| err("expected 64 hex digits".into()))?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The public key, as 64 hex digits.
    pub fn public_key_hex(&self) -> String {
        hex(&self.key.verifying_key().to_bytes())
    }

    /// Signs `receipt` for the job `correlation_id`.
    pub fn sign(&self, correlation_id: Option<&str>, receipt: &Receipt) -> ReceiptSignature {
        let sig = self.key.sign(&signed_bytes(correlation_id, receipt));
        ReceiptSignature {
            alg: "ed25519".into(),
            key: serde_bytes::ByteBuf::from(self.key.verifying_key().to_bytes().to_vec()),
            sig: serde_bytes::ByteBuf::from(sig.to_bytes().to_vec()),
        }
    }
}

/// Checks a signature; with `trusted_key`, also that it was made with that key.
pub fn verify(
    correlation_id: Option<&str>,
    receipt: &Receipt,
    signature: &ReceiptSignature,
    trusted_key: Option<&str>,
) -> Result<String, VerifyError> {
    if signature.alg != "ed25519" {
        return Err(VerifyError::Malformed("unknown algorithm"));
    }
    let key: [u8; 32] = signature
        .key
        .as_slice()
        .try_into()
        .map_err(|_| VerifyError::Malformed("key length"))?;
    let sig: [u8; 64] = signature
        .sig
        .as_slice()
        .try_into()
        .map_err(|_| VerifyError::Malformed("signature length"))?;
    let found = hex(&key);
    if let Some(expected) = trusted_key {
        if !found.eq_ignore_ascii_case(expected.trim()) {
            return Err(VerifyError::WrongKey {
                found,
                expected: expected.trim().into(),
            });
        }
    }
    let verifying = VerifyingKey::from_bytes(&key).map_err(|_| VerifyError::Malformed("key"))?;
    verifying
        .verify(
            &signed_bytes(correlation_id, receipt),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| VerifyError::Mismatch)?;
    Ok(found)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
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
mod tests {
    use super::*;
    use crate::wipe::Ledger;

    fn receipt() -> Receipt {
        let ledger = Ledger::new();
        crate::wipe::SecretBuf::new(vec![1; 10], "input.photo", &ledger).wipe();
        ledger.receipt(1)
    }

    #[test]
    fn a_signed_receipt_verifies_and_an_edited_one_does_not() {
        let signer = ReceiptSigner::generate().unwrap();
        let r = receipt();
        let sig = signer.sign(Some("job-1"), &r);
        let key = signer.public_key_hex();
        assert_eq!(verify(Some("job-1"), &r, &sig, Some(&key)).unwrap(), key);
        let mut edited = r.clone();
        edited.wiped[0].bytes += 1;
        assert!(matches!(
            verify(Some("job-1"), &edited, &sig, None),
            Err(VerifyError::Mismatch)
        ));
        assert!(matches!(
            verify(Some("job-2"), &r, &sig, None),
            Err(VerifyError::Mismatch)
        ));
        let other = ReceiptSigner::generate().unwrap().public_key_hex();
        assert!(matches!(
            verify(Some("job-1"), &r, &sig, Some(&other)),
            Err(VerifyError::WrongKey { .. })
        ));
    }

    #[test]
    fn a_key_file_holds_a_hex_seed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "11".repeat(32)).unwrap();
        let a = ReceiptSigner::from_file(&path).unwrap();
        let b = ReceiptSigner::from_file(&path).unwrap();
        assert_eq!(a.public_key_hex(), b.public_key_hex());
        std::fs::write(&path, "nothex").unwrap();
        assert!(ReceiptSigner::from_file(&path).is_err());
    }
}
