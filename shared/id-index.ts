/**
 * Which event inserted each character of the document, in document order,
 * deleted characters kept as tombstones: the map between positions and
 * character ids that cursors and selections anchor to.
 *
 * Built on first use from a walk over the whole history (which also places
 * tombstones exactly), then kept up to date by every transformed op: local
 * edits and remote events insert before the tombstones that follow their left
 * neighbour, as the walk would for events that were not concurrent. After a
 * concurrent merge every visible character's id is still exact, but a
 * tombstone may sit on the wrong side of a concurrent insert; the owner
 * (text-doc.ts) rebuilds the index when the position of a deleted character is
 * asked for then. Runs of consecutive LVs are one record. Positional lookups
 * and edits walk from a finger left at the last one, so typing costs the
 * distance from the previous edit, not O(runs); `find` (presence, at a bounded
 * rate) scans the runs. Documents that never ask pay nothing.
 */
import type { LV } from './causal-graph.ts'
import { anchorShape } from './shape-anchors.ts'

interface Run {
  lv: LV
  len: number
  deleted: boolean
}

export class IdIndex {
  private readonly runs: Run[]
  /** A finger into `runs`: `before` visible characters precede run `at`. Edits are local, so
   * lookups start from the last one and cost the distance moved, not the number of runs. */
  private at = 0
  private before = 0

  constructor(runs: Run[]) {
    this.runs = runs
  }

  /**
   * Moves the finger to the visible run holding visible character `c` and returns its index,
   * or `runs.length` when `c` is at or past the end (the finger then rests on the last run).
   */
  private seek(c: number): number {
    const runs = this.runs
    let i = this.at
    let before = this.before
    while (i > 0 && before > c) {
      i--
      if (!runs[i].deleted) before -= runs[i].len
    }
    for (; i < runs.length; i++) {
      const r = runs[i]
      if (r.deleted) continue
      if (c < before + r.len) break
      before += r.len
    }
    this.at = i
    this.before = before
    return i
  }

  /** The LV of the visible character at `pos`, or -1 at or past the end. */
  lvAt(pos: number): LV {
    if (pos < 0) return -1
    const i = this.seek(pos)
    return i === this.runs.length ? -1 : this.runs[i].lv + (pos - this.before)
  }

  /** Where character `lv` is (or was, when deleted), and whether it is deleted; null if unknown. */
  find(lv: LV): { pos: number; deleted: boolean } | null {
    let pos = 0
    for (const r of this.runs) {
      if (lv >= r.lv && lv < r.lv + r.len)
        return r.deleted ? { pos, deleted: true } : { pos: pos + (lv - r.lv), deleted: false }
      if (!r.deleted) pos += r.len
    }
    return null
  }

  /** The LVs of the visible characters, as sorted disjoint ranges `[start, end)`. */
  visible(): [LV, LV][] {
    const out: [LV, LV][] = []
    for (const r of this.runs) if (!r.deleted && r.len > 0) out.push([r.lv, r.lv + r.len])
    out.sort((a, b) => a[0] - b[0])
    let n = 0
    for (const r of out) {
      if (n > 0 && out[n - 1][1] === r[0]) out[n - 1][1] = r[1]
      else out[n++] = r
    }
    out.length = n
    return out
  }

  /** Characters `lv .. lv+len` were inserted at visible position `pos`. */
  insert(pos: number, lv: LV, len: number): void {
    const runs = this.runs
    let i = 0
    if (pos > 0) {
      // The run holding the character left of the insert: split it, or insert right after it
      // (before the tombstones that follow it).
      i = this.seek(pos - 1)
      if (i === runs.length) throw new RangeError(`id index: insert at ${pos} past the end`)
      const r = runs[i]
      const off = pos - this.before
      if (off < r.len) runs.splice(i + 1, 0, { lv: r.lv + off, len: r.len - off, deleted: false })
      r.len = off
      i++
    } else {
      this.at = 0
      this.before = 0
    }
    const prev = runs[i - 1]
    if (prev !== undefined && !prev.deleted && prev.lv + prev.len === lv) prev.len += len
    else runs.splice(i, 0, { lv, len, deleted: false })
  }

  /** The visible characters `pos .. pos+len` were deleted. */
  delete(pos: number, len: number): void {
    const runs = this.runs
    if (len <= 0) return
    const start = this.seek(pos)
    pos -= this.before
    for (let i = start; i < runs.length && len > 0; i++) {
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
anchorShape(() => new IdIndex([]))
