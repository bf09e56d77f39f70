/**
 * Formatting of characters from replicated mark ops, Peritext-style.
 *
 * Owns: which characters each add/remove-mark op covers, and the marks each
 * character ends with. An op covers the tokens its author selected (`ids`)
 * plus characters inserted concurrently with it (unknown to its author and not
 * made after it) that lie inside the range, and, for marks that are `inclusive`
 * in the schema (the default, e.g. bold), concurrent characters right after the
 * range's end. Expansion stops at a token the author knew but did not select and
 * at a concurrent structure token; tokens made after the op are transparent. Marks then fold in (Lamport, agent) order over the marks a character
 * was inserted with, so concurrent add and remove of one mark resolve by
 * Lamport order.
 *
 * Invariant: a pure function of the visible tokens, their ids, the records and
 * the causal graph, so every replica formats alike.
 */
import type { Mark } from 'prosemirror-model'
import { CLOSE, OPEN } from './rich-tokens.ts'
import { type MarkOp, type RichRecords, idKey } from './rich-records.ts'

/** Where the tokens are and what each came from. */
export interface TokenIdsView {
  readonly tokens: string
  agent(i: number): string
  seq(i: number): number
}

/**
 * The marks of every token (meaningful for characters and leaves), starting
 * from `base(i)` (what token i was made with), given `madeAfter(i, op)`: whether token i was inserted by an event that had seen `op`.
 */
export function tokenMarks(
  t: TokenIdsView,
  records: RichRecords,
  base: (i: number) => readonly Mark[],
  madeAfter: (i: number, op: MarkOp) => boolean,
): (readonly Mark[])[] {
  const n = t.tokens.length
  const out: (readonly Mark[])[] = new Array(n)
  for (let i = 0; i < n; i++) out[i] = base(i)
  const ops = records.markOps
  if (ops.length === 0) return out
  const where = new Map<string, number>()
  for (let i = 0; i < n; i++) where.set(idKey(t.agent(i), t.seq(i)), i)
  for (const op of ops) {
    const explicit = new Set<number>()
    for (const [a, s, len] of op.ids) {
      for (let k = 0; k < len; k++) {
        const p = where.get(idKey(a, s + k))
        if (p !== undefined) explicit.add(p)
      }
    }
    if (explicit.size === 0) continue
    const sorted = [...explicit].sort((x, y) => x - y)
    const last = sorted[sorted.length - 1]
    const inclusive = op.mark.type.spec.inclusive !== false
    const known = (i: number) => {
      const a = t.agent(i)
      return Object.hasOwn(op.vv, a) && t.seq(i) < op.vv[a]
    }
    const covered: number[] = []
    let pending: number[] = []
    let inside = true
    for (let i = sorted[0]; i < n; i++) {
      if (explicit.has(i)) {
        for (const p of pending) covered.push(p) // not push(...): may be too many for the stack
        covered.push(i)
        pending = []
        inside = true
        continue
      }
      const c = t.tokens[i]
      // Tokens made after the op are transparent: they neither get it nor bound it.
      const structure = c === OPEN || c === CLOSE
      if (known(i) || (structure && !madeAfter(i, op))) {
        pending = []
        inside = false
        if (i > last) break
        continue
      }
      if (structure || !inside || madeAfter(i, op)) continue
      if (inclusive && i > last) covered.push(i)
      else pending.push(i)
    }
    for (const i of covered)
      out[i] = op.add ? op.mark.addToSet(out[i]) : op.mark.removeFromSet(out[i])
  }
  return out
}
