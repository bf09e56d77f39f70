/**
 * Random local edits for the fuzzers, valid on the text they are made against.
 *
 * Owns: choosing an insert or delete for a given text: positions never split a surrogate
 * pair, inserted text mixes ASCII, accents, CJK and astral emoji, and documents stay small
 * (deletes get likelier as the text grows) so the naive oracle stays fast.
 */
import type { Rng } from '../support/rng.ts'
import { splitsSurrogate } from '../support/rng.ts'

/** One local edit, in UTF-16 code units. */
export type Edit =
  | { readonly kind: 'insert'; readonly pos: number; readonly text: string }
  | { readonly kind: 'delete'; readonly pos: number; readonly len: number }

/** A random edit valid on `s`; `maxLen` steers the document size (default 200 units). */
export function randomEdit(rng: Rng, s: string, maxLen = 200): Edit {
  const pDelete = s.length === 0 ? 0 : Math.min(0.8, 0.25 + (0.55 * s.length) / maxLen)
  if (!rng.chance(pDelete)) {
    let pos = rng.int(0, s.length)
    // favour the ends and a few hot spots, where concurrent inserts collide
    if (rng.chance(0.2)) pos = rng.chance(0.5) ? 0 : s.length
    while (splitsSurrogate(s, pos)) pos--
    const n = rng.chance(0.1) ? rng.int(8, 24) : rng.int(1, 5)
    return { kind: 'insert', pos, text: rng.text(n) }
  }
  let pos = rng.int(0, s.length - 1)
  while (splitsSurrogate(s, pos)) pos--
  let end = Math.min(s.length, pos + (rng.chance(0.1) ? rng.int(5, 30) : rng.int(1, 4)))
  while (splitsSurrogate(s, end)) end++
  return { kind: 'delete', pos, len: end - pos }
}

/**
 * A burst of single-unit edits valid in sequence on `s`, like a user typing or pressing
 * backspace or delete repeatedly: the patterns the core stores as runs (forward typing,
 * backspace runs, forward-delete runs). Never splits a surrogate pair (emoji are typed as
 * one 2-unit insert).
 */
export function randomBurst(rng: Rng, s: string): Edit[] {
  const out: Edit[] = []
  const k = rng.int(2, 8)
  const mode = s.length < 4 ? 0 : rng.int(0, 2)
  if (mode === 0) {
    let pos = rng.int(0, s.length)
    while (splitsSurrogate(s, pos)) pos--
    for (let i = 0; i < k; i++) {
      const text = rng.text(rng.chance(0.15) ? 2 : 1)
      out.push({ kind: 'insert', pos, text })
      pos += text.length
    }
    return out
  }
  let cur = s
  let pos = rng.int(0, cur.length)
  while (splitsSurrogate(cur, pos)) pos--
  for (let i = 0; i < k; i++) {
    if (mode === 1) {
      // backspace: delete the unit (or pair) before the cursor
      if (pos === 0) break
      const len = splitsSurrogate(cur, pos - 1) ? 2 : 1
      out.push({ kind: 'delete', pos: pos - len, len })
      cur = cur.slice(0, pos - len) + cur.slice(pos)
      pos -= len
    } else {
      // forward delete at a fixed cursor
      if (pos >= cur.length) break
      const len = splitsSurrogate(cur, pos + 1) ? 2 : 1
      out.push({ kind: 'delete', pos, len })
      cur = cur.slice(0, pos) + cur.slice(pos + len)
    }
  }
  return out
}

/** Applies an edit to a plain string (what any replica must do to its own text). */
export function applyEditToString(s: string, e: Edit): string {
  return e.kind === 'insert'
    ? s.slice(0, e.pos) + e.text + s.slice(e.pos)
    : s.slice(0, e.pos) + s.slice(e.pos + e.len)
}

/** A short description for failure traces. */
export function describeEdit(e: Edit): string {
  return e.kind === 'insert'
    ? `insert(${e.pos}, ${JSON.stringify(e.text)})`
    : `delete(${e.pos}, ${e.len})`
}

/**
 * Agent names that stress the tie-break (JS string order: 'B' < 'a', '10' < '9') and
 * prototype-sensitive keys.
 */
export const AGENT_POOL = [
  'a',
  'b',
  'B',
  'aa',
  'ab',
  '9',
  '10',
  'é',
  '中',
  '__proto__',
  'constructor',
  'agent-with-a-long-name-0001',
]

/** `n` distinct agent names from the pool, in random order. */
export function pickAgents(rng: Rng, n: number): string[] {
  return rng.shuffle(AGENT_POOL).slice(0, n)
}

/** Applies API.md TextOps to a string; throws if an op does not fit. */
export function applyTextOps(
  s: string,
  ops: readonly ({ index: number; insert: string } | { index: number; delete: number })[],
): string {
  for (const op of ops) {
    if (!Number.isInteger(op.index) || op.index < 0 || op.index > s.length) {
      throw new Error(`change op index ${op.index} outside [0, ${s.length}]`)
    }
    if ('insert' in op) s = s.slice(0, op.index) + op.insert + s.slice(op.index)
    else {
      if (!(op.delete > 0) || op.index + op.delete > s.length) {
        throw new Error(`change op delete ${op.delete} at ${op.index} past ${s.length}`)
      }
      s = s.slice(0, op.index) + s.slice(op.index + op.delete)
    }
  }
  return s
}
