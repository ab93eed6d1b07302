//! The signed key directory: the epochs' public keys a client seals to, with when each may be
//! used, signed by the fleet's long-term directory key (ed25519). The app pins the directory
//! key's public half, so a backend can relay the directory to devices without being trusted:
//! a directory that is unsigned, signed by another key, stale or malformed is refused.
//!
//! Wire shape (CBOR): `{"v": 1, "body": bstr, "sig": bstr .size 64}`, where `sig` is the
//! Ed25519 signature of `"midnit key directory v1" || body` and `body` is
//! `{"issued_ms": uint, "expires_ms": uint, "suite": tstr, "keys": [+ {"epoch": uint,
//! "public_key": bstr .size 32, "not_before_ms": uint, "not_after_ms": uint}]}`. A verifier
//! checks the signature over the bytes of `body` as received, then decodes them.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// What the signature covers before the body.
const CONTEXT: &[u8] = b"midnit key directory v1";
/// The HPKE suite every key of the directory is for.
pub const SUITE: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305";
/// How far a directory's issue time may lie in the future (clock skew between worker and
/// client).
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// One epoch's key as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryKey {
    /// The epoch number.
    pub epoch: u64,
    /// Its X25519 public key.
    pub public_key: ByteBuf,
    /// When clients may start sealing to it (ms since the Unix epoch).
    pub not_before_ms: u64,
    /// When clients stop sealing to it; workers still open it for their grace period.
    pub not_after_ms: u64,
}

/// A verified key directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDirectory {
    /// When it was signed.
    pub issued_ms: u64,
    /// After this it is stale and refused.
    pub expires_ms: u64,
    /// The HPKE suite ([`SUITE`]).
    pub suite: String,
    /// The current and next epochs' keys.
    pub keys: Vec<DirectoryKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signed {
    v: u32,
    body: ByteBuf,
    sig: ByteBuf,
}

/// Why a directory is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    /// Not the CBOR shape of a signed directory, or a field out of range.
    #[error("not a key directory: {0}")]
    Malformed(&'static str),
    /// The signature is missing, invalid, or made by a key other than the pinned one.
    #[error("the key directory is not signed by the pinned directory key")]
    Signature,
    /// Expired, or issued in the future.
    #[error("the key directory is stale (expired or not yet valid): fetch it again")]
    Stale,
    /// No key of the directory may be sealed to now.
    #[error("no key of the directory is valid now: fetch it again")]
    NoCurrentKey,
}

impl KeyDirectory {
    /// Signs the directory with the fleet's directory key.
    pub fn sign(&self, key: &SigningKey) -> Vec<u8> {
        let mut body = Vec::new();
        ciborium::into_writer(self, &mut body).expect("writing to memory cannot fail");
        let sig = key.sign(&[CONTEXT, &body].concat());
        let mut out = Vec::new();
        let signed = Signed {
            v: 1,
            body: ByteBuf::from(body),
            sig: ByteBuf::from(sig.to_bytes().to_vec()),
        };
        ciborium::into_writer(&signed, &mut out).expect("writing to memory cannot fail");
        out
    }

    /// Checks `bytes` against the pinned directory public key and the time `now_ms`, and
    /// returns the directory they hold.
    pub fn verify(bytes: &[u8], pinned: &[u8; 32], now_ms: u64) -> Result<Self, DirectoryError> {
        let signed: Signed =
            ciborium::from_reader(bytes).map_err(|_| DirectoryError::Malformed("envelope"))?;
        if signed.v != 1 {
            return Err(DirectoryError::Malformed("version"));
        }
        let key = VerifyingKey::from_bytes(pinned).map_err(|_| DirectoryError::Signature)?;
        let sig: [u8; 64] = signed
            .sig
            .as_slice()
            .try_into()
            .map_err(|_| DirectoryError::Signature)?;
        key.verify_strict(
            &[CONTEXT, signed.body.as_slice()].concat(),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| DirectoryError::Signature)?;
        let dir: Self = ciborium::from_reader(signed.body.as_slice())
            .map_err(|_| DirectoryError::Malformed("body"))?;
        if dir.suite != SUITE {
            return Err(DirectoryError::Malformed("suite"));
        }
        if dir.keys.is_empty() || dir.keys.len() > 8 {
            return Err(DirectoryError::Malformed("keys"));
        }
        if dir
            .keys
            .iter()
            .any(|k| k.public_key.len() != 32 || k.not_after_ms <= k.not_before_ms)
        {
            return Err(DirectoryError::Malformed("keys"));
        }
        if now_ms > dir.expires_ms || dir.issued_ms > now_ms.saturating_add(MAX_SKEW_MS) {
            return Err(DirectoryError::Stale);
        }
        Ok(dir)
    }

    /// The key to seal to at `now_ms`: the newest epoch whose window holds `now_ms`.
    pub fn key_for(&self, now_ms: u64) -> Result<(u64, [u8; 32]), DirectoryError> {
        self.keys
            .iter()
            .filter(|k| k.not_before_ms <= now_ms && now_ms < k.not_after_ms)
            .max_by_key(|k| k.epoch)
            .and_then(|k| Some((k.epoch, k.public_key.as_slice().try_into().ok()?)))
            .ok_or(DirectoryError::NoCurrentKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> KeyDirectory {
        KeyDirectory {
            issued_ms: 1_000,
            expires_ms: 10_000,
            suite: SUITE.into(),
            keys: vec![
                DirectoryKey {
                    epoch: 4,
                    public_key: ByteBuf::from(vec![4; 32]),
                    not_before_ms: 0,
                    not_after_ms: 5_000,
                },
                DirectoryKey {
                    epoch: 5,
                    public_key: ByteBuf::from(vec![5; 32]),
                    not_before_ms: 5_000,
                    not_after_ms: 10_000,
                },
            ],
        }
    }

    #[test]
    fn a_signed_directory_verifies_with_its_key_only_and_only_while_fresh() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pinned = key.verifying_key().to_bytes();
        let bytes = directory().sign(&key);
        let dir = KeyDirectory::verify(&bytes, &pinned, 2_000).unwrap();
        assert_eq!(dir, directory());
        assert_eq!(dir.key_for(2_000).unwrap(), (4, [4; 32]));
        assert_eq!(dir.key_for(7_000).unwrap(), (5, [5; 32]));
        assert_eq!(dir.key_for(10_000), Err(DirectoryError::NoCurrentKey));
        assert_eq!(
            KeyDirectory::verify(&bytes, &pinned, 10_001),
            Err(DirectoryError::Stale)
        );
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert_eq!(
            KeyDirectory::verify(&bytes, &other, 2_000),
            Err(DirectoryError::Signature)
        );
        let too_early = KeyDirectory {
            issued_ms: 2_000 + MAX_SKEW_MS + 1,
            expires_ms: u64::MAX,
            ..directory()
        };
        assert_eq!(
            KeyDirectory::verify(&too_early.sign(&key), &pinned, 2_000),
            Err(DirectoryError::Stale)
        );
    }

    #[test]
    fn an_edited_or_unsigned_directory_is_refused() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pinned = key.verifying_key().to_bytes();
        let mut signed: Signed = ciborium::from_reader(&directory().sign(&key)[..]).unwrap();
        let mut body: KeyDirectory = ciborium::from_reader(signed.body.as_slice()).unwrap();
        body.keys[0].public_key = ByteBuf::from(vec![6; 32]);
        let mut edited = Vec::new();
        ciborium::into_writer(&body, &mut edited).unwrap();
        signed.body = ByteBuf::from(edited);
        let mut bytes = Vec::new();
        ciborium::into_writer(&signed, &mut bytes).unwrap();
        assert_eq!(
            KeyDirectory::verify(&bytes, &pinned, 2_000),
            Err(DirectoryError::Signature)
        );
        signed.sig = ByteBuf::new();
        let mut unsigned = Vec::new();
        ciborium::into_writer(&signed, &mut unsigned).unwrap();
        assert_eq!(
            KeyDirectory::verify(&unsigned, &pinned, 2_000),
            Err(DirectoryError::Signature)
        );
        assert!(matches!(
            KeyDirectory::verify(b"\xa0", &pinned, 2_000),
            Err(DirectoryError::Malformed(_))
        ));
    }
}
