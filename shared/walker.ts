/**
 * The event-graph walker (Gentle & Kleppmann, Eg-walker, EuroSys 2025): turns
 * events that are concurrent with the document's version into operations on
 * the current document.
 *
 * It finds the conflict zone (the events since the common version of the
 * document and the graph's heads), then replays the zone in LV order (a
 * topological order) through an `ItemTree`. Before each run of events the
 * prepare version is moved to the run's parents by retreating and advancing
 * events; the run is then applied in the prepare version, which gives its
 * position in the effect version: the transformed operation. Events already in
 * the document (LV below `firstNew`) only update the tree; the others are
 * emitted. Concurrent inserts at one place are ordered by the YjsMod/FugueMax
 * rule, ties going to the lower agent id, so concurrent runs never interleave.
 *
 * Cost: O(z log z) for a zone of z events. The state is kept while
 * concurrency lasts (see `Merge`) and dropped at the next critical version.
 */
import {
  type CausalGraph,
  type Frontier,
  type LV,
  agentOf,
  createGraph,
  findEntry,
  frontierEquals,
  joinAdjacent,
} from './causal-graph.ts'
import { type Ranges, diff, dominators, findConflicting } from './graph-diff.ts'
import { MAX_EVENTS, WindowVersions } from './window-versions.ts'
import {
  DEL,
  INS,
  NOP,
  type OpLog,
  type OpRun,
  createOpLog,
  findRun,
  isElided,
  slice,
} from './oplog.ts'
import { anchorShape } from './shape-anchors.ts'
import {
  type CharAt,
  type Cursor,
  INSERTED,
  type Item,
  ItemTree,
  type Leaf,
  NOT_YET_INSERTED,
  isPlaceholder,
  makeItem,
} from './item-tree.ts'

/** Receives the transformed operations, in order, against the evolving document. */
export interface Emit {
  /** `content` inserted at `pos` by events `lv ..`. */
  insert(pos: number, content: string, lv: LV): void
  delete(pos: number, len: number): void
}

/**
 * Agents in the graph from which a merge keeps window versions (below, graph walks are short).
 *
 * A move of the prepare version from window versions costs O(agents) per walked entry (a
 * version vector built, kept and compared) whatever the lag; a graph walk costs the events
 * between the versions' common ancestor and the newer one: an edit made a second ago walks a
 * second of everyone's edits, whatever the move's answer (about 16 events in a busy star). The
 * vectors therefore bound what a lagging replica pays per event, which is what decides whether
 * it ever catches up. Measured (2026-11-27, stop 19), vectors against graph walks: in a star of
 * 200 clients at 500 edits/s with a hub's merge events (in-process simulation, µs per
 * integrated event), 51-53 against 112-114 at 1 s of lag, 29-30 against 24-25 at 100 ms; on
 * load clients' streams recorded in the server benchmark and replayed (best of 12, ms), 19-34
 * against 51-93 for five lagging clients (200 x 500 and 200 x 2,000), 31-57 against 41-60 for
 * two at 10 clients, 6-12 against 4-7 for two that kept up (50 x 100).
 */
const WINDOW_VERSIONS_AGENTS = 8

/** Whether a merge keeps window versions. */
function versionsPay(cg: CausalGraph): boolean {
  return cg.agents.size >= WINDOW_VERSIONS_AGENTS && cg.next <= MAX_EVENTS
}

/** Most steps a probe for a fresh, smaller conflict zone takes (it runs in an apply: a pause). */
const MAX_PROBE = 4096

/** A delete run's targets: event `del + i` deleted character `target + i` (`target + len-1-i` when `rev`). */
interface Target {
  del: LV
  len: number
  target: LV
  rev: boolean
}

/**
 * A retreat/advance step planned before a run of events. The ranges may come in any order:
 * retreating and advancing only count events in and out of each character's state.
 */
interface Step {
  start: LV
  end: LV
  /** Flat: start, end, start, end... (an array per range was a sixth of what merges allocated). */
  aOnly: number[]
  bOnly: number[]
}

/**
 * A merge in progress: the walk's tree and prepare version, kept between merges
 * while events keep arriving concurrently, so each merge costs the new events
 * and their concurrency window instead of a replay since the last common version.
 */
export class Merge {
  /** Checks every prepare-version move made from window versions against a graph walk (tests). */
  static verify = false

  private constructor(
    private readonly walk: Walk,
    /** Every event below `base` is in the placeholder; every event from `base` to `processed` is in the tree. */
    private readonly base: LV,
    private prepare: Frontier,
    private processed: LV,
    /** Version vectors of the walked entries (`versionsPay`). */
    private versions: WindowVersions | null,
  ) {
    this.probed = processed
  }

  /**
   * Turns window versions off, or on (from the prepare version: its vector is every event
   * less those a graph walk finds missing from it). Returns whether they are on.
   */
  private switchVersions(cg: CausalGraph): boolean {
    if (this.versions !== null) this.versions = null
    else if (this.processed > this.base) {
      // The prepare version is a walked entry's: every event under base is in its history.
      this.versions = new WindowVersions(cg, this.base)
      this.versions.startAt(diff(cg, this.prepare, cg.heads).bOnly)
    }
    return this.versions !== null
  }

  /** Merges continued (verify mode). */
  private runs = 0

  /**
   * Moves of the prepare version, those that took a graph walk, and the events they retreated
   * and advanced (diagnostics and tests).
   */
  moves = 0
  graphWalks = 0
  toggled = 0
  /** Moves to the last step's parents (a sibling's: see `continue`). */
  siblings = 0

  /** A merge over an empty graph (a shape anchor: see shape-anchors.ts). */
  static empty(): Merge {
    return new Merge(new Walk(createGraph(), createOpLog(), 0), 0, [], 0, null)
  }

  /** The graph's size when `run` last looked for a fresh, smaller conflict zone. */
  private probed: LV

  /** Whether a move's ranges reach under `base` (events the walk's tree does not hold). */
  private reachesBelowBase(aOnly: Ranges, bOnly: Ranges): boolean {
    return aOnly.some((r) => r[0] < this.base) || bOnly.some((r) => r[0] < this.base)
  }

  /**
   * Applies events `firstNew ..` (already in `cg` and `log`) to a document at
   * version `docVersion` through `emit`, walking the zone since the common version.
   */
  static start(
    cg: CausalGraph,
    log: OpLog,
    docVersion: Frontier,
    firstNew: LV,
    emit: Emit,
    conflict = findConflicting(cg, docVersion, cg.heads)!,
  ): Merge {
    const { common, zone } = conflict
    const base = zone.length === 0 ? cg.next : zone[0][0]
    const versions = versionsPay(cg) || Merge.verify ? new WindowVersions(cg, base) : null
    const merge = new Merge(new Walk(cg, log, base), base, common, base, versions)
    // The zone is every event from `base` on (an event below it is an ancestor of every zone event).
    const ok = merge.continue(cg, log, firstNew, emit)
    if (!ok) throw new Error('conflict zone does not cover its own events')
    return merge
  }

  /**
   * Brings the tree up to the graph's heads, emitting events `firstNew ..`.
   * Returns false, having changed nothing, when an event's parents reach below
   * the tree's base: the caller then starts a new merge.
   */
  continue(cg: CausalGraph, log: OpLog, firstNew: LV, emit: Emit): boolean {
    const steps: Step[] = []
    let prepare = this.prepare
    // The last step's parents, agent and first seq (for a sibling: see below).
    let lastParents: Frontier | null = null
    let lastAgent = ''
    let lastSeq = 0
    for (let lv = this.processed; lv < cg.next;) {
      const entry = cg.entries[findEntry(cg, lv)]
      const end = entry.end
      const parents = lv === entry.start ? entry.parents : [lv - 1]
      if (onlyMerges(log, lv, end)) {
        // Nothing to apply: the prepare version stays; later events may name it as a parent.
        const versions = this.versions
        if (lv === entry.start && versions !== null && !versions.note(entry.start, parents)) {
          this.graphWalks++
          const { aOnly, bOnly } = diff(cg, prepare, parents)
          if (!this.reachesBelowBase(aOnly, bOnly)) versions.noteMoved(entry.start, aOnly, bOnly)
        }
        lv = end
        continue
      }
      let aOnly: number[] = EMPTY
      let bOnly: number[] = EMPTY
      const versions = this.versions
      // The last step, when this one is its sibling.
      let sibling: Step | null = null
      if (frontierEquals(prepare, parents)) {
        versions?.stay()
      } else {
        this.moves++
        let moved: { aOnly: number[]; bOnly: number[] } | null
        if (lastParents !== null && frontierEquals(lastParents, parents)) {
          // A sibling of the last step (made on the same parents, as when many writers typed on
          // one version: most moves in a busy star): the move retreats that step's events alone.
          sibling = steps[steps.length - 1]
          moved = { aOnly: [sibling.start, sibling.end], bOnly: EMPTY }
          this.siblings++
        } else moved = versions?.moveTo(parents) ?? null
        if (moved !== null && !Merge.verify) {
          ;({ aOnly, bOnly } = moved)
        } else {
          this.graphWalks++
          const walked = diff(cg, prepare, parents)
          if (this.reachesBelowBase(walked.aOnly, walked.bOnly)) return false
          if (moved === null) versions?.adjust(walked.aOnly, walked.bOnly)
          else if (!sameRanges(moved.aOnly, walked.aOnly) || !sameRanges(moved.bOnly, walked.bOnly))
            throw new Error(`window versions disagree with the graph at LV ${lv}`)
          aOnly = walked.aOnly.flat()
          bOnly = walked.bOnly.flat()
        }
      }
      const seq = entry.seq + (lv - entry.start)
      if (sibling !== null) {
        versions?.enterSibling(
          lastAgent,
          lastSeq,
          sibling.start,
          entry.start,
          entry.agent,
          seq,
          lv,
          end,
        )
      } else versions?.enter(entry.start, entry.agent, seq, lv, end)
      lastParents = parents
      lastAgent = entry.agent
      lastSeq = seq
      steps.push({ start: lv, end, aOnly, bOnly })
      prepare = [end - 1]
      lv = end
    }
    const walk = this.walk
    walk.emit = emit
    for (const step of steps) {
      const { aOnly, bOnly } = step
      for (let i = aOnly.length - 2; i >= 0; i -= 2) {
        const s = aOnly[i]
        const e = aOnly[i + 1]
        walk.retreat(s, e)
        this.toggled += e - s
      }
      for (let i = 0; i < bOnly.length; i += 2) {
        const s = bOnly[i]
        const e = bOnly[i + 1]
        walk.advance(s, e)
        this.toggled += e - s
      }
      // Events already in the document only update the tree (their text is not needed).
      const runs = log.runs
      for (let i = findRun(log, step.start); i < runs.length && runs[i].start < step.end; i++) {
        const r = runs[i]
        const from = Math.max(step.start, r.start)
        const to = Math.min(step.end, r.end)
        const elided = isElided(r)
        if (from < firstNew)
          walk.apply(slice(r, from, Math.min(to, firstNew), false), false, elided)
        if (to > firstNew) walk.apply(slice(r, Math.max(from, firstNew), to), true, elided)
      }
    }
    this.prepare = prepare
    this.processed = cg.next
    return true
  }

  /**
   * Merges events `firstNew ..` into a document at `docVersion`, continuing
   * `kept` when that is cheaper than a fresh walk from the common version (it
   * is while concurrency lasts: the common version then lies far back).
   */
  static run(
    kept: Merge | null,
    cg: CausalGraph,
    log: OpLog,
    docVersion: Frontier,
    firstNew: LV,
    emit: Emit,
  ): Merge {
    if (kept !== null && Merge.verify && ++kept.runs % 4 === 0) {
      // Tests: window versions restarted from the prepare version now and then, checked too.
      kept.switchVersions(cg)
      kept.switchVersions(cg)
    } else if (kept !== null && !Merge.verify && (kept.versions !== null) !== versionsPay(cg)) {
      // The graph reached enough agents (or outgrew the vectors' counts): the walk goes on.
      kept.switchVersions(cg)
    }
    if (kept !== null) {
      // A fresh walk pays off once its zone is much smaller than the kept tree (concurrency
      // has died down). Probing costs up to the budget (half the tree), and a step of it is
      // dearer than a kept merge's step, so probe only after the graph grew by the tree's
      // size since the last probe: amortized O(1) per event. (With constant concurrency, as
      // in a busy star, no probe ever succeeds: at an eighth, probes took 30% of the time.)
      if (cg.next - kept.probed >= kept.size) {
        kept.probed = cg.next
        const fresh = findConflicting(cg, docVersion, cg.heads, Math.min(kept.size >> 1, MAX_PROBE))
        if (fresh !== null) return Merge.start(cg, log, docVersion, firstNew, emit, fresh)
      }
      if (kept.continue(cg, log, firstNew, emit)) return kept
    }
    return Merge.start(cg, log, docVersion, firstNew, emit)
  }

  /**
   * `lvs` reduced to a frontier (no duplicates, no ancestors of the others, ascending) from the
   * versions of walked entries, or null when they do not cover every one of `lvs`.
   */
  minimalFrontier(lvs: readonly LV[]): LV[] | null {
    if (lvs.length <= 1) return lvs.slice()
    const out = this.versions?.minimal(lvs) ?? null
    if (out !== null && Merge.verify) {
      const walked = dominators(this.walk.cg, lvs)
      if (!frontierEquals(walked, out))
        throw new Error(`window versions reduce [${lvs}] to [${out}], the graph to [${walked}]`)
    }
    return out
  }

  /** Whether every character inserted by events `ranges` (sorted, disjoint) has been deleted. */
  deletedAll(ranges: readonly (readonly [LV, LV])[]): boolean {
    const hit = this.walk.deletedIn(ranges[0][0], ranges[ranges.length - 1][1])
    let h = 0
    for (const [lv, end] of ranges) {
      // `hit` is sorted and disjoint, adjacent ones joined: the range lies inside one of them.
      while (h < hit.length && hit[h][1] <= lv) h++
      if (h === hit.length || hit[h][0] > lv || hit[h][1] < end) return false
    }
    return true
  }

  /** Characters tracked, a measure of the memory this merge holds. */
  get size(): number {
    return this.processed - this.base
  }

  check(): void {
    this.walk.tree.check()
  }

  /** The walked characters in document order, tombstones included (placeholder excluded). */
  characters(): { lv: LV; len: number; deleted: boolean }[] {
    const out: { lv: LV; len: number; deleted: boolean }[] = []
    for (let leaf: Leaf | null = this.walk.tree.first; leaf !== null; leaf = leaf.next) {
      for (const it of leaf.items) {
        if (isPlaceholder(it.lv)) continue
        const last = out[out.length - 1]
        if (last !== undefined && last.deleted === it.endDel && last.lv + last.len === it.lv)
          last.len += it.len
        else out.push({ lv: it.lv, len: it.len, deleted: it.endDel })
      }
    }
    return out
  }
}

/** Whether events `start .. end` are all merge events (NOP): no operation to apply. */
function onlyMerges(log: OpLog, start: LV, end: LV): boolean {
  const runs = log.runs
  for (let i = findRun(log, start); i < runs.length && runs[i].start < end; i++)
    if (runs[i].kind !== NOP) return false
  return true
}

/** No ranges (shared: never written to). */
const EMPTY: number[] = []

/**
 * Equal sets of LVs, whatever the ranges' boundaries (adjacent ranges may be split or joined);
 * `flat` holds them as start, end, start, end...
 */
function sameRanges(flat: readonly number[], b: Ranges): boolean {
  const a: Ranges = []
  for (let i = 0; i < flat.length; i += 2) a.push([flat[i], flat[i + 1]])
  const x = joinAdjacent([...a].sort((p, q) => p[0] - q[0]))
  const y = joinAdjacent([...b].sort((p, q) => p[0] - q[0]))
  return x.length === y.length && x.every((r, i) => r[0] === y[i][0] && r[1] === y[i][1])
}

class Walk {
  readonly tree: ItemTree
  private readonly targets: Target[] = []

  emit: Emit = { insert() {}, delete() {} }

  constructor(
    readonly cg: CausalGraph,
    private readonly log: OpLog,
    base: LV,
  ) {
    this.tree = new ItemTree(base)
  }

  retreat(start: LV, end: LV): void {
    const runs = this.log.runs
    const first = findRun(this.log, start)
    let last = first
    while (last < runs.length && runs[last].start < end) last++
    for (let i = last - 1; i >= first; i--) this.toggle(runs[i], start, end, -1)
  }

  advance(start: LV, end: LV): void {
    const runs = this.log.runs
    for (let i = findRun(this.log, start); i < runs.length && runs[i].start < end; i++) {
      this.toggle(runs[i], start, end, 1)
    }
  }

  /**
   * Moves the events of run `op` between `start` and `end` out of (-1) or into (+1) the
   * prepare version (no slice of the run: only its kind and LVs matter here).
   */
  private toggle(op: OpRun, start: LV, end: LV, dir: 1 | -1): void {
    if (op.kind === NOP) return
    const from = Math.max(start, op.start)
    const to = Math.min(end, op.end)
    if (op.kind === INS) return this.toggleChars(from, to - from, dir)
    for (const [target, len] of this.targetsOf(from, to)) this.toggleChars(target, len, dir)
  }

  /** Adds `dir` to the state of characters `lv .. lv+len`, splitting items to fit exactly. */
  private toggleChars(lv: LV, len: number, dir: 1 | -1): void {
    const tree = this.tree
    while (len > 0) {
      // An item inside the range, as a whole run retreated or advanced is: no split, no search.
      let it = isPlaceholder(lv) ? null : tree.itemAt(lv)
      if (it === null || it.lv !== lv || it.len > len) {
        const at = this.isolate(tree.findLv(lv), len)
        it = at.leaf.items[at.idx]
      }
      tree.setItemState(it, it.cur + dir, it.endDel)
      lv += it.len
      len -= it.len
    }
  }

  /** Splits items so that one starts at `from` and holds at most `len` characters; returns its place. */
  private isolate(from: CharAt, len: number): Cursor {
    let at = this.tree.split(from)
    const it = at.leaf.items[at.idx]
    if (it.len > len) this.tree.split({ leaf: at.leaf, idx: at.idx, off: len })
    // The second split may have moved the item to a new leaf.
    if (at.leaf.items[at.idx] !== it) at = this.locate(it)
    return at
  }

  private locate(it: Item): Cursor {
    return this.tree.cursorOf(it)
  }

  /** The target ranges of delete events `start .. end`. */
  private targetsOf(start: LV, end: LV): [LV, number][] {
    const t = this.targets
    let lo = 0
    let hi = t.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (t[mid].del <= start) lo = mid
      else hi = mid - 1
    }
    const out: [LV, number][] = []
    for (let i = lo; i < t.length && t[i].del < end; i++) {
      const r = t[i]
      const s = Math.max(start, r.del)
      const e = Math.min(end, r.del + r.len)
      if (s >= e) continue
      out.push(r.rev ? [r.target + r.len - (e - r.del), e - s] : [r.target + (s - r.del), e - s])
    }
    return out
  }

  /** The characters between LVs `lo` and `hi` that deletes walked so far target, as sorted disjoint ranges. */
  deletedIn(lo: LV, hi: LV): [LV, LV][] {
    const hits: [LV, LV][] = []
    for (const t of this.targets) {
      const s = Math.max(lo, t.target)
      const e = Math.min(hi, t.target + t.len)
      if (s < e) hits.push([s, e])
    }
    hits.sort((a, b) => a[0] - b[0])
    const out: [LV, LV][] = []
    for (const [s, e] of hits) {
      const last = out[out.length - 1]
      if (last !== undefined && last[1] >= s) last[1] = Math.max(last[1], e)
      else out.push([s, e])
    }
    return out
  }

  /** Applies `op`; `elided`: an insert whose characters are deleted from birth (never emitted). */
  apply(op: OpRun, emit: boolean, elided: boolean): void {
    if (op.kind === NOP) return
    if (op.kind === INS) this.insert(op, emit && !elided, elided)
    else if (op.fwd) this.deleteForward(op, emit)
    else this.deleteBackward(op, emit)
  }

  private insert(op: OpRun, emit: boolean, elided: boolean): void {
    const tree = this.tree
    const len = op.end - op.start
    let originLeft = -1
    let cursor: Cursor | null
    if (op.pos === 0) {
      cursor = tree.settle({ leaf: tree.first, idx: 0 })
    } else {
      const left = tree.findCur(op.pos - 1)
      const it = left.leaf.items[left.idx]
      originLeft = it.lv + left.off
      if (left.off + 1 < it.len)
        cursor = tree.split({ leaf: left.leaf, idx: left.idx, off: left.off + 1 })
      else cursor = tree.nextItem(left)
    }
    // The right origin: the first character after the cursor that exists in the prepare version.
    let originRight = -1
    for (let c = cursor; c !== null; c = tree.nextItem(c)) {
      const it = c.leaf.items[c.idx]
      if (it.cur !== NOT_YET_INSERTED) {
        originRight = it.lv
        break
      }
    }
    const item = makeItem(op.start, len, originLeft, originRight, INSERTED, elided)
    const dest = cursor === null ? this.endCursor() : this.integrate(item, cursor)
    const at = tree.insertAt(dest, item)
    if (emit) this.emit.insert(tree.endBefore(at.leaf, at.idx), op.content, op.start)
  }

  /** YjsMod/FugueMax: where among concurrent inserts at the cursor the new item goes. */
  private integrate(item: Item, cursor: Cursor): Cursor {
    const tree = this.tree
    const first = cursor.leaf.items[cursor.idx]
    if (first.cur !== NOT_YET_INSERTED) return cursor
    // Positions of origins are looked up only when the origins differ: concurrent inserts at
    // one place mostly share them (a burst of typing into the same spot shares all of them).
    // (No helper closures here: tsx names every closure it makes, a call each, per insert.)
    let left = NaN
    let right = NaN
    let agent: string | null = null
    let dest: Cursor = cursor
    let scanning = false
    for (let c: Cursor | null = cursor; c !== null;) {
      const other = c.leaf.items[c.idx]
      if (other.cur !== NOT_YET_INSERTED) break
      let sameLeft = other.originLeft === item.originLeft
      if (!sameLeft) {
        if (Number.isNaN(left)) left = item.originLeft === -1 ? -1 : tree.rawPosOf(item.originLeft)
        const oleft = other.originLeft === -1 ? -1 : tree.rawPosOf(other.originLeft)
        if (oleft < left) break
        sameLeft = oleft === left
      }
      if (sameLeft) {
        let sameRight = other.originRight === item.originRight
        let rightOfOther = false
        if (!sameRight) {
          if (Number.isNaN(right)) {
            right = item.originRight === -1 ? Infinity : tree.rawPosOf(item.originRight)
          }
          const oright = other.originRight === -1 ? Infinity : tree.rawPosOf(other.originRight)
          sameRight = oright === right
          rightOfOther = oright < right
        }
        if (sameRight && (agent ??= agentOf(this.cg, item.lv)) < agentOf(this.cg, other.lv)) break
        scanning = rightOfOther
      }
      const next: Cursor | null = tree.nextItem(c)
      if (!scanning) dest = next ?? { leaf: c.leaf, idx: c.idx + 1 }
      c = next
    }
    return dest
  }

  private endCursor(): Cursor {
    let leaf = this.tree.first
    while (leaf.next !== null) leaf = leaf.next
    return { leaf, idx: leaf.items.length }
  }

  private deleteForward(op: OpRun, emit: boolean): void {
    let del = op.start
    let remaining = op.end - op.start
    while (remaining > 0) {
      const found = this.tree.findCur(op.pos)
      const it = found.leaf.items[found.idx]
      const take = Math.min(remaining, it.len - found.off)
      this.deleteChars(found, take, del, false, emit)
      del += take
      remaining -= take
    }
  }

  private deleteBackward(op: OpRun, emit: boolean): void {
    let del = op.start
    let remaining = op.end - op.start
    let pos = op.pos
    while (remaining > 0) {
      const found = this.tree.findCur(pos)
      const take = Math.min(remaining, found.off + 1)
      const from = { leaf: found.leaf, idx: found.idx, off: found.off - take + 1 }
      this.deleteChars(from, take, del, true, emit)
      del += take
      remaining -= take
      pos -= take
    }
  }

  /** Deletes `len` visible characters of one item starting at `from`, by events `del ..`. */
  private deleteChars(from: CharAt, len: number, del: LV, rev: boolean, emit: boolean) {
    const tree = this.tree
    const at = this.isolate(from, len)
    const it = at.leaf.items[at.idx]
    if (!it.endDel && emit) this.emit.delete(tree.endBefore(at.leaf, at.idx), len)
    tree.setState(at, it.cur + 1, true)
    this.targets.push({ del, len, target: it.lv, rev })
  }
}
anchorShape(() => Merge.empty())
