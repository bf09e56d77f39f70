/**
 * The operations of every event, indexed by LV and run-length encoded.
 *
 * An event is one UTF-16 code unit inserted or deleted at a position in the
 * document as its author saw it. Runs: typing (each insert one past the last),
 * forward deletion (every delete at the same position) and backspacing (each
 * delete one before the last) are stored as one record. Runs cover the LVs
 * without gaps, in LV order; lookup is a binary search.
 *
 * A merge event (NOP) has no operation: it only joins the versions it names as
 * parents, so that events made on it name one parent instead of many (a hub makes
 * them: TextDoc.mergeHeads). It changes no text and places no character.
 *
 * An insert run may be elided: its characters are all deleted and a save dropped
 * their text (content ''). Its events still place characters, which are deleted
 * from birth: no text is ever shown for them (walker.ts, text-doc.ts).
 */
import type { LV } from './causal-graph.ts'

export const INS = 0
export const DEL = 1
export const NOP = 2

export type OpKind = typeof INS | typeof DEL | typeof NOP

export interface OpRun {
  readonly start: LV
  end: LV
  readonly kind: OpKind
  /** Position of the first event (0 for a NOP). */
  readonly pos: number
  /**
   * Deletes: true when every event deletes at `pos`; false when backspacing (event i at pos - i).
   * Always true for a NOP (so a slice of one keeps `pos` 0).
   */
  fwd: boolean
  /** Inserts: the inserted code units, one per event; '' when elided (see the module header). */
  content: string
}

/** Whether `r` inserts characters whose text was dropped (an elided insert run). */
export function isElided(r: { readonly kind: number; readonly content: string }): boolean {
  return r.kind === INS && r.content === ''
}

export interface OpLog {
  readonly runs: OpRun[]
}

export function createOpLog(): OpLog {
  return { runs: [] }
}

/**
 * Appends the ops of events `start .. start+len` (`content` for an insert;
 * `fwd` false for a backspace run of deletes).
 */
export function pushOp(
  log: OpLog,
  start: LV,
  kind: OpKind,
  pos: number,
  len: number,
  content: string,
  fwd = true,
): void {
  if (len === 1) fwd = true
  const last = log.runs[log.runs.length - 1]
  if (last !== undefined && last.end === start && last.kind === kind) {
    if (kind === NOP) {
      last.end += len
      return
    }
    const n = last.end - last.start
    if (kind === INS && pos === last.pos + n && (last.content === '') === (content === '')) {
      last.content += content
      last.end += len
      return
    }
    if (kind === DEL) {
      if (fwd && last.fwd && pos === last.pos) {
        last.end += len
        return
      }
      // Backspacing: each delete one before the previous.
      if ((!fwd || len === 1) && (n === 1 || !last.fwd) && pos === last.pos - n) {
        last.fwd = false
        last.end += len
        return
      }
    }
  }
  log.runs.push({ start, end: start + len, kind, pos, fwd, content })
}

export function findRun(log: OpLog, lv: LV): number {
  const runs = log.runs
  let lo = 0
  let hi = runs.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const r = runs[mid]
    if (lv < r.start) hi = mid - 1
    else if (lv >= r.end) lo = mid + 1
    else return mid
  }
  throw new RangeError(`LV ${lv} has no operation (${runs.length} runs)`)
}

/** The op pieces covering `[start, end)`, each a sub-run, in LV order. */
export function opsIn(log: OpLog, start: LV, end: LV): OpRun[] {
  const out: OpRun[] = []
  for (let i = findRun(log, start); i < log.runs.length && log.runs[i].start < end; i++) {
    out.push(slice(log.runs[i], Math.max(start, log.runs[i].start), Math.min(end, log.runs[i].end)))
  }
  return out
}

/** The part of run `r` from `start` to `end`; its inserted text only `withContent`. */
export function slice(r: OpRun, start: LV, end: LV, withContent = true): OpRun {
  if (start === r.start && end === r.end) return r
  const off = start - r.start
  const pos = r.kind === INS ? r.pos + off : r.fwd ? r.pos : r.pos - off
  const content = r.kind === INS && withContent ? r.content.slice(off, off + (end - start)) : ''
  return { start, end, kind: r.kind, pos, fwd: r.fwd, content }
}

export function checkOpLog(log: OpLog, next: LV): void {
  let expect = 0
  for (const r of log.runs) {
    if (r.start !== expect || r.end <= r.start) throw new Error(`op run gap at LV ${r.start}`)
    if (r.kind === INS && r.content !== '' && r.content.length !== r.end - r.start)
      throw new Error(
        `insert run at ${r.start} has ${r.content.length} units for ${r.end - r.start} events`,
      )
    if (r.pos < 0) throw new Error(`negative position in run at ${r.start}`)
    expect = r.end
  }
  if (expect !== next) throw new Error(`op log covers ${expect} events, graph has ${next}`)
}
