/**
 * Sealed jobs (contract v2): HPKE (RFC 9180) base mode with DHKEM(X25519,
 * HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, written over Node's crypto. A request is
 * sealed to the fleet's epoch public key with a fresh reply key inside; the reply comes back
 * sealed to that key, bound to the sealed request's SHA-256. The shapes are the Rust crate's
 * (`clients/rust/src/sealed.rs`); the worker's tests check each side opens what the other seals.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  KeyObject,
  verify as verifySignature,
} from "node:crypto";
import { decode, encode } from "./cbor";

/** Sealed bytes that are malformed or do not open with this key. */
export class SealError extends Error {}

/** A key directory that is malformed, not signed by the pinned key, or stale. */
export class DirectoryError extends Error {}

/** The content type of a sealed request (and of its sealed reply). */
export const SEALED_CONTENT_TYPE = "application/vnd.midnit.sealed+cbor";
/** The request header naming the epoch a request is sealed to. */
export const EPOCH_HEADER = "x-midnit-epoch";
/** The HPKE suite of every directory key. */
export const SUITE = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305";
const DIRECTORY_CONTEXT = Buffer.from("midnit key directory v1");
const MAX_SKEW_MS = 5 * 60 * 1000;
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

/** One epoch's key in a directory. */
export interface DirectoryKey {
  epoch: number;
  publicKey: Buffer;
  notBeforeMs: number;
  notAfterMs: number;
}

/** A verified key directory. */
export class Directory {
  constructor(
    readonly issuedMs: number,
    readonly expiresMs: number,
    readonly keys: DirectoryKey[],
  ) {}

  /** The key to seal to at `nowMs`: the newest epoch whose window holds it. */
  keyFor(nowMs: number): DirectoryKey {
    const valid = this.keys.filter((k) => k.notBeforeMs <= nowMs && nowMs < k.notAfterMs);
    if (!valid.length) throw new DirectoryError("no key of the directory is valid now: fetch it again");
    return valid.reduce((a, b) => (b.epoch > a.epoch ? b : a));
  }
}

/**
 * Checks a key directory (`GET /keys` on a worker, or relayed by the backend) against the pinned
 * directory public key (32 bytes) and the time: refused if unsigned, signed by another key,
 * stale or malformed.
 */
export function verifyDirectory(signed: Uint8Array, pinned: Uint8Array, nowMs: number = Date.now()): Directory {
  let envelope: Record<string, unknown>;
  try {
    envelope = decode(signed) as Record<string, unknown>;
  } catch {
    throw new DirectoryError("not a key directory");
  }
  if (typeof envelope !== "object" || envelope === null || envelope.v !== 1) {
    throw new DirectoryError("not a key directory");
  }
  const body = envelope.body;
  const sig = envelope.sig;
  if (!(body instanceof Uint8Array) || !(sig instanceof Uint8Array) || sig.length !== 64) {
    throw new DirectoryError("the key directory is not signed by the pinned directory key");
  }
  const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519, Buffer.from(pinned)]), format: "der", type: "spki" });
  if (!verifySignature(null, Buffer.concat([DIRECTORY_CONTEXT, body]), key, sig)) {
    throw new DirectoryError("the key directory is not signed by the pinned directory key");
  }
  const d = decode(body) as Record<string, unknown>;
  if (typeof d !== "object" || d === null || d.suite !== SUITE || !Array.isArray(d.keys)) {
    throw new DirectoryError("not a key directory: suite");
  }
  const keys = (d.keys as Record<string, unknown>[]).map((k) => {
    const pk = k.public_key;
    const nb = Number(k.not_before_ms);
    const na = Number(k.not_after_ms);
    if (!(pk instanceof Uint8Array) || pk.length !== 32 || !(na > nb)) {
      throw new DirectoryError("not a key directory: keys");
    }
    return { epoch: Number(k.epoch), publicKey: Buffer.from(pk), notBeforeMs: nb, notAfterMs: na };
  });
  if (!keys.length || keys.length > 8) throw new DirectoryError("not a key directory: keys");
  if (nowMs > Number(d.expires_ms) || Number(d.issued_ms) > nowMs + MAX_SKEW_MS) {
    throw new DirectoryError("the key directory is stale (expired or not yet valid): fetch it again");
  }
  return new Directory(Number(d.issued_ms), Number(d.expires_ms), keys);
}

/** Whether `body` has the shape of a sealed reply. */
export function isSealedReply(body: Uint8Array): boolean {
  try {
    fields(body, ["v", "enc", "ct"]);
    return true;
  } catch {
    return false;
  }
}

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const KEM = Buffer.concat([Buffer.from("KEM"), u16(0x20)]);
const HPKE = Buffer.concat([Buffer.from("HPKE"), u16(0x20), u16(0x01), u16(0x03)]);
const V1 = Buffer.from("HPKE-v1");
const SPKI_X25519 = Buffer.from("302a300506032b656e032100", "hex");
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");

const hmac = (key: Buffer, data: Buffer): Buffer => createHmac("sha256", key).update(data).digest();
const extract = (salt: Buffer, ikm: Buffer): Buffer => hmac(salt.length ? salt : Buffer.alloc(32), ikm);

function expand(prk: Buffer, info: Buffer, length: number): Buffer {
  const blocks: Buffer[] = [];
  let block: Buffer = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(blocks).length < length; i++) {
    block = hmac(prk, Buffer.concat([block, info, Buffer.from([i])]));
    blocks.push(block);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

const labeledExtract = (suite: Buffer, salt: Buffer, label: string, ikm: Buffer): Buffer =>
  extract(salt, Buffer.concat([V1, suite, Buffer.from(label), ikm]));
const labeledExpand = (suite: Buffer, prk: Buffer, label: string, info: Buffer, length: number): Buffer =>
  expand(prk, Buffer.concat([u16(length), V1, suite, Buffer.from(label), info]), length);

const rawPublic = (key: KeyObject): Buffer =>
  (key.type === "private" ? createPublicKey(key) : key).export({ format: "der", type: "spki" }).subarray(-32);
const publicFromRaw = (raw: Uint8Array): KeyObject =>
  createPublicKey({ key: Buffer.concat([SPKI_X25519, Buffer.from(raw)]), format: "der", type: "spki" });

function sharedSecret(dh: Buffer, enc: Buffer, pkRecipient: Buffer): Buffer {
  const prk = labeledExtract(KEM, Buffer.alloc(0), "eae_prk", dh);
  return labeledExpand(KEM, prk, "shared_secret", Buffer.concat([enc, pkRecipient]), 32);
}

function keySchedule(shared: Buffer, info: Buffer): [Buffer, Buffer] {
  const empty = Buffer.alloc(0);
  const context = Buffer.concat([
    Buffer.from([0]),
    labeledExtract(HPKE, empty, "psk_id_hash", empty),
    labeledExtract(HPKE, empty, "info_hash", info),
  ]);
  const secret = labeledExtract(HPKE, shared, "secret", empty);
  return [labeledExpand(HPKE, secret, "key", context, 32), labeledExpand(HPKE, secret, "base_nonce", context, 12)];
}

function seal(pkRecipient: Buffer, info: Buffer, plaintext: Buffer): [Buffer, Buffer] {
  const { privateKey } = generateKeyPairSync("x25519");
  const enc = rawPublic(privateKey);
  let dh: Buffer;
  try {
    dh = diffieHellman({ privateKey, publicKey: publicFromRaw(pkRecipient) });
  } catch {
    throw new SealError("not an X25519 public key");
  }
  const [key, nonce] = keySchedule(sharedSecret(dh, enc, pkRecipient), info);
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  return [enc, Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])];
}

function open(privateKey: KeyObject, enc: Buffer, info: Buffer, ct: Buffer): Buffer {
  try {
    const dh = diffieHellman({ privateKey, publicKey: publicFromRaw(enc) });
    const [key, nonce] = keySchedule(sharedSecret(dh, enc, rawPublic(privateKey)), info);
    const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    decipher.setAuthTag(ct.subarray(ct.length - 16));
    return Buffer.concat([decipher.update(ct.subarray(0, ct.length - 16)), decipher.final()]);
  } catch {
    throw new SealError("the message does not open with this key");
  }
}

/** A request's reply key pair: keep it to open the reply. */
export class ReplyKeys {
  constructor(readonly privateKey: KeyObject = generateKeyPairSync("x25519").privateKey) {}
  /** The key pair of a 32-byte raw X25519 private key. */
  static fromPrivate(raw: Uint8Array): ReplyKeys {
    return new ReplyKeys(
      createPrivateKey({ key: Buffer.concat([PKCS8_X25519, Buffer.from(raw)]), format: "der", type: "pkcs8" }),
    );
  }
  /** The public key the request carries. */
  get publicKey(): Buffer {
    return rawPublic(this.privateKey);
  }
}

const requestInfo = (epoch: number): Buffer => {
  const n = Buffer.alloc(8);
  n.writeBigUInt64BE(BigInt(epoch));
  return Buffer.concat([Buffer.from("midnit v2 request"), n]);
};
const replyInfo = (sealedRequest: Uint8Array): Buffer =>
  Buffer.concat([Buffer.from("midnit v2 reply"), createHash("sha256").update(sealedRequest).digest()]);

function fields(sealed: Uint8Array, keys: string[]): Record<string, unknown> {
  let m: unknown;
  try {
    m = decode(sealed);
  } catch {
    throw new SealError("not a sealed message");
  }
  const o = m as Record<string, unknown>;
  const ok =
    typeof m === "object" && m !== null && o.v === 2 && Object.keys(o).sort().join() === [...keys].sort().join();
  if (!ok) throw new SealError("not a sealed message");
  return o;
}

/** Seals a v1 request `body` to epoch `epoch`'s public key; returns the sealed bytes and the reply keys. */
export function sealRequest(epoch: number, epochKey: Uint8Array, body: Uint8Array): [Buffer, ReplyKeys] {
  const reply = new ReplyKeys();
  const inner = encode({ request: Buffer.from(body), reply_key: reply.publicKey });
  const [enc, ct] = seal(Buffer.from(epochKey), requestInfo(epoch), inner);
  return [encode({ v: 2, epoch, enc, ct }), reply];
}

/** Opens the sealed reply to `sealedRequest`: the v1 reply body. */
export function openReply(reply: ReplyKeys, sealedRequest: Uint8Array, sealedReply: Uint8Array): Buffer {
  const m = fields(sealedReply, ["v", "enc", "ct"]);
  return open(reply.privateKey, Buffer.from(m.enc as Buffer), replyInfo(sealedRequest), Buffer.from(m.ct as Buffer));
}
