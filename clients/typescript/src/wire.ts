/**
 * The wire contract, version 1, as TypeScript types. `docs/contract/midnit.cddl` in the
 * worker's repository is the machine-readable source; a test there checks that every field
 * of these interfaces is one the CDDL names.
 */

/** The only content type of requests and replies. */
export const CONTENT_TYPE = "application/cbor";
/** The contract version. */
export const VERSION = 1;
/** RabbitMQ's direct reply-to pseudo queue. */
export const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";
/** Header: the job's deadline in ms since the Unix epoch. */
export const DEADLINE_HEADER = "x-midnit-deadline-ms";
/** Header: when the job was published, in ms since the Unix epoch. */
export const SENT_HEADER = "x-midnit-sent-ms";

/** A compass point, or the middle. */
export type Gravity = "center" | "north" | "south" | "east" | "west" | "northeast" | "northwest" | "southeast" | "southwest";

/** One requested output. */
export interface OutputSpec {
  name: string;
  format: "jpeg" | "png" | "webp" | "avif" | "thumbhash";
  width?: number;
  height?: number;
  fit?: "contain" | "cover" | "fill";
  /** Lossy quality 1-100 (defaults: jpeg 85, webp 80, avif 65). */
  quality?: number;
  upscale?: boolean;
  /** WebP: lossless instead of lossy. */
  lossless?: boolean;
  /** AVIF: encoder speed 1-10 (default 8). */
  speed?: number;
  /** JPEG: progressive scans (default true). */
  progressive?: boolean;
  /** JPEG: chroma subsampling (default "420"). */
  chroma?: "420" | "422" | "444";
  /** JPEG, lossy WebP, AVIF: largest encoding wanted; the quality is lowered to fit. */
  max_bytes?: number;
  /** PNG: at most 256 colours. */
  palette?: boolean;
  /** Which part a cover crop keeps; where a letterboxed picture sits (default "center"). */
  gravity?: Gravity;
  /** Focal point [x, y] of a cover crop, fractions 0-1. */
  focal?: [number, number];
  /** #rgb, #rgba, #rrggbb or #rrggbbaa. */
  background?: string;
  /** Pixels of background on every side. */
  padding?: number;
}

/** A render request (the CBOR body of a job). */
export interface Request {
  v: 1;
  inputs: Record<string, Uint8Array>;
  recipe?: Record<string, unknown>;
  preset?: string;
  outputs?: OutputSpec[];
}

/** One rendered image. */
export interface Output {
  name: string;
  format: string;
  width: number;
  height: number;
  /** The quality the encoder used (lossy formats). */
  quality?: number;
  data: Buffer;
}

/** One destroyed artifact of a job. */
export interface WipeEntry {
  artifact: string;
  bytes: number;
  method: "zeroize" | "overwrite_verify_unlink" | "failed";
  at_ms: number;
  error?: string;
  process?: string;
}

/** What the worker wiped for one job. */
export interface Receipt {
  started_at_ms: number;
  sealed_at_ms: number;
  wiped_bytes: number;
  failures: number;
  wiped: WipeEntry[];
  /** For a sealed job: the epoch, the sealed request's SHA-256, when the epoch key is erased. */
  sealed?: SealedFacts;
}

/** What the receipt of a sealed job adds. */
export interface SealedFacts {
  epoch: number;
  request_sha256: Buffer;
  key_erased_by_ms: number;
}

/** The error of a failed job. */
export interface ErrorBody {
  code: string;
  message: string;
  retryable: boolean;
}

/** A reply, as decoded. */
export interface Reply {
  v: 1;
  status: "ok" | "error";
  outputs?: Output[];
  error?: ErrorBody;
  receipt: Receipt;
  attestation?: Buffer;
}

/** One output as attested. */
export interface AttestedOutput {
  name: string;
  format: string;
  width: number;
  height: number;
  sha256: Buffer;
}

/** What an attestation binds (its COSE payload). */
export interface Attested {
  v: 1;
  kid: Buffer;
  time: number;
  status: "ok" | "error";
  code?: string;
  request: Buffer;
  outputs: AttestedOutput[];
  receipt: Receipt;
  correlation_id: string | null;
}
