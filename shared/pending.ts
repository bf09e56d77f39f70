/**
 * Events that arrived before their parents: held per agent, sorted by seq and
 * never overlapping, so a resent event is stored once. A second copy of a held
 * event with other content, or an event whose held ancestry leads back to
 * itself (a cycle), is refused: neither could ever be applied.
 */
import type { EventSpan, OpSpan } from './encoding.ts'
import { INS, isElided } from './oplog.ts'
import { DecodeError } from './varint.ts'

export interface IncomingSpan extends EventSpan {
  readonly ops: readonly OpSpan[]
}

export class PendingEvents {
  /** Held spans by agent; null while none are (most documents hold none, and a Map costs). */
  private byAgent: Map<string, IncomingSpan[]> | null = null
  private events = 0

  constructor(private readonly maxEvents: number) {}

  get count(): number {
    return this.events
  }

  get isEmpty(): boolean {
    return this.events === 0
  }

  /** Removes and returns everything held, in arrival-independent order. */
  takeAll(): IncomingSpan[] {
    const out: IncomingSpan[] = []
    for (const spans of this.byAgent?.values() ?? []) out.push(...spans)
    this.byAgent = null
    this.events = 0
    return out
  }

  /** Whether some held span satisfies `test`. */
  some(test: (span: IncomingSpan) => boolean): boolean {
    for (const spans of this.byAgent?.values() ?? []) if (spans.some(test)) return true
    return false
  }

  all(): IncomingSpan[] {
    return [...(this.byAgent?.values() ?? [])].flat()
  }

  /**
   * Holds the part of `span` not held yet. Where a held copy has elided text (oplog.ts) and
   * `span` carries it, `span`'s copy takes its place.
   */
  hold(span: IncomingSpan): void {
    const byAgent = (this.byAgent ??= new Map<string, IncomingSpan[]>())
    let spans = byAgent.get(span.agent)
    if (spans === undefined) byAgent.set(span.agent, (spans = []))
    this.checkCycle(span)
    // Cut the span into the pieces not covered by held spans; check the covered ones agree.
    const pieces: IncomingSpan[] = []
    let seq = span.seq
    const end = span.seq + span.len
    for (let h = 0; h < spans.length; h++) {
      const held = spans[h]
      const heldEnd = held.seq + held.len
      if (heldEnd <= seq || held.seq >= end) continue
      if (held.seq > seq) pieces.push(sliceSpan(span, seq - span.seq, held.seq - seq))
      const from = Math.max(seq, held.seq)
      const to = Math.min(end, heldEnd)
      const mine = sliceSpan(span, from - span.seq, to - from)
      const theirs = sliceSpan(held, from - held.seq, to - from)
      if (!sameEvents(theirs, mine))
        throw new DecodeError(`event (${span.agent}, ${from}) conflicts with a held copy`)
      const richer = withText(theirs, mine)
      if (richer !== null) {
        const parts = [richer]
        if (held.seq < from) parts.unshift(sliceSpan(held, 0, from - held.seq))
        if (to < heldEnd) parts.push(sliceSpan(held, to - held.seq, heldEnd - to))
        spans.splice(h, 1, ...parts)
        h += parts.length - 1
      }
      seq = to
    }
    if (seq < end) pieces.push(sliceSpan(span, seq - span.seq, end - seq))
    let added = 0
    for (const p of pieces) added += p.len
    if (this.events + added > this.maxEvents)
      throw new RangeError(
        `too many events waiting for missing parents (${this.events + added} > ${this.maxEvents})`,
      )
    spans.push(...pieces)
    spans.sort((a, b) => a.seq - b.seq)
    this.events += added
  }

  /** The held span containing `(agent, seq)`. */
  private find(agent: string, seq: number): IncomingSpan | undefined {
    const spans = this.byAgent?.get(agent)
    return spans?.find((s) => seq >= s.seq && seq < s.seq + s.len)
  }

  /** Throws when `span`'s held ancestry includes `span` itself. */
  private checkCycle(span: IncomingSpan): void {
    const own = (agent: string, seq: number) =>
      agent === span.agent && seq >= span.seq && seq < span.seq + span.len
    const seen = new Set<IncomingSpan>()
    const stack: IncomingSpan[] = []
    const visitParents = (s: IncomingSpan) => {
      for (const [a, seq] of s.parents) {
        if (own(a, seq))
          throw new DecodeError(`event (${span.agent}, ${span.seq}) is its own ancestor`)
        const held = this.find(a, seq)
        if (held !== undefined && !seen.has(held)) {
          seen.add(held)
          stack.push(held)
        }
      }
    }
    visitParents(span)
    while (stack.length > 0) {
      const s = stack.pop()!
      visitParents(s)
      // A held span's earlier events by the same agent are ancestors too.
      const before = this.find(s.agent, s.seq - 1)
      if (own(s.agent, s.seq - 1))
        throw new DecodeError(`event (${span.agent}, ${span.seq}) is its own ancestor`)
      if (before !== undefined && !seen.has(before)) {
        seen.add(before)
        stack.push(before)
      }
    }
  }

  snapshot(): Map<string, IncomingSpan[]> {
    return new Map([...(this.byAgent ?? [])].map(([a, s]) => [a, s.slice()]))
  }

  restore(saved: Map<string, IncomingSpan[]>): void {
    this.byAgent = saved.size === 0 ? null : saved
    this.events = 0
    for (const spans of saved.values()) for (const s of spans) this.events += s.len
  }
}

/** Whether `span` inserts characters whose text is elided (oplog.ts). */
export function hasElidedText(span: IncomingSpan): boolean {
  return span.ops.some(isElided)
}

/** Events `off .. off+len` of `span`, with their ops. */
export function sliceSpan(span: IncomingSpan, off: number, len: number): IncomingSpan {
  if (off === 0 && len === span.len) return span
  const ops: OpSpan[] = []
  let skip = off
  let need = len
  for (const op of span.ops) {
    if (need === 0) break
    if (skip >= op.len) {
      skip -= op.len
      continue
    }
    const take = Math.min(need, op.len - skip)
    ops.push(sliceOp(op, skip, take))
    skip = 0
    need -= take
  }
  const parents = off === 0 ? span.parents : [[span.agent, span.seq + off - 1] as const]
  return { agent: span.agent, seq: span.seq + off, len, parents, ops }
}

export function sliceOp(op: OpSpan, off: number, len: number): OpSpan {
  if (off === 0 && len === op.len) return op
  const pos = op.kind === INS ? op.pos + off : op.fwd ? op.pos : op.pos - off
  const content = op.kind === INS ? op.content.slice(off, off + len) : ''
  return { kind: op.kind, len, pos, fwd: len === 1 ? true : op.fwd, content }
}

/** Whether two spans of the same events carry the same parents and ops. */
function sameEvents(a: IncomingSpan, b: IncomingSpan): boolean {
  if (a.parents.length !== b.parents.length) return false
  const key = (p: readonly (readonly [string, number])[]) =>
    p
      .map(([x, s]) => `${s}:${x}`)
      .sort()
      .join('\n')
  if (key(a.parents) !== key(b.parents)) return false
  return sameOpList(a.ops, b.ops)
}

/**
 * `held`'s events with the text `incoming` (the same events) carries where `held` has it
 * elided, or null when `incoming` adds no text.
 */
function withText(held: IncomingSpan, incoming: IncomingSpan): IncomingSpan | null {
  if (!hasElidedText(held) || incoming.ops.every(isElided)) return null
  const ops: OpSpan[] = []
  let gained = false
  let j = 0
  let bj = 0
  for (const op of held.ops) {
    for (let ai = 0; ai < op.len;) {
      const other = incoming.ops[j]
      const take = Math.min(op.len - ai, other.len - bj)
      const fill = isElided(op) && !isElided(other)
      gained ||= fill
      ops.push(sliceOp(fill ? other : op, fill ? bj : ai, take))
      ai += take
      bj += take
      if (bj === other.len) (j++, (bj = 0))
    }
  }
  return gained ? { ...held, ops } : null
}

/** Whether two op lists describe the same events (run boundaries may differ). */
export function sameOpList(a: readonly OpSpan[], b: readonly OpSpan[]): boolean {
  let i = 0
  let j = 0
  let ai = 0
  let bj = 0
  while (i < a.length && j < b.length) {
    const take = Math.min(a[i].len - ai, b[j].len - bj)
    if (!sameOp(sliceOp(a[i], ai, take), sliceOp(b[j], bj, take))) return false
    ai += take
    bj += take
    if (ai === a[i].len) (i++, (ai = 0))
    if (bj === b[j].len) (j++, (bj = 0))
  }
  return i === a.length && j === b.length
}

export function sameOp(a: OpSpan, b: OpSpan): boolean {
  if (a.kind !== b.kind || a.len !== b.len || a.pos !== b.pos) return false
  // An elided insert's text is unknown: it matches any (the characters are deleted anyway).
  if (a.kind === INS) return a.content === b.content || a.content === '' || b.content === ''
  return a.len === 1 || a.fwd === b.fwd
}
