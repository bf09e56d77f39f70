/**
 * A deliberately naive reference replica of TextDoc's semantics: the oracle the fuzzers
 * compare the real core against (STYLE.md item 9).
 *
 * Owns: a list of items, one per inserted UTF-16 code unit, each with its id, its
 * originLeft / originRight (ids or null) and the set of delete events that deleted it;
 * every event (one per code unit inserted or deleted) with its id `(agent, seq)` and its
 * parents (a frontier); a buffer of received events whose parents are missing.
 *
 * Semantics (the contract in /tmp/prompts and API.md):
 * - a local insert at position p, at version V (all events this replica holds): originLeft
 *   is the p-th visible item (null for p = 0), originRight the first item after originLeft
 *   in the full list (every item here is in V); a multi-unit insert is a chain.
 * - integration is YjsMod / FugueMax (reference-crdts `integrateYjsMod`), ties going to the
 *   lower agent by JS string comparison.
 * - a delete of n units at p is n events deleting the visible items p..p+n-1 in order.
 * - an insert received with its text elided (a save drops the text of deleted characters)
 *   is integrated only together with events that delete it: when a delivery would leave
 *   such a character visible, the delivery is redone with every elided event waiting.
 *
 * Invariants: an event is integrated only when all its parents are; events are kept in
 * integration order, which is a causal order. Complexity: O(n) per integrated unit, with
 * O(n) index lookups; meant for documents of at most a few thousand units.
 */

/** An event id: the `seq`-th event (from 0) of `agent`. */
export interface Id {
  readonly agent: string
  readonly seq: number
}

/** One event of the reference: a single code unit inserted, or a single item deleted. */
export type RefEvent =
  | {
      readonly kind: 'ins'
      readonly id: Id
      readonly parents: readonly Id[]
      /** Exactly one UTF-16 code unit. */
      readonly content: string
      readonly originLeft: Id | null
      readonly originRight: Id | null
    }
  | {
      readonly kind: 'del'
      readonly id: Id
      readonly parents: readonly Id[]
      /** The item this event deletes. */
      readonly target: Id
    }
  | {
      /** A merge event: no operation, only parents (TextDoc.mergeHeads). */
      readonly kind: 'merge'
      readonly id: Id
      readonly parents: readonly Id[]
    }

/** `{ [agent]: number of that agent's events held }`, with a null prototype. */
export type RefVersion = Record<string, number>

interface Item {
  readonly id: Id
  readonly content: string
  readonly originLeft: Id | null
  readonly originRight: Id | null
  /** Keys of the delete events that deleted this item. */
  readonly deletedBy: Set<string>
}

/** A collision-free map key for an id (agent names may contain any character). */
export function idKey(id: Id): string {
  return JSON.stringify([id.agent, id.seq])
}

/** A naive replica with the same semantics as TextDoc. */
export class RefDoc {
  readonly agent: string
  /** Every item ever inserted, in document order. */
  private items: Item[] = []
  private itemByKey = new Map<string, Item>()
  /** Integrated events, in integration (causal) order. */
  private log: RefEvent[] = []
  private have = new Map<string, RefEvent>()
  private counts = new Map<string, number>()
  /** Received events whose parents are not all integrated yet, keyed by id. */
  private pending = new Map<string, RefEvent>()
  /** Keys of pending events every copy of which came with its text elided. */
  private elidedPending = new Set<string>()

  constructor(agent: string) {
    this.agent = agent
  }

  /** The visible text: items not deleted by any integrated event. */
  toString(): string {
    let s = ''
    for (const item of this.items) if (item.deletedBy.size === 0) s += item.content
    return s
  }

  get length(): number {
    let n = 0
    for (const item of this.items) if (item.deletedBy.size === 0) n++
    return n
  }

  /** Events held per agent. */
  version(): RefVersion {
    const v: RefVersion = Object.create(null)
    for (const [agent, n] of this.counts) v[agent] = n
    return v
  }

  /** Number of events received but waiting for missing parents. */
  get pendingCount(): number {
    return this.pending.size
  }

  /** The current frontier: integrated events that are no other event's parent. */
  frontier(): Id[] {
    const covered = new Set<string>()
    for (const e of this.log) for (const p of e.parents) covered.add(idKey(p))
    return this.log.filter((e) => !covered.has(idKey(e.id))).map((e) => e.id)
  }

  /** Local insert of `text` at `pos` (UTF-16 units); returns the new events. */
  insert(pos: number, text: string): RefEvent[] {
    const visible = this.visibleItems()
    checkPos(pos, visible.length, 'insert')
    const originLeft = pos === 0 ? null : visible[pos - 1].id
    const leftIdx = originLeft === null ? -1 : this.indexOf(originLeft)
    const originRight = leftIdx + 1 < this.items.length ? this.items[leftIdx + 1].id : null
    const made: RefEvent[] = []
    let parents = this.frontier()
    let left = originLeft
    for (let i = 0; i < text.length; i++) {
      const id = this.nextId()
      const e: RefEvent = {
        kind: 'ins',
        id,
        parents,
        content: text[i],
        originLeft: left,
        originRight,
      }
      this.integrate(e)
      made.push(e)
      parents = [id]
      left = id
    }
    return made
  }

  /** A local merge event when the frontier has several events (as `TextDoc.mergeHeads`). */
  merge(): RefEvent[] {
    const parents = this.frontier()
    if (parents.length < 2) return []
    const e: RefEvent = { kind: 'merge', id: this.nextId(), parents }
    this.integrate(e)
    return [e]
  }

  /** Local delete of `len` units at `pos`; returns the new events. */
  delete(pos: number, len: number): RefEvent[] {
    const visible = this.visibleItems()
    checkPos(pos, visible.length, 'delete')
    if (!Number.isInteger(len) || len < 0 || pos + len > visible.length) {
      throw new RangeError(`delete of ${len} at ${pos} past the end (length ${visible.length})`)
    }
    const made: RefEvent[] = []
    let parents = this.frontier()
    for (let k = 0; k < len; k++) {
      const id = this.nextId()
      const e: RefEvent = { kind: 'del', id, parents, target: visible[pos + k].id }
      this.integrate(e)
      made.push(e)
      parents = [id]
    }
    return made
  }

  /** Every integrated event the holder of `since` lacks, in causal order. */
  events(since?: Readonly<Record<string, number>>): RefEvent[] {
    if (since === undefined) return this.log.slice()
    return this.log.filter((e) => {
      const n = Object.prototype.hasOwnProperty.call(since, e.id.agent) ? since[e.id.agent] : 0
      return e.id.seq >= n
    })
  }

  /**
   * Receive events from another reference replica, in any order, possibly duplicated or
   * with parents missing (those wait). `elided`: keys (idKey) of the inserts whose text the
   * bytes left out. Returns the events newly integrated by this call, in integration order.
   */
  applyEvents(events: readonly RefEvent[], elided: ReadonlySet<string> = new Set()): RefEvent[] {
    for (const e of events) {
      const key = idKey(e.id)
      const known = this.have.get(key) ?? this.pending.get(key)
      if (known !== undefined) {
        if (JSON.stringify(known) !== JSON.stringify(e)) {
          throw new Error(`conflicting content for event ${key}`)
        }
        if (!elided.has(key)) this.elidedPending.delete(key) // this copy brings the text
        continue
      }
      this.pending.set(key, e)
      if (elided.has(key)) this.elidedPending.add(key)
    }
    if (this.elidedPending.size === 0) return this.drain(false)
    const saved = this.copyState()
    const done = this.drain(false)
    const shown = done.some(
      (e) => e.kind === 'ins' && saved.elidedPending.has(idKey(e.id)) && !this.isDeleted(e.id),
    )
    if (!shown) return done
    this.restoreState(saved)
    return this.drain(true)
  }

  /** Integrates every pending event whose parents are here (with `holdElided`, not elided ones). */
  private drain(holdElided: boolean): RefEvent[] {
    const done: RefEvent[] = []
    let progress = true
    while (progress) {
      progress = false
      for (const [key, e] of this.pending) {
        if (holdElided && this.elidedPending.has(key)) continue
        if (!e.parents.every((p) => this.have.has(idKey(p)))) continue
        if (e.id.seq !== (this.counts.get(e.id.agent) ?? 0)) continue
        this.pending.delete(key)
        this.elidedPending.delete(key)
        this.integrate(e)
        done.push(e)
        progress = true
      }
    }
    return done
  }

  private copyState() {
    return {
      items: this.items.map((it) => ({ ...it, deletedBy: new Set(it.deletedBy) })),
      log: this.log.slice(),
      have: new Map(this.have),
      counts: new Map(this.counts),
      pending: new Map(this.pending),
      elidedPending: new Set(this.elidedPending),
    }
  }

  private restoreState(saved: ReturnType<RefDoc['copyState']>): void {
    Object.assign(this, saved)
    this.itemByKey = new Map(saved.items.map((it) => [idKey(it.id), it]))
  }

  /** The id of the visible character at `pos`, or null at the end (TextDoc.anchorAt). */
  anchorAt(pos: number): Id | null {
    const visible = this.visibleItems()
    checkPos(pos, visible.length, 'anchor')
    return pos === visible.length ? null : visible[pos].id
  }

  /**
   * Where the character inserted by event `id` is: the number of visible characters before
   * it (also when it is deleted); the length for null; null when no such character is here.
   */
  positionOf(id: Id | null): number | null {
    if (id === null) return this.length
    const item = this.itemByKey.get(idKey(id))
    if (item === undefined) return null
    let n = 0
    for (const other of this.items) {
      if (other === item) return n
      if (other.deletedBy.size === 0) n++
    }
    throw new Error('unreachable: indexed item not in the list')
  }

  /** True if the character inserted by `id` is here and deleted. */
  isDeleted(id: Id): boolean {
    const item = this.itemByKey.get(idKey(id))
    return item !== undefined && item.deletedBy.size > 0
  }

  /** Ids of every character ever inserted here (deleted ones too), in document order. */
  itemIds(): Id[] {
    return this.items.map((item) => item.id)
  }

  /** Throws if the internal structures disagree with each other. */
  checkInvariants(): void {
    if (this.items.length !== this.itemByKey.size) throw new Error('item index size mismatch')
    for (const item of this.items) {
      if (this.itemByKey.get(idKey(item.id)) !== item) throw new Error('item index mismatch')
      for (const d of item.deletedBy) if (!this.have.has(d)) throw new Error('unknown deleter')
    }
    let total = 0
    for (const [agent, n] of this.counts) {
      total += n
      for (let s = 0; s < n; s++) {
        if (!this.have.has(idKey({ agent, seq: s }))) throw new Error(`gap at ${agent}:${s}`)
      }
    }
    if (total !== this.log.length || total !== this.have.size) throw new Error('count mismatch')
  }

  private visibleItems(): Item[] {
    return this.items.filter((item) => item.deletedBy.size === 0)
  }

  private nextId(): Id {
    return { agent: this.agent, seq: this.counts.get(this.agent) ?? 0 }
  }

  private indexOf(id: Id): number {
    const item = this.itemByKey.get(idKey(id))
    if (item === undefined) throw new Error(`unknown item ${idKey(id)}`)
    return this.items.indexOf(item)
  }

  /** Adds one event whose parents are all integrated. */
  private integrate(e: RefEvent): void {
    const key = idKey(e.id)
    if (this.have.has(key)) throw new Error(`event ${key} integrated twice`)
    for (const p of e.parents) {
      if (!this.have.has(idKey(p))) throw new Error(`event ${key}: parent ${idKey(p)} missing`)
    }
    if (e.kind === 'ins') this.integrateInsert(e)
    else if (e.kind === 'del') {
      const target = this.itemByKey.get(idKey(e.target))
      if (target === undefined) throw new Error(`event ${key} deletes unknown ${idKey(e.target)}`)
      target.deletedBy.add(key)
    }
    this.have.set(key, e)
    this.log.push(e)
    this.counts.set(e.id.agent, e.id.seq + 1)
  }

  /** YjsMod / FugueMax integration, as reference-crdts `integrateYjsMod`. */
  private integrateInsert(e: Extract<RefEvent, { kind: 'ins' }>): void {
    const items = this.items
    const index = new Map<string, number>()
    items.forEach((item, i) => index.set(idKey(item.id), i))
    const at = (id: Id | null, ifNull: number): number => {
      if (id === null) return ifNull
      const i = index.get(idKey(id))
      if (i === undefined) throw new Error(`origin ${idKey(id)} unknown`)
      return i
    }
    const left = at(e.originLeft, -1)
    const right = at(e.originRight, items.length)
    let dest = left + 1
    let scanning = false
    for (let i = left + 1; ; i++) {
      if (!scanning) dest = i
      if (i === items.length || i === right) break
      const other = items[i]
      const oleft = at(other.originLeft, -1)
      const oright = at(other.originRight, items.length)
      if (oleft < left) break
      if (oleft === left) {
        if (oright < right) scanning = true
        else if (oright === right) {
          if (e.id.agent < other.id.agent) break
          scanning = false
        } else scanning = false
      }
    }
    const item: Item = {
      id: e.id,
      content: e.content,
      originLeft: e.originLeft,
      originRight: e.originRight,
      deletedBy: new Set(),
    }
    items.splice(dest, 0, item)
    this.itemByKey.set(idKey(e.id), item)
  }
}

function checkPos(pos: number, length: number, what: string): void {
  if (!Number.isInteger(pos) || pos < 0 || pos > length) {
    throw new RangeError(`${what} position ${pos} out of range [0, ${length}]`)
  }
}

/** A version vector as sorted `[agent, count]` pairs, for comparing regardless of prototype. */
export function versionEntries(v: Readonly<Record<string, number>>): [string, number][] {
  return Object.keys(v)
    .sort()
    .map((k) => [k, v[k]])
}
