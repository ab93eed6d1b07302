/**
 * Receipt attestations: a tagged COSE_Sign1 message (RFC 9052), EdDSA over ed25519.
 *
 * The signed bytes are the CBOR array `["Signature1", protected, h'', payload]`. cbor-x
 * encodes it exactly as the worker does when the byte strings are `Buffer`s (which is what it
 * decodes them to on Node); a plain `Uint8Array` it would tag (tag 64), so this module never
 * passes one. Only a key you pin proves anything.
 */
import { createHash, createPublicKey, verify as edVerify, KeyObject } from "node:crypto";
import { Tag } from "cbor-x";
import { decode, encode } from "./cbor";
import { AttestationError } from "./errors";
import type { Attested, Reply } from "./wire";

const COSE_SIGN1_TAG = 18;
const EDDSA = -8;
// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410); the 32 key bytes follow.
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

/** A pinned key: 32 bytes or 64 hex digits. */
export type Key = Uint8Array | string;

/** A pinned key as 32 bytes. */
export function publicKeyBytes(key: Key): Buffer {
  const raw = typeof key === "string" ? Buffer.from(key, "hex") : Buffer.from(key);
  if (raw.length !== 32 || (typeof key === "string" && key.length !== 64)) {
    throw new RangeError("an ed25519 public key is 32 bytes (64 hex digits)");
  }
  return raw;
}

/** A key's id: the first 8 bytes of the SHA-256 of the 32-byte public key. */
export function keyId(key: Key): Buffer {
  return createHash("sha256").update(publicKeyBytes(key)).digest().subarray(0, 8);
}

/** The exact bytes the worker signs. */
export function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Buffer {
  return encode(["Signature1", Buffer.from(protectedHeader), Buffer.alloc(0), Buffer.from(payload)]);
}

function keyObject(key: Key): KeyObject {
  return createPublicKey({
    key: Buffer.concat([SPKI_ED25519, publicKeyBytes(key)]),
    format: "der",
    type: "spki",
  });
}

function isBytes(x: unknown): x is Buffer {
  return x instanceof Uint8Array;
}

/** Checks an attestation against the pinned key and returns its payload (the facts). */
export function verify(attestation: Uint8Array, key: Key): Attested {
  let message: unknown;
  try {
    message = decode(attestation);
  } catch {
    throw new AttestationError("malformed attestation: not CBOR");
  }
  if (message instanceof Tag) {
    if (message.tag !== COSE_SIGN1_TAG) {
      throw new AttestationError("malformed attestation: not a COSE_Sign1 message");
    }
    message = message.value;
  }
  if (!Array.isArray(message) || message.length !== 4) {
    throw new AttestationError("malformed attestation: not a COSE_Sign1 message");
  }
  const [protectedHeader, , payload, signature] = message as unknown[];
  if (!isBytes(protectedHeader) || !isBytes(payload) || !isBytes(signature)) {
    throw new AttestationError("malformed attestation: not a COSE_Sign1 message");
  }
  const header = protectedHeader.length ? decode(protectedHeader) : {};
  const get = (k: number): unknown =>
    header instanceof Map ? header.get(k) : (header as Record<number, unknown>)[k];
  if (get(1) !== EDDSA) {
    throw new AttestationError("malformed attestation: not signed with EdDSA");
  }
  const kid = get(4);
  if (!isBytes(kid) || !Buffer.from(kid).equals(keyId(key))) {
    throw new AttestationError("signed by another key than the pinned one");
  }
  if (!edVerify(null, sigStructure(protectedHeader, payload), keyObject(key), signature)) {
    throw new AttestationError("the signature does not match the attested payload");
  }
  const facts = decode(payload);
  if (typeof facts !== "object" || facts === null) {
    throw new AttestationError("malformed attestation: payload");
  }
  return facts as Attested;
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash("sha256").update(bytes).digest();
}

function sameValue(a: unknown, b: unknown): boolean {
  if (isBytes(a) && isBytes(b)) return Buffer.from(a).equals(Buffer.from(b));
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return (
      sameValue(ka, kb) &&
      ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
    );
  }
  return a === b;
}

/**
 * Checks a decoded reply's attestation against the pinned key, the correlation id and the
 * request body it answers, and its own status, outputs and receipt. Returns the facts.
 */
export function checkReply(
  reply: Reply,
  key: Key,
  correlationId: string | null,
  requestBody: Uint8Array,
): Attested {
  if (!isBytes(reply.attestation)) throw new AttestationError("the reply is not attested");
  const facts = verify(reply.attestation, key);
  if (facts.status !== reply.status || facts.code !== reply.error?.code) {
    throw new AttestationError("the attestation does not match the reply: status");
  }
  if ((facts.correlation_id ?? null) !== correlationId) {
    throw new AttestationError("the attestation does not match the reply: correlation id");
  }
  if (!isBytes(facts.request) || !sha256(requestBody).equals(Buffer.from(facts.request))) {
    throw new AttestationError("the attestation does not match the reply: request digest");
  }
  const outputs = reply.outputs ?? [];
  const attested = facts.outputs ?? [];
  const same =
    outputs.length === attested.length &&
    attested.every((a, i) => {
      const o = outputs[i];
      return (
        a.name === o.name &&
        a.format === o.format &&
        a.width === o.width &&
        a.height === o.height &&
        isBytes(a.sha256) &&
        sha256(o.data).equals(Buffer.from(a.sha256))
      );
    });
  if (!same) throw new AttestationError("the attestation does not match the reply: outputs");
  if (!sameValue(facts.receipt, reply.receipt)) {
    throw new AttestationError("the attestation does not match the reply: receipt");
  }
  return facts;
}
