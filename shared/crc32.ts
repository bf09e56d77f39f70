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

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

/** `bytes` with their CRC-32 in front (4 bytes, big-endian). */
export function seal(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 4)
  new DataView(out.buffer).setUint32(0, crc32(bytes))
  out.set(bytes, 4)
  return out
}

/** The bytes `seal` was given; throws `DecodeError` when they do not match their checksum. */
export function unseal(sealed: Uint8Array, what: string): Uint8Array {
  if (sealed.length < 4) throw new DecodeError(`${what} is truncated (no checksum)`)
  const expected = new DataView(sealed.buffer, sealed.byteOffset, 4).getUint32(0)
  const body = sealed.subarray(4)
  if (crc32(body) !== expected) throw new DecodeError(`${what} is corrupt (checksum mismatch)`)
  return body
}
