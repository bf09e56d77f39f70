/**
 * Byte-level codec of the sync protocol: the growable varint writer (the core's), a
 * bounds-checked reader (LEB128 up to 2^53 - 1, canonical only; strict UTF-8), the
 * varint helpers for messages written straight into a buffer of known size, and the
 * per-direction dictionary deflate of update lists.
 *
 * Invariants: the reader never reads past its buffer and throws `WireError` (which
 * protocol.ts reports as BAD_MESSAGE) on any malformed input; `unpack` returns null
 * unless the output is exactly the announced length.
 */
import { deflateRaw, inflateRaw } from './deflate.ts'

/** Malformed bytes (protocol.ts turns it into a BAD_MESSAGE SyncError). */
export class WireError extends Error {
  override name = 'WireError'
}

/** Bytes of `n` as an unsigned LEB128 varint. */
export function uintSize(n: number): number {
  let size = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    size++
  }
  return size
}

/** Writes `n` as a varint at `pos` of `buf` (which has room); returns the next position. */
export function putUint(buf: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80
    n = Math.floor(n / 0x80)
  }
  buf[pos++] = n
  return pos
}

/** Dictionary size: recent deflated bytes of this direction (agent ids, headers repeat). */
export const DICT_BYTES = 4096
export const MAX_DEFLATE_RATIO = 1032

/**
 * Deflates `u` with dictionary `dict` (both ends hold the same one: the last DICT_BYTES
 * of what was deflated so far in this direction); null when it does not pay.
 */
export function pack(u: Uint8Array, dict: Uint8Array | null): Uint8Array | null {
  if (u.length < 8) return null
  const c = deflateRaw(u, dict ?? undefined)
  return c.length + 2 < u.length ? c : null
}

export function unpack(c: Uint8Array, rawLen: number, dict: Uint8Array | null): Uint8Array | null {
  try {
    const out = inflateRaw(c, rawLen, dict ?? undefined)
    return out.length === rawLen ? out : null
  } catch {
    return null
  }
}

/** The dictionary after `u` was carried: the last DICT_BYTES of (dict + u). */
export function nextDict(dict: Uint8Array | null, u: Uint8Array): Uint8Array {
  if (u.length >= DICT_BYTES) return u.slice(u.length - DICT_BYTES)
  const old = dict ?? new Uint8Array(0)
  const keep = Math.min(old.length, DICT_BYTES - u.length)
  const out = new Uint8Array(keep + u.length)
  out.set(old.subarray(old.length - keep))
  out.set(u, keep)
  return out
}

export const MAX_STRING_BYTES = 1 << 20

export const encoder = new TextEncoder()
const strictDecoder = new TextDecoder('utf-8', { fatal: true })

// ---------------------------------------------------------------- writer

// The growable varint writer is the core's (shared/varint.ts).
export { Writer } from './varint.ts'

// ---------------------------------------------------------------- reader

export class Reader {
  pos = 0
  constructor(readonly buf: Uint8Array) {}
  fail(what: string): never {
    throw new WireError(`${what} at byte ${this.pos} of ${this.buf.length}`)
  }
  byte(): number {
    if (this.pos >= this.buf.length) this.fail('unexpected end of message')
    return this.buf[this.pos++]!
  }
  uint(): number {
    let result = 0
    let mul = 1
    for (let i = 0; ; i++) {
      if (i >= 8) this.fail('varint too long')
      const b = this.byte()
      result += (b & 0x7f) * mul
      if (!Number.isSafeInteger(result)) this.fail('varint over 2^53')
      if (b < 0x80) {
        if (b === 0 && i > 0) this.fail('non-canonical varint')
        return result
      }
      mul *= 0x80
    }
  }
  bytes(max = this.buf.length): Uint8Array {
    const len = this.uint()
    if (len > this.buf.length - this.pos) this.fail(`length ${len} runs past the end`)
    if (len > max) this.fail(`length ${len} over limit ${max}`)
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }
  string(max = MAX_STRING_BYTES): string {
    const b = this.bytes(max)
    try {
      return strictDecoder.decode(b)
    } catch {
      return this.fail('invalid UTF-8')
    }
  }
  end(): void {
    if (this.pos !== this.buf.length) this.fail(`${this.buf.length - this.pos} trailing bytes`)
  }
}
