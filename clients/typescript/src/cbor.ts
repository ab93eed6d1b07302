/**
 * The one CBOR encoder and decoder of this package. Encoding: shortest lengths, no
 * typed-array tags, no record extension — plain CBOR that any library reads. Decoding: byte
 * strings as `Buffer`s, maps as objects, and 64-bit integers (millisecond timestamps) as
 * numbers rather than `bigint`s, which is exact below 2^53.
 */
import { Decoder, Encoder, Options } from "cbor-x";

export const encoder = new Encoder({ variableMapSize: true, tagUint8Array: false, useRecords: false });
export const decoder = new Decoder({
  mapsAsObjects: true,
  useRecords: false,
  int64AsNumber: true,
} as Options & { int64AsNumber: boolean });

/** `value` as CBOR. */
export function encode(value: unknown): Buffer {
  return encoder.encode(value);
}

/** The value of CBOR `bytes`. */
export function decode(bytes: Uint8Array): unknown {
  return decoder.decode(Buffer.from(bytes));
}
