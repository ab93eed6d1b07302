//! Receipts and their attestation: every reply carries a COSE_Sign1 message (RFC 9052, EdDSA/ed25519) whose
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

use coset::{iana, CborSerializable, TaggedCborSerializable};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

/// How an artifact was destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WipeMethod {
    /// The whole allocation was overwritten with zeros (`explicit_bzero`) before being freed.
    Zeroize,
    /// A spill file was overwritten with zeros, fsynced, read back and checked, then unlinked.
    OverwriteVerifyUnlink,
    /// The wipe was attempted and failed; `error` says how. Never silently omitted.
    Failed,
}

/// One destroyed artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WipeEntry {
    /// What it was: `request.body`, `input.photo`, `pixels.photo.decoded`, `output.thumb`, …
    pub artifact: String,
    /// How many bytes of job data it held.
    pub bytes: u64,
    /// How it was destroyed.
    pub method: WipeMethod,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Why the wipe failed (only with `method: failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which process held and wiped it: absent for the worker itself, `renderer` for the
    /// single-use renderer process of the isolated executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

/// What was wiped for one job, when and how; carried in every reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// When the worker received the job (ms since the Unix epoch).
    pub started_at_ms: u64,
    /// When the receipt was sealed into the reply.
    pub sealed_at_ms: u64,
    /// Sum of `bytes` over the successful entries.
    pub wiped_bytes: u64,
    /// Number of failed wipes (each also listed in `wiped` with `method: failed`).
    pub failures: u32,
    /// Every destroyed artifact, in the order it was destroyed.
    pub wiped: Vec<WipeEntry>,
    /// For a sealed job: the epoch whose key opened it, the digest of the sealed request, and
    /// when that key is erased (after which no stored copy of the request can be opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedFacts>,
}

/// What the receipt of a sealed job adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedFacts {
    /// The epoch the request was sealed to.
    pub epoch: u64,
    /// SHA-256 of the sealed request as the worker received it.
    pub request_sha256: ByteBuf,
    /// When the worker erases that epoch's private key at the latest (ms since the Unix
    /// epoch).
    pub key_erased_by_ms: u64,
}

impl Receipt {
    /// The entry for `artifact`, if it was wiped.
    pub fn entry(&self, artifact: &str) -> Option<&WipeEntry> {
        self.wiped.iter().find(|e| e.artifact == artifact)
    }
}

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

/// Why a reply's attestation does not vouch for it.
#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    /// The reply carries no attestation.
    #[error("the reply is not attested")]
    Missing,
    /// The signature is bad, or made with another key than the pinned one.
    #[error(transparent)]
    Signature(#[from] VerifyError),
    /// The signature is good but the facts differ from this reply or request.
    #[error("the attestation does not match the reply: {0}")]
    Differs(&'static str),
}

impl crate::wire::Reply {
    /// Checks the reply's attestation against the pinned public key, the correlation id and
    /// request body it answers, and its own status, outputs and receipt.
    pub fn verify(
        &self,
        pinned_key: &[u8; 32],
        correlation_id: Option<&str>,
        request_body: &[u8],
    ) -> Result<Attested, AttestationError> {
        let cose = self.attestation.as_ref().ok_or(AttestationError::Missing)?;
        let facts = verify(cose, pinned_key)?;
        let status = match self.status {
            crate::wire::Status::Ok => "ok",
            crate::wire::Status::Error => "error",
        };
        if facts.status != status
            || facts.code.as_deref() != self.error.as_ref().map(|e| e.code.as_str())
        {
            return Err(AttestationError::Differs("status"));
        }
        if facts.correlation_id.as_deref() != correlation_id {
            return Err(AttestationError::Differs("correlation id"));
        }
        if facts.request.as_slice() != sha256(request_body) {
            return Err(AttestationError::Differs("request digest"));
        }
        let outputs_match = facts.outputs.len() == self.outputs.len()
            && facts.outputs.iter().zip(&self.outputs).all(|(a, o)| {
                a.name == o.name
                    && a.format == o.format
                    && (a.width, a.height) == (o.width, o.height)
                    && a.sha256.as_slice() == sha256(&o.data)
            });
        if !outputs_match {
            return Err(AttestationError::Differs("outputs"));
        }
        if facts.receipt != self.receipt {
            return Err(AttestationError::Differs("receipt"));
        }
        Ok(facts)
    }
}
