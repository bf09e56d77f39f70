/**
 * Byte-level reading and writing: unsigned LEB128 varints up to 2^53 - 1,
 * length-prefixed byte strings and WTF-8 text (UTF-8 that also round-trips
 * lone surrogates, so content survives encoding exactly, whatever it holds).
 *
 * The reader throws `DecodeError` naming what it was reading when a varint
 * runs past the end, exceeds the safe-integer range, or a length field claims
 * more bytes than remain: no length can cause a large allocation.
 */

import { anchorShape } from './shape-anchors.ts'

export class DecodeError extends Error {
  override name = 'DecodeError'
}

/**
 * One buffer lent to a writer at a time (encoding is synchronous, so nearly every writer gets
 * it): most messages are then written without allocating anything but their result.
 */
let spare: Uint8Array | null = new Uint8Array(4096)
const SPARE_MAX = 1 << 16

const EMPTY = new Uint8Array(0)

export class Writer {
  private buf: Uint8Array
  private pos = 0

  constructor() {
    if (spare !== null) {
      this.buf = spare
      spare = null
    } else this.buf = new Uint8Array(256)
  }

  /** The bytes written since `from`, without copying: valid until the next write or `finish`. */
  view(from = 0): Uint8Array {
    return this.buf.subarray(from, this.pos)
  }

  /** Overwrites the byte at `at` (already written). */
  setByte(at: number, b: number): void {
    if (at >= this.pos) throw new RangeError(`byte ${at} not written yet`)
    this.buf[at] = b
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = Math.max(256, this.buf.length * 2)
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }

  byte(b: number): void {
    this.reserve(1)
    this.buf[this.pos++] = b
  }

  uint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint out of range: ${n}`)
    this.reserve(8)
    const buf = this.buf
    while (n >= 0x80) {
      buf[this.pos++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    buf[this.pos++] = n
  }

  bytes(b: Uint8Array): void {
    this.uint(b.length)
    this.raw(b)
  }

  raw(b: Uint8Array): void {
    this.reserve(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  string(s: string): void {
    const n = s.length
    if (n < 0x80) {
      // Short ASCII (ids, most typing): one length byte, then the code units as bytes.
      let i = 0
      while (i < n && s.charCodeAt(i) < 0x80) i++
      if (i === n) {
        this.reserve(n + 1)
        const buf = this.buf
        buf[this.pos++] = n
        for (let j = 0; j < n; j++) buf[this.pos++] = s.charCodeAt(j)
        return
      }
    }
    if (!wellFormed(s)) return this.bytes(encodeWtf8(s))
    // Encode in place after room for the longest length prefix, then close the gap.
    this.reserve(n * 3 + 8)
    const at = this.pos
    const { written } = utf8Encoder.encodeInto(s, this.buf.subarray(at + 8))
    this.uint(written)
    this.buf.copyWithin(this.pos, at + 8, at + 8 + written)
    this.pos += written
  }

  /** The bytes written, copied; the writer is done and lends its buffer on. */
  finish(): Uint8Array {
    const out = this.buf.slice(0, this.pos)
    this.release()
    return out
  }

  /** Ends the writer without a result (its bytes were used through `view`). */
  release(): void {
    if (this.buf.length <= SPARE_MAX && this.buf !== EMPTY) spare = this.buf
    this.buf = EMPTY
    this.pos = 0
  }
}
anchorShape(() => {
  const w = new Writer()
  w.release() // hands the spare buffer back
  return w
})

/** Short ASCII strings read lately (agent ids, mostly), by a hash of their bytes. */
const shortStrings = new Map<number, string>()
/** Entries before the table starts over: bounded memory whatever the input. */
const SHORT_STRINGS_MAX = 4096

function sameAscii(s: string, buf: Uint8Array, start: number, n: number): boolean {
  if (s.length !== n) return false
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) !== buf[start + i]) return false
  return true
}

export class Reader {
  pos = 0
  constructor(private readonly buf: Uint8Array) {}

  get remaining(): number {
    return this.buf.length - this.pos
  }

  byte(what: string): number {
    if (this.pos >= this.buf.length) throw new DecodeError(`unexpected end of data reading ${what}`)
    return this.buf[this.pos++]
  }

  /** A varint; `what` (and `suffix`) name it in the error, built only when there is one. */
  uint(what: string, suffix = ''): number {
    const buf = this.buf
    if (this.pos < buf.length && buf[this.pos] < 0x80) return buf[this.pos++]
    let result = 0
    let mul = 1
    for (;;) {
      if (this.pos >= buf.length)
        throw new DecodeError(`unexpected end of data reading ${what}${suffix}`)
      const b = buf[this.pos++]
      result += (b & 0x7f) * mul
      if (b < 0x80) break
      mul *= 0x80
      if (mul > 2 ** 49) throw new DecodeError(`varint too large reading ${what}${suffix}`)
    }
    if (result > Number.MAX_SAFE_INTEGER)
      throw new DecodeError(`varint too large reading ${what}${suffix}`)
    return result
  }

  /** A count of items each taking at least `minBytes` bytes: checked against what remains. */
  count(what: string, minBytes = 1): number {
    const n = this.uint(what)
    if (n * minBytes > this.remaining)
      throw new DecodeError(`${what} claims ${n} items but only ${this.remaining} bytes remain`)
    return n
  }

  bytes(what: string): Uint8Array {
    const n = this.uint(what, ' length')
    if (n > this.remaining)
      throw new DecodeError(`${what} claims ${n} bytes but only ${this.remaining} remain`)
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  string(what: string): string {
    const buf = this.buf
    const n = buf[this.pos]
    if (n !== undefined && n <= 32 && this.pos + 1 + n <= buf.length) {
      // Short ASCII (agent ids, typing): straight from the buffer, no view, no decoder.
      const start = this.pos + 1
      let ascii = true
      let hash = 0x811c9dc5 ^ n
      for (let i = start; i < start + n; i++) {
        if (buf[i] >= 0x80) ascii = false
        hash = Math.imul(hash ^ buf[i], 0x01000193)
      }
      if (ascii) {
        this.pos = start + n
        // The same agent ids come in every update: hand back the string made last time, so
        // maps keyed by it find it without hashing and comparing a fresh copy.
        const known = shortStrings.get(hash)
        if (known !== undefined && sameAscii(known, buf, start, n)) return known
        let s = ''
        for (let i = start; i < start + n; i++) s += String.fromCharCode(buf[i])
        if (shortStrings.size >= SHORT_STRINGS_MAX) shortStrings.clear()
        shortStrings.set(hash, s)
        return s
      }
    }
    return decodeWtf8(this.bytes(what), what)
  }

  rest(): Uint8Array {
    const out = this.buf.subarray(this.pos)
    this.pos = this.buf.length
    return out
  }
}
anchorShape(() => new Reader(new Uint8Array(0)))

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const wellFormed = (s: string): boolean =>
  (s as { isWellFormed?: () => boolean }).isWellFormed?.() ?? !/[\ud800-\udfff]/.test(s)

export function encodeWtf8(s: string): Uint8Array {
  // Well-formed text (the usual case) is plain UTF-8: let the platform encode it.
  if (wellFormed(s)) return utf8Encoder.encode(s)
  const out = new Uint8Array(s.length * 3)
  let p = 0
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i)
    if (c < 0x80) {
      out[p++] = c
      continue
    }
    if (c < 0x800) {
      out[p++] = 0xc0 | (c >> 6)
      out[p++] = 0x80 | (c & 0x3f)
      continue
    }
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
        i++
        out[p++] = 0xf0 | (c >> 18)
        out[p++] = 0x80 | ((c >> 12) & 0x3f)
        out[p++] = 0x80 | ((c >> 6) & 0x3f)
        out[p++] = 0x80 | (c & 0x3f)
        continue
      }
    }
    // Three bytes, lone surrogates included (WTF-8).
    out[p++] = 0xe0 | (c >> 12)
    out[p++] = 0x80 | ((c >> 6) & 0x3f)
    out[p++] = 0x80 | (c & 0x3f)
  }
  return out.slice(0, p)
}

export function decodeWtf8(b: Uint8Array, what = 'text'): string {
  try {
    return utf8Decoder.decode(b)
  } catch {
    // Not plain UTF-8: either WTF-8 (lone surrogates) or invalid; the slow path tells which.
  }
  const units: number[] = []
  const parts: string[] = []
  const bad = () => new DecodeError(`invalid UTF-8 in ${what}`)
  for (let i = 0; i < b.length;) {
    const x = b[i]
    let c: number
    if (x < 0x80) {
      c = x
      i += 1
    } else if (x >= 0xc2 && x < 0xe0) {
      if (i + 1 >= b.length || (b[i + 1] & 0xc0) !== 0x80) throw bad()
      c = ((x & 0x1f) << 6) | (b[i + 1] & 0x3f)
      i += 2
    } else if (x >= 0xe0 && x < 0xf0) {
      if (i + 2 >= b.length || (b[i + 1] & 0xc0) !== 0x80 || (b[i + 2] & 0xc0) !== 0x80) throw bad()
      c = ((x & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f)
      if (c < 0x800) throw bad()
      i += 3
    } else if (x >= 0xf0 && x < 0xf5) {
      if (
        i + 3 >= b.length ||
        (b[i + 1] & 0xc0) !== 0x80 ||
        (b[i + 2] & 0xc0) !== 0x80 ||
        (b[i + 3] & 0xc0) !== 0x80
      )
        throw bad()
      c =
        ((x & 0x07) << 18) |
        ((b[i + 1] & 0x3f) << 12) |
        ((b[i + 2] & 0x3f) << 6) |
        (b[i + 3] & 0x3f)
      if (c < 0x10000 || c > 0x10ffff) throw bad()
      c -= 0x10000
      units.push(0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff))
      i += 4
      if (units.length >= 4096) flush()
      continue
    } else {
      throw bad()
    }
    units.push(c)
    if (units.length >= 4096) flush()
  }
  flush()
  return parts.join('')

  function flush() {
    if (units.length === 0) return
    parts.push(String.fromCharCode.apply(null, units))
    units.length = 0
  }
}
