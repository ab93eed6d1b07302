"""Sealed jobs (contract v2): HPKE (RFC 9180) base mode with DHKEM(X25519,
HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, written over ``cryptography``'s primitives.

A request is sealed to the worker fleet's epoch public key with a fresh reply key inside; the
reply comes back sealed to that reply key, bound to the sealed request's SHA-256. The shapes
are those of the Rust crate (``clients/rust/src/sealed.rs``); the worker's tests check that
each side opens what the other seals.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import cbor2
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = [
    "SealError", "DirectoryError", "Directory", "ReplyKeys", "SEALED_CONTENT_TYPE",
    "EPOCH_HEADER", "seal_request", "open_reply", "open_request", "seal_reply",
    "verify_directory", "is_sealed_reply",
]

SEALED_CONTENT_TYPE = "application/vnd.midnit.sealed+cbor"
EPOCH_HEADER = "x-midnit-epoch"
SUITE = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305"
_DIRECTORY_CONTEXT = b"midnit key directory v1"
MAX_SKEW_MS = 5 * 60 * 1000

_KEM = b"KEM" + (0x0020).to_bytes(2, "big")
_HPKE = b"HPKE" + (0x0020).to_bytes(2, "big") + (0x0001).to_bytes(2, "big") + (0x0003).to_bytes(2, "big")
_REQUEST_INFO = b"midnit v2 request"
_REPLY_INFO = b"midnit v2 reply"


class SealError(Exception):
    """Sealed bytes that are malformed or do not open with this key."""


class DirectoryError(Exception):
    """A key directory that is malformed, not signed by the pinned key, or stale."""


@dataclass(frozen=True)
class Directory:
    """A verified key directory: the current and next epochs' keys and their windows."""

    issued_ms: int
    expires_ms: int
    keys: Tuple[Tuple[int, bytes, int, int], ...]  # (epoch, public key, not_before, not_after)

    def key_for(self, now_ms: int) -> Tuple[int, bytes]:
        """The (epoch, public key) to seal to at ``now_ms``: the newest whose window holds it."""
        valid = [k for k in self.keys if k[2] <= now_ms < k[3]]
        if not valid:
            raise DirectoryError("no key of the directory is valid now: fetch it again")
        best = max(valid, key=lambda k: k[0])
        return best[0], best[1]


def verify_directory(signed: bytes, pinned: bytes, now_ms: int) -> Directory:
    """Checks a key directory (``GET /keys``, or relayed by the backend) against the pinned
    directory public key and the time: refused if unsigned, signed by another key, stale or
    malformed."""
    try:
        envelope = cbor2.loads(signed)
    except Exception as e:  # noqa: BLE001 - any decoding failure is a malformed directory
        raise DirectoryError("not a key directory") from e
    if not isinstance(envelope, dict) or set(envelope) != {"v", "body", "sig"} or envelope["v"] != 1:
        raise DirectoryError("not a key directory")
    body, sig = envelope["body"], envelope["sig"]
    if not isinstance(body, bytes) or not isinstance(sig, bytes) or len(sig) != 64:
        raise DirectoryError("the key directory is not signed by the pinned directory key")
    try:
        Ed25519PublicKey.from_public_bytes(pinned).verify(sig, _DIRECTORY_CONTEXT + body)
    except (InvalidSignature, ValueError) as e:
        raise DirectoryError("the key directory is not signed by the pinned directory key") from e
    d = cbor2.loads(body)
    if not isinstance(d, dict) or d.get("suite") != SUITE:
        raise DirectoryError("not a key directory: suite")
    keys = []
    for k in d.get("keys", []):
        pk = k.get("public_key")
        if not isinstance(pk, bytes) or len(pk) != 32 or k["not_after_ms"] <= k["not_before_ms"]:
            raise DirectoryError("not a key directory: keys")
        keys.append((int(k["epoch"]), pk, int(k["not_before_ms"]), int(k["not_after_ms"])))
    if not keys or len(keys) > 8:
        raise DirectoryError("not a key directory: keys")
    if now_ms > d["expires_ms"] or d["issued_ms"] > now_ms + MAX_SKEW_MS:
        raise DirectoryError("the key directory is stale (expired or not yet valid): fetch it again")
    return Directory(int(d["issued_ms"]), int(d["expires_ms"]), tuple(keys))


def is_sealed_reply(body: bytes) -> bool:
    """Whether ``body`` has the shape of a sealed reply."""
    try:
        _decode(body, ("v", "enc", "ct"))
    except SealError:
        return False
    return True


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, length)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _shared_secret(dh: bytes, enc: bytes, pk_recipient: bytes) -> bytes:
    eae_prk = _labeled_extract(_KEM, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM, eae_prk, b"shared_secret", enc + pk_recipient, 32)


def _key_schedule(shared: bytes, info: bytes) -> Tuple[bytes, bytes]:
    psk_id_hash = _labeled_extract(_HPKE, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE, shared, b"secret", b"")
    key = _labeled_expand(_HPKE, secret, b"key", context, 32)
    nonce = _labeled_expand(_HPKE, secret, b"base_nonce", context, 12)
    return key, nonce


def _seal(pk_recipient: bytes, info: bytes, plaintext: bytes) -> Tuple[bytes, bytes]:
    ephemeral = X25519PrivateKey.generate()
    enc = _raw(ephemeral.public_key())
    try:
        dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(pk_recipient))
    except ValueError as e:
        raise SealError("not an X25519 public key") from e
    key, nonce = _key_schedule(_shared_secret(dh, enc, pk_recipient), info)
    return enc, ChaCha20Poly1305(key).encrypt(nonce, plaintext, b"")


def _open(private: X25519PrivateKey, enc: bytes, info: bytes, ciphertext: bytes) -> bytes:
    try:
        dh = private.exchange(X25519PublicKey.from_public_bytes(enc))
        shared = _shared_secret(dh, enc, _raw(private.public_key()))
        key, nonce = _key_schedule(shared, info)
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, b"")
    except (ValueError, InvalidTag) as e:
        raise SealError("the message does not open with this key") from e


@dataclass(frozen=True)
class ReplyKeys:
    """A request's reply key pair: keep it to open the reply."""

    private: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate, repr=False)

    @property
    def public_key(self) -> bytes:
        return _raw(self.private.public_key())


def _request_info(epoch: int) -> bytes:
    return _REQUEST_INFO + epoch.to_bytes(8, "big")


def _reply_info(sealed_request: bytes) -> bytes:
    return _REPLY_INFO + hashlib.sha256(sealed_request).digest()


def _decode(sealed: bytes, keys: Tuple[str, ...]) -> Dict[str, Any]:
    try:
        message = cbor2.loads(sealed)
    except Exception as e:  # noqa: BLE001 - any decoding failure is a malformed message
        raise SealError("not a sealed message") from e
    if not isinstance(message, dict) or set(message) != set(keys) or message.get("v") != 2:
        raise SealError("not a sealed message")
    return message


def seal_request(epoch: int, epoch_key: bytes, body: bytes) -> Tuple[bytes, ReplyKeys]:
    """Seals a v1 request ``body`` to epoch ``epoch``'s public key; returns the sealed bytes
    and the reply keys that open its reply."""
    reply = ReplyKeys()
    inner = cbor2.dumps({"request": body, "reply_key": reply.public_key})
    enc, ct = _seal(epoch_key, _request_info(epoch), inner)
    return cbor2.dumps({"v": 2, "epoch": epoch, "enc": enc, "ct": ct}), reply


def open_reply(reply: ReplyKeys, sealed_request: bytes, sealed_reply: bytes) -> bytes:
    """Opens the sealed reply to ``sealed_request``: the v1 reply body."""
    m = _decode(sealed_reply, ("v", "enc", "ct"))
    return _open(reply.private, m["enc"], _reply_info(sealed_request), m["ct"])


def open_request(private: X25519PrivateKey, sealed: bytes) -> Tuple[int, bytes, bytes]:
    """The worker's side, for tests and tools: (epoch, v1 body, reply public key)."""
    m = _decode(sealed, ("v", "epoch", "enc", "ct"))
    inner = cbor2.loads(_open(private, m["enc"], _request_info(m["epoch"]), m["ct"]))
    return int(m["epoch"]), bytes(inner["request"]), bytes(inner["reply_key"])


def seal_reply(reply_key: bytes, sealed_request: bytes, body: bytes) -> bytes:
    """The worker's side, for tests and tools: seals a v1 reply ``body``."""
    enc, ct = _seal(reply_key, _reply_info(sealed_request), body)
    return cbor2.dumps({"v": 2, "enc": enc, "ct": ct})
