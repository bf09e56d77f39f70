/**
 * CRC-32 (IEEE) and sealing: a checksum in front of stored bytes, so that
 * corrupted storage fails loudly on load instead of yielding a wrong document.
 */
import { DecodeError } from './varint.ts'

const TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

/** CRC-32 of `bytes`; pass the CRC of earlier bytes as `prev` to continue over a concatenation. */
export function crc32(bytes: Uint8Array, prev = 0): number {
  let c = (prev ^ 0xffffffff) >>> 0
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const NONE = new Uint8Array(0)

/**
 * `bytes` with their CRC-32 in front (4 bytes, big-endian). The checksum also covers
 * `context`, bytes stored elsewhere (a header) that must not change either.
 */
export function seal(bytes: Uint8Array, context = NONE): Uint8Array {
  const out = new Uint8Array(bytes.length + 4)
  new DataView(out.buffer).setUint32(0, crc32(bytes, crc32(context)))
  out.set(bytes, 4)
  return out
}

/** The bytes `seal` was given; throws `DecodeError` when they do not match their checksum. */
export function unseal(sealed: Uint8Array, what: string, context = NONE): Uint8Array {
  if (sealed.length < 4) throw new DecodeError(`${what} is truncated (no checksum)`)
  const expected = new DataView(sealed.buffer, sealed.byteOffset, 4).getUint32(0)
  const body = sealed.subarray(4)
  if (crc32(body, crc32(context)) !== expected)
    throw new DecodeError(`${what} is corrupt (checksum mismatch)`)
  return body
}
