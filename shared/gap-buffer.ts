/**
 * The document's content: UTF-16 code units in a gap buffer.
 *
 * Edits happen at the gap, which moves to each edit's position with one
 * `copyWithin`; typing and deleting near the last edit (what real editing
 * traces are made of) cost O(1), a jump costs one memmove of the distance.
 * `toString()` builds the string once and caches it until the next edit.
 * Memory: 2 bytes per code unit plus the gap (at most half the capacity).
 */

import { anchorShape } from './shape-anchors.ts'

const MIN_CAPACITY = 64
const CHUNK = 8192

export class GapBuffer {
  private buf: Uint16Array
  private gapStart = 0
  private gapEnd: number
  private cached: string | null = ''

  /**
   * Text given but not yet copied into the buffer: a loaded document is only
   * copied on its first edit, so loading and reading cost no more than the string.
   */
  private unbuffered: string | null = null

  constructor(initial = '') {
    this.buf = new Uint16Array(MIN_CAPACITY)
    this.gapEnd = this.buf.length
    if (initial.length > 0) this.unbuffered = this.cached = initial
  }

  get length(): number {
    if (this.unbuffered !== null) return this.unbuffered.length
    return this.buf.length - (this.gapEnd - this.gapStart)
  }

  /** The code unit at `pos`, or -1 outside the content. */
  charCodeAt(pos: number): number {
    if (pos < 0 || pos >= this.length) return -1
    if (this.unbuffered !== null) return this.unbuffered.charCodeAt(pos)
    return pos < this.gapStart ? this.buf[pos] : this.buf[pos + (this.gapEnd - this.gapStart)]
  }

  /** Copies text held as a string into the buffer. */
  private buffer(): void {
    const text = this.unbuffered
    if (text === null) return
    this.unbuffered = null
    this.buf = new Uint16Array(Math.max(MIN_CAPACITY, text.length * 2))
    for (let i = 0; i < text.length; i++) this.buf[i] = text.charCodeAt(i)
    this.gapStart = text.length
    this.gapEnd = this.buf.length
  }

  insert(pos: number, text: string): void {
    const n = text.length
    if (n === 0) return
    this.buffer()
    this.moveGap(pos)
    if (this.gapEnd - this.gapStart < n) this.grow(n)
    const buf = this.buf
    let at = this.gapStart
    for (let i = 0; i < n; i++) buf[at++] = text.charCodeAt(i)
    this.gapStart = at
    this.cached = null
  }

  delete(pos: number, len: number): void {
    if (len === 0) return
    this.buffer()
    this.moveGap(pos)
    this.gapEnd += len
    this.cached = null
  }

  /** The code units from `start` to `end`, read without building the whole string. */
  slice(start: number, end: number): string {
    if (this.cached !== null) return this.cached.slice(start, end)
    const parts: string[] = []
    const gap = this.gapEnd - this.gapStart
    if (start < this.gapStart) this.decode(start, Math.min(end, this.gapStart), parts)
    if (end > this.gapStart) this.decode(Math.max(start, this.gapStart) + gap, end + gap, parts)
    return parts.join('')
  }

  toString(): string {
    if (this.cached !== null) return this.cached
    const parts: string[] = []
    this.decode(0, this.gapStart, parts)
    this.decode(this.gapEnd, this.buf.length, parts)
    return (this.cached = parts.join(''))
  }

  private decode(from: number, to: number, parts: string[]): void {
    for (let i = from; i < to; i += CHUNK) {
      parts.push(
        String.fromCharCode.apply(null, this.buf.subarray(i, Math.min(to, i + CHUNK)) as never),
      )
    }
  }

  private moveGap(pos: number): void {
    // A merge's positions can arrive as heap numbers (the walk counts past the small-integer
    // range); kept small integers, the gap fields never change representation, which would
    // leave this class's shape anchor behind (see shape-anchors.ts).
    pos |= 0
    const buf = this.buf
    if (pos < this.gapStart) {
      const n = this.gapStart - pos
      buf.copyWithin(this.gapEnd - n, pos, this.gapStart)
      this.gapStart = pos
      this.gapEnd -= n
    } else if (pos > this.gapStart) {
      const n = pos - this.gapStart
      buf.copyWithin(this.gapStart, this.gapEnd, this.gapEnd + n)
      this.gapStart = pos
      this.gapEnd += n
    }
  }

  private grow(need: number): void {
    const len = this.length
    const capacity = Math.max(MIN_CAPACITY, (len + need) * 2)
    const next = new Uint16Array(capacity)
    next.set(this.buf.subarray(0, this.gapStart), 0)
    const tail = this.buf.length - this.gapEnd
    next.set(this.buf.subarray(this.gapEnd), capacity - tail)
    this.gapEnd = capacity - tail
    this.buf = next
  }
}
anchorShape(() => new GapBuffer())
