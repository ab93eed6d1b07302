"""Receipt attestations: a tagged COSE_Sign1 message (RFC 9052), EdDSA over ed25519.

The signed bytes are the CBOR array ``["Signature1", protected, b"", payload]``, which cbor2
encodes exactly as the worker does by default. Only a key you pin proves anything: the key id
in the message says which pinned key to use, never which key to trust.
"""
from __future__ import annotations

import hashlib
from typing import Any, Dict, Mapping, Optional, Union

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import AttestationError

COSE_SIGN1_TAG = 18
EDDSA = -8
Key = Union[bytes, str]


def public_key_bytes(key: Key) -> bytes:
    """A pinned key as 32 bytes (given as bytes or 64 hex digits)."""
    raw = bytes.fromhex(key) if isinstance(key, str) else bytes(key)
    if len(raw) != 32:
        raise ValueError("an ed25519 public key is 32 bytes (64 hex digits)")
    return raw


def key_id(public_key: Key) -> bytes:
    """A key's id: the first 8 bytes of the SHA-256 of the 32-byte public key."""
    return hashlib.sha256(public_key_bytes(public_key)).digest()[:8]


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The exact bytes the worker signs."""
    return cbor2.dumps(["Signature1", protected, b"", payload])


def verify(attestation: bytes, public_key: Key) -> Dict[str, Any]:
    """Checks an attestation against the pinned key and returns its payload (the facts)."""
    key = public_key_bytes(public_key)
    try:
        message = cbor2.loads(attestation)
    except Exception as e:  # noqa: BLE001 - any decoding failure is a malformed attestation
        raise AttestationError("malformed attestation: not CBOR") from e
    if isinstance(message, cbor2.CBORTag):
        if message.tag != COSE_SIGN1_TAG:
            raise AttestationError("malformed attestation: not a COSE_Sign1 message")
        message = message.value
    if not (isinstance(message, (list, tuple)) and len(message) == 4):
        raise AttestationError("malformed attestation: not a COSE_Sign1 message")
    protected, _unprotected, payload, signature = message
    if not all(isinstance(x, bytes) for x in (protected, payload, signature)):
        raise AttestationError("malformed attestation: not a COSE_Sign1 message")
    header = cbor2.loads(protected) if protected else {}
    if not isinstance(header, Mapping) or header.get(1) != EDDSA:
        raise AttestationError("malformed attestation: not signed with EdDSA")
    if header.get(4) != key_id(key):
        raise AttestationError("signed by another key than the pinned one")
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, sig_structure(protected, payload))
    except InvalidSignature as e:
        raise AttestationError("the signature does not match the attested payload") from e
    facts = cbor2.loads(payload)
    if not isinstance(facts, Mapping):
        raise AttestationError("malformed attestation: payload")
    return dict(facts)


def check_reply(
    reply: Dict[str, Any], public_key: Key, correlation_id: Optional[str], request_body: bytes
) -> Dict[str, Any]:
    """Checks a decoded reply's attestation against the pinned key, the correlation id and the
    request body it answers, and its own status, outputs and receipt. Returns the facts."""
    attestation = reply.get("attestation")
    if not isinstance(attestation, bytes):
        raise AttestationError("the reply is not attested")
    facts = verify(attestation, public_key)
    error = reply.get("error") or {}
    if facts.get("status") != reply.get("status") or facts.get("code") != error.get("code"):
        raise AttestationError("the attestation does not match the reply: status")
    if facts.get("correlation_id") != correlation_id:
        raise AttestationError("the attestation does not match the reply: correlation id")
    if facts.get("request") != hashlib.sha256(request_body).digest():
        raise AttestationError("the attestation does not match the reply: request digest")
    outputs = reply.get("outputs", [])
    attested = facts.get("outputs", [])
    same = len(outputs) == len(attested) and all(
        a.get("name") == o.get("name")
        and a.get("format") == o.get("format")
        and (a.get("width"), a.get("height")) == (o.get("width"), o.get("height"))
        and a.get("sha256") == hashlib.sha256(o.get("data", b"")).digest()
        for a, o in zip(attested, outputs)
    )
    if not same:
        raise AttestationError("the attestation does not match the reply: outputs")
    if facts.get("receipt") != reply.get("receipt"):
        raise AttestationError("the attestation does not match the reply: receipt")
    return facts
