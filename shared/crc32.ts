/**
 * CRC-32 (IEEE) and sealing: a checksum in front of stored bytes, so that
 * corrupted storage fails loudly on load instead of yielding a wrong document.
 */
import { nativeZlib } from './deflate.ts'
import { DecodeError } from './varint.ts'

/** Slice-by-8 tables: TABLES[k][b] is the CRC of byte b followed by k zero bytes. */
const TABLES = (() => {
  const t = new Uint32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8)
      t[k * 256 + n] = c >>> 0
    }
  }
  return t
})()

/** CRC-32 of `bytes`; pass the CRC of earlier bytes as `prev` to continue over a concatenation. */
export function crc32(bytes: Uint8Array, prev = 0): number {
  return nativeCrc32 !== undefined ? nativeCrc32(bytes, prev) : crc32Js(bytes, prev)
}

/** Node's native CRC-32 (zlib.crc32, Node ≥ 20.15), the same function without JIT warm-up. */
const nativeCrc32 = nativeZlib?.crc32?.bind(nativeZlib)

/** The portable CRC-32, for runtimes without a native one. Exported for tests. */
export function crc32Js(bytes: Uint8Array, prev = 0): number {
  const t = TABLES
  let c = (prev ^ 0xffffffff) >>> 0
  let i = 0
  const n8 = bytes.length - (bytes.length % 8)
  // Eight bytes a step (slice-by-8), then the tail a byte at a time.
  for (; i < n8; i += 8) {
    const lo = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))
    c =
      t[1792 + (lo & 0xff)] ^
      t[1536 + ((lo >>> 8) & 0xff)] ^
      t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^
      t[768 + bytes[i + 4]] ^
      t[512 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^
      t[bytes[i + 7]]
  }
  for (; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8)
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
