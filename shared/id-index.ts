/**
 * Which event inserted each character of the document, in document order,
 * deleted characters kept as tombstones: the map between positions and
 * character ids that cursors and selections anchor to.
 *
 * Built on first use from a walk over the whole history (which also places
 * tombstones exactly), then kept up to date by local edits and by remote
 * events that were not concurrent (both insert before the tombstones that
 * follow their left neighbour, as the walk would); a concurrent merge drops it
 * and the next use rebuilds it. Runs of
 * consecutive LVs are one record; lookups scan the runs, O(runs), which is
 * fine for what uses it (presence, at a bounded rate) and costs nothing to
 * documents that never ask.
 */
import type { LV } from './causal-graph.ts'

interface Run {
  lv: LV
  len: number
  deleted: boolean
}

export class IdIndex {
  private readonly runs: Run[]

  constructor(runs: Run[]) {
    this.runs = runs
  }

  /** The LV of the visible character at `pos`, or -1 at or past the end. */
  lvAt(pos: number): LV {
    for (const r of this.runs) {
      if (r.deleted) continue
      if (pos < r.len) return r.lv + pos
      pos -= r.len
    }
    return -1
  }

  /** The position of character `lv`: where it is, or where it was when deleted; -1 if unknown. */
  positionOf(lv: LV): number {
    let pos = 0
    for (const r of this.runs) {
      if (lv >= r.lv && lv < r.lv + r.len) return r.deleted ? pos : pos + (lv - r.lv)
      if (!r.deleted) pos += r.len
    }
    return -1
  }

  /** Characters `lv .. lv+len` were inserted at visible position `pos`. */
  insert(pos: number, lv: LV, len: number): void {
    const runs = this.runs
    let i = 0
    for (; i < runs.length && pos > 0; i++) {
      const r = runs[i]
      if (r.deleted) continue
      if (pos < r.len) {
        // Split the run: the new characters go in its middle.
        runs.splice(i + 1, 0, { lv: r.lv + pos, len: r.len - pos, deleted: false })
        r.len = pos
        pos = 0
        i++
        break
      }
      pos -= r.len
    }
    const prev = runs[i - 1]
    if (prev !== undefined && !prev.deleted && prev.lv + prev.len === lv) prev.len += len
    else runs.splice(i, 0, { lv, len, deleted: false })
  }

  /** The visible characters `pos .. pos+len` were deleted. */
  delete(pos: number, len: number): void {
    const runs = this.runs
    for (let i = 0; i < runs.length && len > 0; i++) {
      const r = runs[i]
      if (r.deleted) continue
      if (pos >= r.len) {
        pos -= r.len
        continue
      }
      if (pos > 0) {
        runs.splice(i + 1, 0, { lv: r.lv + pos, len: r.len - pos, deleted: false })
        r.len = pos
        pos = 0
        continue
      }
      if (len < r.len) runs.splice(i + 1, 0, { lv: r.lv + len, len: r.len - len, deleted: false })
      r.len = Math.min(r.len, len)
      r.deleted = true
      len -= r.len
    }
  }
}
