/**
 * One undo (or redo) stack of the local user's own changes, rebased lazily over
 * everyone else's (after prosemirror-history's `Branch`, MIT, with plain arrays).
 *
 * Owns: a chronological list of items. An own item holds the inverted step of one local
 * step and that step's map; a map-only item holds the map of a change that is not
 * undoable here (a remote change, or a step already undone). The first item of an event
 * carries the selection before it. Undoing an event maps each of its inverted steps
 * through the maps of everything that came after it (mirrored pairs recover positions
 * inside ranges that were deleted and restored), so it reverts only this user's changes,
 * at their current place.
 *
 * Beyond plain step mapping: the inverse of an own insertion deletes only what is still
 * the own content; text others inserted inside it since is split out and kept
 * (`mapOwnRange`).
 *
 * Invariants: `eventCount` is the number of items with a selection; a `mirrorOffset`
 * points to an earlier item of the same list. Complexity: adding is O(steps) (consecutive
 * steps of one event merge, e.g. typing); an undo costs O(items after the event);
 * map-only items are compacted away once more than `MAX_MAP_ITEMS` accumulate.
 */
import type { SelectionBookmark } from 'prosemirror-state'
import {
  Mapping,
  ReplaceStep,
  type Step,
  type StepMap,
  Transform,
  replaceStep,
} from 'prosemirror-transform'
import { type Node, Slice } from 'prosemirror-model'

/** Map-only items kept before the branch is compacted. */
export const MAX_MAP_ITEMS = 500

interface Item {
  readonly map: StepMap
  /** The inverted own step; absent on a map-only item. */
  readonly step?: Step
  /** The selection before the event this item starts. */
  readonly selection?: SelectionBookmark
  /** How many items back the map this one mirrors is. */
  readonly mirrorOffset?: number
}

/** The result of popping an event: the undo transform, the selection to restore, the rest. */
export interface Popped {
  readonly remaining: Branch
  readonly transform: Transform
  readonly selection: SelectionBookmark
}

export class Branch {
  static readonly empty = new Branch([], 0)

  private constructor(
    private readonly items: readonly Item[],
    readonly eventCount: number,
  ) {}

  /** Records the steps of `transform` as own items; `selection` starts a new event. */
  addTransform(
    transform: Transform,
    selection: SelectionBookmark | undefined,
    depth: number,
  ): Branch {
    const items = this.items.slice()
    let events = this.eventCount
    for (let i = 0; i < transform.steps.length; i++) {
      const step = transform.steps[i].invert(transform.docs[i])
      let item: Item = { map: transform.mapping.maps[i], step, selection }
      const last = items[items.length - 1]
      const merged = last !== undefined && !selection ? mergeItems(last, item) : null
      if (merged) {
        items.pop()
        item = merged
      }
      items.push(item)
      if (selection) {
        events++
        selection = undefined
      }
    }
    const overflow = events - depth
    // Cut in batches, so the copy is not paid on every change.
    if (overflow > 20) return new Branch(cutOffEvents(items, overflow), events - overflow)
    return new Branch(items, events)
  }

  /** Records changes that are not undoable here (remote ones): later undos map through them. */
  addMaps(maps: readonly StepMap[]): Branch {
    if (this.eventCount === 0) return this
    const items = this.items.concat(maps.map((map) => ({ map })))
    const branch = new Branch(items, this.eventCount)
    let mapOnly = 0
    for (const item of items) if (!item.step) mapOnly++
    return mapOnly > MAX_MAP_ITEMS ? branch.compress() : branch
  }

  /**
   * Undoes the last event on `doc`: its inverted steps, each mapped through what came
   * after it. Null when the branch is empty.
   */
  popEvent(doc: Node): Popped | null {
    if (this.eventCount === 0) return null
    let end = this.items.length
    while (!this.items[end - 1].selection) end--
    end--
    const remap = this.remapping(end, this.items.length)
    let mapFrom = remap.maps.length
    const transform = new Transform(doc)
    const addBefore: Item[] = []
    const addAfter: Item[] = []
    let selection: SelectionBookmark | undefined
    for (let i = this.items.length - 1; i >= end; i--) {
      const item = this.items[i]
      if (!item.step) {
        mapFrom--
        addBefore.push(item)
        continue
      }
      addBefore.push({ map: item.map })
      const before = transform.steps.length
      applyAll(transform, mapOwnStep(item.step, remap.slice(mapFrom)))
      const added = transform.mapping.maps.slice(before)
      mapFrom--
      // One step is the mirror image of this item's map (positions inside it are recovered);
      // a split undo has no single mirror.
      for (const map of added) {
        const mirror = added.length === 1 ? mapFrom : undefined
        addAfter.push({
          map,
          mirrorOffset: mirror === undefined ? undefined : addAfter.length + addBefore.length,
        })
        remap.appendMap(map, mirror)
      }
      if (item.selection) selection = item.selection.map(remap.slice(mapFrom))
    }
    const remaining = new Branch(
      this.items.slice(0, end).concat(addBefore.reverse(), addAfter),
      this.eventCount - 1,
    )
    return { remaining, transform, selection: selection! }
  }

  /** The mapping through the maps of items `from..to`, with their mirror pairs. */
  private remapping(from: number, to: number): Mapping {
    const maps = new Mapping()
    for (let i = from; i < to; i++) {
      const item = this.items[i]
      const mirror =
        item.mirrorOffset !== undefined && i - item.mirrorOffset >= from
          ? maps.maps.length - item.mirrorOffset
          : undefined
      maps.appendMap(item.map, mirror)
    }
    return maps
  }

  /**
   * The same history without map-only items: every own step mapped through what came
   * after it, as if the later ones were undone first (which is when it will apply).
   */
  private compress(): Branch {
    const remap = this.remapping(0, this.items.length)
    let mapFrom = remap.maps.length
    const out: Item[] = [] // newest first
    let events = 0
    let eventBegin = 0
    for (let i = this.items.length - 1; i >= 0; i--) {
      const item = this.items[i]
      mapFrom--
      if (!item.step) continue
      const steps = mapOwnStep(item.step, remap.slice(mapFrom + 1))
      // The first of several applies first, so it is the newest item; each item's map is
      // the forward change its inverted step reverts.
      for (const s of steps) {
        out.push({ map: s.getMap().invert(), step: s })
        remap.appendMap(s.getMap(), steps.length === 1 ? mapFrom : undefined)
      }
      if (item.selection) {
        if (out.length > eventBegin) {
          const oldest = out[out.length - 1]
          out[out.length - 1] = { ...oldest, selection: item.selection.map(remap.slice(mapFrom)) }
          events++
        }
        eventBegin = out.length
      }
    }
    return new Branch(out.reverse(), events)
  }
}

/** Applies `steps` in order; a replace that does not fit is fitted (`replaceStep`), else skipped. */
function applyAll(tr: Transform, steps: readonly Step[]): void {
  for (const step of steps) {
    if (tr.maybeStep(step).failed === null) continue
    if (!(step instanceof ReplaceStep)) continue
    const fitted = replaceStep(tr.doc, step.from, step.to, step.slice)
    if (fitted) tr.maybeStep(fitted)
  }
}

/**
 * One item for two consecutive own steps of one event (typing, backspacing), when both
 * inverted steps only delete or only insert: a merged replace would tie the restored text
 * to the start of the deleted range, which concurrent inserts may later separate.
 */
function mergeItems(last: Item, next: Item): Item | null {
  if (!last.step || !next.step || next.selection) return null
  const a = last.step
  const b = next.step
  if (!(a instanceof ReplaceStep) || !(b instanceof ReplaceStep)) return null
  const deletes = (s: ReplaceStep) => s.slice.size === 0
  const inserts = (s: ReplaceStep) => s.from === s.to
  if (!((deletes(a) && deletes(b)) || (inserts(a) && inserts(b)))) return null
  const step = b.merge(a)
  return step ? { map: step.getMap().invert(), step, selection: last.selection } : null
}

function cutOffEvents(items: Item[], n: number): Item[] {
  let cut = 0
  for (let i = 0; i < items.length; i++) {
    if (items[i].selection && n-- === 0) {
      cut = i
      break
    }
  }
  return items.slice(cut)
}

/**
 * An own inverted step mapped through `mapping`: as `Step.map`, except that a replace
 * deleting own content deletes exactly the parts that are still own content (text others
 * inserted inside it is kept), as one delete per part, last part first, the first part
 * carrying the replacement. Empty when the step vanished.
 */
export function mapOwnStep(step: Step, mapping: Mapping): Step[] {
  if (step instanceof ReplaceStep && step.to > step.from) {
    // Exact where plain mapping guesses: its ends may have been deleted (and others' text
    // typed at them), while own content between them survives.
    const parts = mapOwnRange(step.from, step.to, mapping)
    if (parts.length > 0) {
      const steps: Step[] = []
      for (let k = parts.length - 1; k > 0; k--)
        steps.push(new ReplaceStep(parts[k][0], parts[k][1], Slice.empty))
      steps.push(new ReplaceStep(parts[0][0], parts[0][1], step.slice))
      return steps
    }
    // None of the own content is left: nothing to delete (what lies between the mapped
    // ends now is other people's); only a replacement comes back, where the range was.
    if (step.slice.size === 0) return []
    const from = mapping.mapResult(step.from, 1)
    const to = mapping.mapResult(step.to, -1)
    if (from.deletedAcross && to.deletedAcross) return []
    const at = Math.min(from.pos, to.pos)
    return [new ReplaceStep(at, at, step.slice)]
  }
  const mapped = step.map(mapping)
  return mapped ? [mapped] : []
}

/**
 * Where the content of `[from, to)` is after `mapping`: the ascending, disjoint ranges
 * made of it, without what was inserted inside it since and without what was deleted.
 * Content deleted by a map and restored by its mirror counts again (as `Mapping.map`
 * recovers positions). O(maps * changes).
 */
export function mapOwnRange(from: number, to: number, mapping: Mapping): [number, number][] {
  let parts: [number, number][] = from < to ? [[from, to]] : []
  // Pieces deleted by a map whose mirror comes later: restored there.
  const lost = new Map<number, { change: number; from: number; to: number }[]>()
  for (let i = mapping.from; i < mapping.to; i++) {
    const map = mapping.maps[i]
    const changes: [number, number, number, number][] = []
    map.forEach((os, oe, ns, ne) => changes.push([os, oe, ns, ne]))
    const mirror = mapping.getMirror(i)
    const keep = mirror !== undefined && mirror > i && mirror < mapping.to
    const next: [number, number][] = []
    for (const [a, b] of parts) {
      let cur = a
      let diff = 0
      for (let k = 0; k < changes.length; k++) {
        const [os, oe, ns, ne] = changes[k]
        if (oe <= cur) {
          diff = ne - oe
          continue
        }
        if (os >= b) break
        if (os > cur) next.push([cur + ns - os, ns])
        const lo = Math.max(cur, os)
        const hi = Math.min(b, oe)
        if (keep && hi > lo) {
          const list = lost.get(mirror!) ?? []
          list.push({ change: k, from: lo - os, to: hi - os })
          lost.set(mirror!, list)
        }
        cur = Math.max(cur, oe)
        diff = ne - oe
        if (cur >= b) break
      }
      if (cur < b) next.push([cur + diff, b + diff])
    }
    const restored = lost.get(i)
    if (restored) {
      lost.delete(i)
      for (const r of restored) {
        const c = changes[r.change]
        if (c === undefined) continue
        const lo = Math.min(c[2] + r.from, c[3])
        const hi = Math.min(c[2] + r.to, c[3])
        if (hi > lo) next.push([lo, hi])
      }
      next.sort((x, y) => x[0] - y[0])
    }
    parts = joinTouching(next)
  }
  return parts
}

function joinTouching(parts: [number, number][]): [number, number][] {
  const out: [number, number][] = []
  for (const p of parts) {
    const last = out[out.length - 1]
    if (last && p[0] <= last[1]) last[1] = Math.max(last[1], p[1])
    else if (p[1] > p[0]) out.push([p[0], p[1]])
  }
  return out
}
