/**
 * `TextDoc`: a plain-text replica. It owns the causal graph, the op log and
 * the content, accepts local edits at once, and merges remote events: events
 * made on the document's current version apply as they are; concurrent ones go
 * through the walker. A merge is all-or-nothing: a bad update (malformed, or
 * inconsistent with what we hold) throws and rolls every structure back.
 *
 * Steady state holds the content, the run-length graph and op log; no
 * per-character metadata. A loaded document holds its snapshot text and the
 * encoded history, decoded on first need.
 */
import {
  type CausalGraph,
  type Frontier,
  type LV,
  type VersionVector,
  addEvents,
  checkGraph,
  createGraph,
  findEntry,
  frontierEquals,
  lvToRaw,
  nextSeq,
  rangesMissingFrom,
  rawToLv,
  truncateGraph,
  versionVector,
} from './causal-graph.ts'
import {
  DEL,
  INS,
  NOP,
  type OpLog,
  type OpRun,
  checkOpLog,
  createOpLog,
  findRun,
  isElided,
  opsIn,
  pushOp,
} from './oplog.ts'
import { GapBuffer } from './gap-buffer.ts'
import { type Emit, Merge } from './walker.ts'
import { IdIndex } from './id-index.ts'
import { type IncomingSpan, PendingEvents, hasElidedText, sliceOp, sliceSpan } from './pending.ts'
import { attachOps, byNewestParent, checkKnown, minimalFrontier, toOpSpan } from './incoming.ts'
import {
  type DecodedUpdate,
  type EventSpan,
  type OpSpan,
  type RawId,
  decodeHistory,
  decodeSnapshot,
  type DecodedSnapshot,
  KIND_SNAPSHOT,
  decodeUpdate,
  encodeSnapshot,
  encodeSnapshotAsync,
  messageKind,
  MAX_SNAPSHOT_BODY,
  encodeUpdate,
} from './encoding.ts'
import { DecodeError } from './varint.ts'
import { Emitter } from './emitter.ts'
import { randomAgent } from './agent.ts'
import { anchorShape } from './shape-anchors.ts'

export type TextOp = { index: number; insert: string } | { index: number; delete: number }
export type { VersionVector } from './causal-graph.ts'

/** Events whose parents have not arrived are held, up to this many. */
export const MAX_PENDING_EVENTS = 1_000_000
/** A concurrent merge's walk is kept for the next merge while it tracks at most this many events. */
const MAX_KEPT_MERGE = 2_000_000
/**
 * When `save()` drops the text of deleted characters (elides it). `from`: once this many
 * inserted characters are deleted; below, the walk that finds them costs more than the bytes
 * it saves. `minStretch`: a deleted stretch inside a run with visible text is elided from
 * this many characters; a shorter one would cost more in op headers (the run is split around
 * it) than its text. Tests lower both, so that small documents elide too.
 */
export const elision = { from: 64, minStretch: 8 }

interface Checkpoint {
  next: LV
  entries: number
  lastEntryEnd: LV
  heads: LV[]
  runs: number
  lastRun: { end: LV; fwd: boolean; content: string } | null
  pending: Map<string, IncomingSpan[]> | null
}

/**
 * Applies a merge's transformed ops to the content (and the id index), recording them as the
 * changes to announce; `undo` takes them back, newest first, when the merge fails midway.
 */
class ContentPatcher implements Emit {
  readonly changes: TextOp[] = []
  /** The text each delete removed, in order. */
  private readonly removed: string[] = []

  constructor(
    private readonly content: GapBuffer,
    private readonly ids: IdIndex | null,
  ) {}

  insert(pos: number, text: string, lv: LV): void {
    const content = this.content
    if (pos > content.length)
      throw new DecodeError(`remote insert at ${pos} is past the end (${content.length})`)
    content.insert(pos, text)
    this.ids?.insert(pos, lv, text.length)
    this.changes.push({ index: pos, insert: text })
  }

  delete(pos: number, len: number): void {
    const content = this.content
    if (pos + len > content.length)
      throw new DecodeError(`remote delete of ${len} at ${pos} is past the end (${content.length})`)
    this.removed.push(content.slice(pos, pos + len))
    content.delete(pos, len)
    this.ids?.delete(pos, len)
    this.changes.push({ index: pos, delete: len })
  }

  undo(): void {
    const { changes, removed, content } = this
    let r = removed.length
    for (let i = changes.length - 1; i >= 0; i--) {
      const op = changes[i]
      if ('insert' in op) content.delete(op.index, op.insert.length)
      else content.insert(op.index, removed[--r])
    }
  }
}
anchorShape(() => new ContentPatcher(new GapBuffer(), null))

/** A merge placed elided characters whose deletes have not all arrived (they wait for parents). */
class ElidedTooSoon extends Error {}

/** Most chunks a saved history keeps (`TextDoc.historyChunks`). */
const MAX_HISTORY_CHUNKS = 24

/**
 * A document keeps its saved history's chunks for the next save from `keepFrom` events on.
 * Below that, encoding all of it again costs little (about 4 µs an event) and the kept bytes
 * would be most of a small document's memory on a server. Tests lower it.
 */
export const historyChunking = { keepFrom: 4096 }

interface LazyHistory {
  readonly chunks: readonly Uint8Array[]
  readonly version: VersionVector
  readonly heads: readonly RawId[]
}

export class TextDoc {
  /** This replica's agent id: every local edit is an event `(agent, seq)`. */
  readonly agent: string
  private cg: CausalGraph = createGraph()
  private log: OpLog = createOpLog()
  private content: GapBuffer
  private readonly pending = new PendingEvents(MAX_PENDING_EVENTS)
  /** The walk of the last concurrent merge, kept while concurrency lasts. */
  private merge: Merge | null = null
  /** Position <-> character id map, built on first use (anchors). */
  private ids: IdIndex | null = null
  /**
   * False after a concurrent merge: the index was kept up through the merge's transformed
   * ops, so every visible character's id is exact, but a tombstone next to a concurrent
   * insert may sit on the other side of it than the walk would put it. Only the position
   * of a deleted character depends on that; asking for one rebuilds the index.
   */
  private tombstonesExact = true
  private lazy: LazyHistory | null = null
  /**
   * The history as the last `save` encoded it, reused by the next: chunks of events
   * `0 .. ends[0]`, `ends[0] .. ends[1]`... (`ends` ascending; see `historyChunks`).
   */
  private saved: {
    readonly chunks: Uint8Array[]
    readonly ends: LV[]
    /** The `elision` settings they were encoded with (tests change them). */
    readonly from: number
    readonly minStretch: number
  } | null = null
  private readonly emitter = new Emitter<{
    update: [update: Uint8Array, origin: unknown]
    lazyUpdate: [encode: () => Uint8Array, origin: unknown]
    change: [ops: TextOp[], origin: unknown]
  }>()

  /** @param agent this session's agent id; a random one when omitted. */
  constructor(agent?: string) {
    if (agent !== undefined && (typeof agent !== 'string' || agent.length === 0))
      throw new TypeError('agent must be a non-empty string')
    this.agent = agent ?? randomAgent()
    this.content = new GapBuffer()
  }

  /** Loads a document saved with `save()`: reads the snapshot; history is decoded when needed. */
  static load(bytes: Uint8Array, agent?: string): TextDoc {
    const doc = new TextDoc(agent)
    doc.adopt(decodeSnapshot(bytes))
    return doc
  }

  /** Becomes the snapshot's document: its text now, its history when needed. */
  private adopt(snap: DecodedSnapshot): void {
    this.content = new GapBuffer(snap.text)
    const version: { [agent: string]: number } = {}
    for (const [a, n] of snap.version)
      Object.defineProperty(version, a, { value: n, enumerable: true })
    this.lazy = { chunks: snap.history, version, heads: snap.heads }
    this.saved = null
    this.ids = null
    this.merge = null
  }

  /** Length in UTF-16 code units. */
  get length(): number {
    return this.content.length
  }

  toString(): string {
    return this.content.toString()
  }

  /** Events held back until their parents arrive. */
  get pendingCount(): number {
    return this.pending.count
  }

  /** For each agent, the number of its events this document holds (pending ones excluded). */
  version(): VersionVector {
    if (this.lazy !== null) return { ...this.lazy.version }
    return versionVector(this.cg)
  }

  /** Inserts `text` at `pos`. Throws RangeError (changing nothing) for a bad position. */
  insert(pos: number, text: string): void {
    if (typeof text !== 'string') throw new TypeError('text must be a string')
    this.checkPos(pos, 'insert position')
    if (!text.isWellFormed()) throw new Error('text contains a lone surrogate (invalid UTF-16)')
    if (text.length === 0) return
    this.loadHistory()
    const cg = this.cg
    const lv = addEvents(cg, this.agent, nextSeq(cg, this.agent), text.length, cg.heads)
    pushOp(this.log, lv, INS, pos, text.length, text)
    this.content.insert(pos, text)
    this.ids?.insert(pos, lv, text.length)
    if (this.observed) this.announce(lv, [{ index: pos, insert: text }], undefined)
  }

  /** Deletes `length` code units from `pos`. Throws RangeError (changing nothing) for a bad range. */
  delete(pos: number, length: number): void {
    this.checkPos(pos, 'delete position')
    if (!Number.isInteger(length) || length < 0)
      throw new RangeError(`delete length ${length} is not a non-negative integer`)
    if (pos + length > this.length)
      throw new RangeError(`delete of ${length} from ${pos} runs past the end (${this.length})`)
    this.checkPos(pos + length, 'delete end')
    if (length === 0) return
    this.loadHistory()
    const cg = this.cg
    const lv = addEvents(cg, this.agent, nextSeq(cg, this.agent), length, cg.heads)
    pushOp(this.log, lv, DEL, pos, length, '')
    this.content.delete(pos, length)
    this.ids?.delete(pos, length)
    if (this.observed) this.announce(lv, [{ index: pos, delete: length }], undefined)
  }

  /**
   * Joins the heads with a merge event when there are several: an event without an operation
   * (it changes no text) whose parents are the heads, so that the next event made here or by a
   * replica that has it names one parent instead of every concurrent edit. A hub relaying many
   * writers (the server) calls it after integrating their edits: with it every replica's
   * frontier stays narrow, and so does the cost of integrating an edit, however many write at
   * once and however late edits arrive. Returns whether it made one.
   */
  mergeHeads(): boolean {
    if (this.lazy !== null || this.cg.heads.length < 2) return false
    const cg = this.cg
    const lv = addEvents(cg, this.agent, nextSeq(cg, this.agent), 1, cg.heads)
    pushOp(this.log, lv, NOP, 0, 1, '')
    if (this.observed) this.announce(lv, [], undefined)
    return true
  }

  /** Every event the holder of `since` lacks (all events when omitted), encoded. */
  encodeUpdate(since?: VersionVector): Uint8Array {
    if (since !== undefined && (since === null || typeof since !== 'object'))
      throw new TypeError('since must be a version vector object')
    // A replica with nothing gets the whole document: it reads the text instead of replaying.
    if (since === undefined || Object.values(since).every((n) => n === 0)) return this.save()
    this.loadHistory()
    const ranges = rangesMissingFrom(this.cg, since)
    return encodeUpdate(this.eventsIn(ranges))
  }

  /**
   * Merges an update. Idempotent and order-free; events with missing parents
   * wait. Malformed or inconsistent bytes throw and change nothing.
   */
  applyUpdate(update: Uint8Array, origin?: unknown): void {
    if (messageKind(update) === KIND_SNAPSHOT) {
      // A whole document (what `encodeUpdate()` sends to an empty replica).
      const snap = decodeSnapshot(update)
      if (this.lazy === null && this.cg.next === 0 && this.pending.isEmpty) {
        // Nothing here yet: take its text as is, no replay.
        this.adopt(snap)
        if (snap.text.length > 0 && this.emitter.has('change'))
          this.emitter.emit('change', [{ index: 0, insert: snap.text }], origin)
        if (snap.version.length > 0) {
          this.emitter.emit('lazyUpdate', () => update, origin)
          this.emitter.emit('update', update, origin)
        }
        return
      }
      this.loadHistory()
      const history = snap.history.length === 1 ? snap.history[0] : undefined
      this.integrate(decodeHistory(snap.history), origin, history)
      return
    }
    const decoded = decodeUpdate(update)
    this.loadHistory()
    this.integrate(decoded, origin, update)
  }

  /**
   * The whole document: content, version and history. The text of deleted characters is
   * dropped (elided): every replica that receives these events receives their deletes with them.
   */
  save(): Uint8Array {
    return encodeSnapshot(this.snapshot())
  }

  /**
   * `save()`, its text deflated off the calling thread where the runtime can (Node): the
   * document as it is when called, whatever changes before the promise settles. For a server
   * saving large documents without holding its event loop.
   */
  saveAsync(): Promise<Uint8Array> {
    return encodeSnapshotAsync(this.snapshot())
  }

  /** What `save` encodes: the document now. */
  private snapshot(): DecodedSnapshot {
    const history = this.lazy !== null ? this.lazy.chunks : this.historyChunks()
    const version = Object.entries(this.version())
    const heads =
      this.lazy !== null ? this.lazy.heads : this.cg.heads.map((lv) => lvToRaw(this.cg, lv))
    // The text read without caching it: a hub saves its documents for joining clients and for
    // storage, and an idle document would otherwise hold its text twice (buffer and string).
    const text = this.content.slice(0, this.content.length)
    return { text, version, heads, history }
  }

  on(event: 'update', handler: (update: Uint8Array, origin: unknown) => void): () => void
  on(event: 'change', handler: (ops: TextOp[], origin: unknown) => void): () => void
  on(event: 'update' | 'change', handler: (...args: never[]) => void): () => void {
    if (event !== 'update' && event !== 'change')
      throw new TypeError(`unknown event ${String(event)}`)
    return this.emitter.on(event, handler as never)
  }

  /**
   * Like `on('update')`, but the update is encoded only when `encode()` is first called, at
   * any later time (for sync links: see `Replica.onLazyUpdate`). Lazy listeners hear an update
   * before the `'update'` listeners do.
   */
  onLazyUpdate(handler: (encode: () => Uint8Array, origin: unknown) => void): () => void {
    return this.emitter.on('lazyUpdate', handler)
  }

  /**
   * The id of the character at `pos` (an anchor that follows that character
   * through concurrent edits), or null at the end of the document.
   */
  anchorAt(pos: number): { agent: string; seq: number } | null {
    this.checkPos(pos, 'anchor position')
    const lv = this.idIndex().lvAt(pos)
    if (lv < 0) return null
    const [agent, seq] = lvToRaw(this.cg, lv)
    return { agent, seq }
  }

  /**
   * Where an anchor's character is now; the end of the document for null; null
   * when this replica does not have that character; where it was if deleted
   * (the same on every replica that has the same events). Asking for a deleted
   * character after a concurrent merge rebuilds the index with a walk over the history.
   */
  positionOf(anchor: { agent: string; seq: number } | null): number | null {
    if (anchor === null) return this.length
    this.loadHistory()
    const lv = rawToLv(this.cg, String(anchor.agent), Number(anchor.seq))
    if (lv < 0) return null
    let found = this.idIndex().find(lv)
    if (found !== null && found.deleted && !this.tombstonesExact) {
      this.ids = null
      found = this.idIndex().find(lv)
    }
    return found === null ? null : found.pos
  }

  private idIndex(): IdIndex {
    if (this.ids !== null) return this.ids
    this.loadHistory()
    this.tombstonesExact = true
    const noop = { insert() {}, delete() {} }
    const walk = this.cg.next === 0 ? null : Merge.start(this.cg, this.log, [], 0, noop)
    return (this.ids = new IdIndex(walk === null ? [] : walk.characters()))
  }

  /** Throws when internal structures are inconsistent; replays the history when it is small. For tests. */
  checkInvariants(): void {
    if (this.lazy !== null) return
    checkGraph(this.cg)
    checkOpLog(this.log, this.cg.next)
    this.merge?.check()
    if (this.cg.next <= 20_000) {
      const replay = new TextDoc('~check')
      replay.integrate(this.eventsIn([[0, this.cg.next]]), null)
      if (replay.toString() !== this.toString())
        throw new Error('content differs from a replay of the history')
    }
  }

  // ---- internals -------------------------------------------------------

  private checkPos(pos: number, what: string): void {
    if (!Number.isInteger(pos)) throw new RangeError(`${what} ${pos} is not an integer`)
    if (pos < 0 || pos > this.length)
      throw new RangeError(`${what} ${pos} out of range [0, ${this.length}]`)
    const before = this.content.charCodeAt(pos - 1)
    const after = this.content.charCodeAt(pos)
    if (before >= 0xd800 && before < 0xdc00 && after >= 0xdc00 && after < 0xe000)
      throw new RangeError(`${what} ${pos} is inside a surrogate pair`)
  }

  /**
   * The history encoded as chunks, each save encoding only the events since the last one (a
   * busy server saves a growing document over and over: re-encoding all of it held the event
   * loop 246 ms for a 10-client session's document). The text of a chunk's inserts that are
   * deleted by then is elided; their deletes are in the same chunk (an event follows what it
   * deletes). The last chunk is merged into the new one (both encoded again) while it holds
   * under a quarter of the new one's events, or while there are `MAX_HISTORY_CHUNKS`: saves of
   * a document that grows by a fraction each time (a server's compactions) keep their chunks,
   * and the small ones that joins in between leave are folded into the next.
   */
  private historyChunks(): Uint8Array[] {
    const next = this.cg.next
    const saved = this.saved
    let chunks: Uint8Array[] = []
    let ends: LV[] = []
    if (
      saved !== null &&
      saved.ends[saved.ends.length - 1] <= next &&
      saved.from === elision.from &&
      saved.minStretch === elision.minStretch
    ) {
      chunks = saved.chunks.slice()
      ends = saved.ends.slice()
    }
    let from = ends.length > 0 ? ends[ends.length - 1] : 0
    if (from === next && chunks.length > 0) return chunks
    while (ends.length > 0) {
      const start = ends.length > 1 ? ends[ends.length - 2] : 0
      if ((from - start) * 4 > next - from && ends.length < MAX_HISTORY_CHUNKS) break
      chunks.pop()
      ends.pop()
      from = start
    }
    chunks.push(encodeUpdate(this.eventsIn([[from, next]], this.visibleChars())))
    ends.push(next)
    this.saved =
      next >= historyChunking.keepFrom
        ? { chunks, ends, from: elision.from, minStretch: elision.minStretch }
        : null
    return chunks
  }

  private loadHistory(): void {
    const lazy = this.lazy
    if (lazy === null) return
    const fresh = new TextDoc(this.agent)
    const ends: LV[] = []
    for (const chunk of lazy.chunks) {
      for (const span of attachOps(decodeUpdate(chunk, MAX_SNAPSHOT_BODY))) {
        if (fresh.tryAdd(span) !== 'added')
          throw new DecodeError('snapshot history is incomplete (an event lacks its parents)')
      }
      ends.push(fresh.cg.next)
    }
    const heads = fresh.cg.heads.map((lv) => lvToRaw(fresh.cg, lv))
    const same =
      heads.length === lazy.heads.length &&
      heads.every(([a, s], i) => a === lazy.heads[i][0] && s === lazy.heads[i][1])
    if (!same) throw new DecodeError('snapshot history does not match its version')
    this.cg = fresh.cg
    this.log = fresh.log
    // The snapshot's chunks hold events 0 .. ends, in this order: the next save keeps them.
    this.saved =
      fresh.cg.next >= historyChunking.keepFrom
        ? { chunks: lazy.chunks.slice(), ends, from: elision.from, minStretch: elision.minStretch }
        : null
    this.lazy = null
  }

  /**
   * The LVs of the characters visible now, sorted and disjoint, from the id index (built by a
   * walk over the history when missing); null when too few characters are deleted to pay.
   */
  private visibleChars(): [LV, LV][] | null {
    let inserted = 0
    for (const r of this.log.runs) if (r.kind === INS) inserted += r.end - r.start
    if (inserted - this.length < elision.from) return null
    return this.idIndex().visible()
  }

  /**
   * Encodes the events in `ranges` as an update; with `visible` (see `visibleChars`), the text
   * of the other inserted characters is elided.
   */
  private eventsIn(
    ranges: readonly (readonly [LV, LV])[],
    visible: readonly (readonly [LV, LV])[] | null = null,
  ): DecodedUpdate {
    const cg = this.cg
    const spans: EventSpan[] = []
    const ops: OpSpan[] = []
    for (const [start, end] of ranges) {
      if (start >= end) continue
      for (let lv = start; lv < end;) {
        const e = cg.entries[findEntry(cg, lv)]
        const spanEnd = Math.min(end, e.end)
        let parents: RawId[]
        if (lv === e.start) {
          parents = new Array<RawId>(e.parents.length)
          for (let i = 0; i < parents.length; i++) parents[i] = lvToRaw(cg, e.parents[i])
        } else parents = [[e.agent, e.seq + (lv - e.start) - 1]]
        spans.push({ agent: e.agent, seq: e.seq + (lv - e.start), len: spanEnd - lv, parents })
        lv = spanEnd
      }
      for (const op of opsIn(this.log, start, end)) {
        if (visible !== null && op.kind === INS && !isElided(op)) elideDeleted(op, visible, ops)
        else ops.push(toOpSpan(op))
      }
    }
    return { spans, ops }
  }

  /**
   * Adds what is new in `update` (and what it releases from the pending buffer), then applies
   * it. `bytes`, the update as received, is announced as is when it held exactly the new events.
   */
  private integrate(update: DecodedUpdate, origin: unknown, bytes?: Uint8Array): void {
    try {
      this.integrateOnce(update, origin, bytes, false)
    } catch (e) {
      if (!(e instanceof ElidedTooSoon)) throw e
      // Elided inserts whose deletes are not all here yet wait with their descendants.
      this.integrateOnce(update, origin, bytes, true)
    }
  }

  /** `integrate`; `holdElided`: events with elided text wait in the pending buffer. */
  private integrateOnce(
    update: DecodedUpdate,
    origin: unknown,
    bytes: Uint8Array | undefined,
    holdElided: boolean,
  ): void {
    const mark = this.checkpoint()
    const firstNew = this.cg.next
    const patcher = new ContentPatcher(this.content, this.ids)
    let exact = bytes !== undefined
    try {
      let added = false
      let spans = byNewestParent(this.cg, attachOps(update))
      if (!this.pending.isEmpty && spans.some(hasElidedText)) {
        // A held copy that carries the text wins over an elided one: meet in the buffer first.
        for (const span of spans) this.pending.hold(span)
        spans = this.pending.takeAll().sort((a, b) => a.seq - b.seq)
        exact = false
      }
      for (const span of spans) {
        const have = this.cg.next
        if (this.place(span, holdElided)) added = true
        if (this.cg.next - have !== span.len) exact = false
      }
      if (added && !this.pending.isEmpty) exact = false
      // Held elided inserts are retried with every update: it may bring their deletes, which
      // wait for them (nothing else is added then).
      if (!holdElided && !added && this.pending.some(hasElidedText)) added = true
      while (added && !this.pending.isEmpty) {
        added = false
        for (const span of this.pending.takeAll().sort((a, b) => a.seq - b.seq)) {
          if (this.place(span, holdElided)) added = true
        }
      }
      if (this.cg.next > firstNew) this.applyNew(mark.heads, firstNew, patcher)
    } catch (e) {
      patcher.undo()
      this.rollback(mark)
      throw e
    }
    if (this.cg.next > firstNew)
      this.announce(firstNew, patcher.changes, origin, exact ? bytes : undefined)
  }

  /**
   * Adds `span` or holds it until its parents arrive; with `holdElided`, its events from the
   * first new elided insert on are held too. Returns whether events were added.
   */
  private place(span: IncomingSpan, holdElided: boolean): boolean {
    if (holdElided) {
      const cut = firstElided(span, nextSeq(this.cg, span.agent) - span.seq)
      if (cut >= 0) {
        this.pending.hold(sliceSpan(span, cut, span.len - cut))
        if (cut === 0) return false
        span = sliceSpan(span, 0, cut)
      }
    }
    const result = this.tryAdd(span)
    if (result === 'wait') this.pending.hold(span)
    return result === 'added'
  }

  /** Adds the part of `span` we lack, if its parents are here; checks the part we have. */
  private tryAdd(span: IncomingSpan): 'added' | 'known' | 'wait' {
    const cg = this.cg
    const have = nextSeq(cg, span.agent)
    for (const [a, seq] of span.parents) {
      if (a === span.agent && seq >= span.seq)
        throw new DecodeError(
          `event (${span.agent}, ${span.seq}) names its own or a later event as parent`,
        )
    }
    const known = Math.min(span.len, Math.max(0, have - span.seq))
    if (known > 0) checkKnown(this.cg, this.log, span, known)
    if (known === span.len) return 'known'
    if (span.seq > have) return 'wait'
    let parents: LV[]
    if (known > 0) {
      parents = [rawToLv(cg, span.agent, have - 1)]
    } else {
      parents = []
      for (const [a, seq] of span.parents) {
        const lv = rawToLv(cg, a, seq)
        if (lv < 0) return 'wait'
        parents.push(lv)
      }
      // A kept merge knows the versions of recent events: no walk back through the graph.
      parents = this.merge?.minimalFrontier(parents) ?? minimalFrontier(this.cg, parents)
    }
    const len = span.len - known
    let lv = addEvents(cg, span.agent, have, len, parents)
    let skip = known
    for (const op of span.ops) {
      if (skip >= op.len) {
        skip -= op.len
        continue
      }
      const piece = skip > 0 ? sliceOp(op, skip, op.len - skip) : op
      skip = 0
      pushOp(this.log, lv, piece.kind, piece.pos, piece.len, piece.content, piece.fwd)
      lv += piece.len
    }
    return 'added'
  }

  /**
   * Brings the content from version `before` to the graph's heads. New elided inserts go
   * through the walker, which places their characters deleted from birth (no text shown);
   * every one of them must then be deleted by the events held, else they wait (ElidedTooSoon).
   */
  private applyNew(before: Frontier, firstNew: LV, emit: ContentPatcher): void {
    const cg = this.cg
    let version: Frontier = before
    let lv = firstNew
    const elided = this.elidedSince(firstNew)
    // Fast path: events made on the version the content is at apply as they are.
    while (lv < cg.next && elided === null) {
      const e = cg.entries[findEntry(cg, lv)]
      const parents = lv === e.start ? e.parents : [lv - 1]
      if (!frontierEquals(parents, version)) break
      for (const op of opsIn(this.log, lv, e.end)) {
        if (op.kind === NOP) continue
        const len = op.end - op.start
        if (op.kind === INS) emit.insert(op.pos, op.content, op.start)
        else if (op.fwd) emit.delete(op.pos, len)
        else emit.delete(op.pos - len + 1, len)
      }
      version = [e.end - 1]
      lv = e.end
    }
    if (lv < cg.next) {
      this.merge = Merge.run(this.merge, cg, this.log, version, lv, emit)
      // The id index followed the transformed ops; tombstones may be out of the walk's order.
      this.tombstonesExact = false
    }
    if (elided !== null) {
      // Their deletes may still be on the way (or wait for other parents): hold them back.
      if (!this.merge!.deletedAll(elided)) throw new ElidedTooSoon()
      this.ids = null // it never saw the elided characters
    }
    // At a critical version (one head) the next merge's zone is short: drop the walk. Not at a
    // merge event: it joins what a hub had, and edits made before it are still on the way.
    const head = cg.heads.length === 1 ? cg.heads[0] : -1
    if (
      (head >= 0 && this.log.runs[findRun(this.log, head)].kind !== NOP) ||
      (this.merge !== null && this.merge.size > MAX_KEPT_MERGE)
    )
      this.merge = null
  }

  /** The LVs from `firstNew` on whose inserts are elided, or null when there are none. */
  private elidedSince(firstNew: LV): [LV, LV][] | null {
    const runs = this.log.runs
    let out: [LV, LV][] | null = null
    for (let i = findRun(this.log, firstNew); i < runs.length; i++) {
      if (isElided(runs[i])) (out ??= []).push([Math.max(firstNew, runs[i].start), runs[i].end])
    }
    return out
  }

  private checkpoint(): Checkpoint {
    const cg = this.cg
    const lastRun = this.log.runs[this.log.runs.length - 1]
    return {
      next: cg.next,
      entries: cg.entries.length,
      lastEntryEnd: cg.entries.length > 0 ? cg.entries[cg.entries.length - 1].end : 0,
      heads: cg.heads.slice(), // addEvents changes the heads in place
      runs: this.log.runs.length,
      lastRun: lastRun ? { end: lastRun.end, fwd: lastRun.fwd, content: lastRun.content } : null,
      pending: this.pending.isEmpty ? null : this.pending.snapshot(),
    }
  }

  /** Takes the graph, op log and pending buffer back to `mark` (the content is the patcher's). */
  private rollback(mark: Checkpoint): void {
    truncateGraph(this.cg, mark.next, mark.entries, mark.lastEntryEnd, mark.heads)
    const runs = this.log.runs
    runs.length = mark.runs
    if (mark.lastRun !== null) Object.assign(runs[runs.length - 1], mark.lastRun)
    this.pending.restore(mark.pending ?? new Map())
    this.merge = null
    this.ids = null
  }

  /** Whether anyone listens: local edits build their change record only then. */
  private get observed(): boolean {
    const e = this.emitter
    return e.has('change') || e.has('update') || e.has('lazyUpdate')
  }

  /**
   * Tells listeners about events `from ..` (encoded, unless `bytes` already are; for lazy
   * listeners only if they ask) and the content changes they made. Encoding later gives the
   * same bytes: the graph and the op log are only appended to once the history is loaded
   * (every edit and merge loads it first), and a rollback only drops events after its mark.
   */
  private announce(from: LV, changes: TextOp[], origin: unknown, bytes?: Uint8Array): void {
    const e = this.emitter
    if (e.has('change') && changes.length > 0) e.emit('change', changes, origin)
    const eager = e.has('update')
    if (!eager && !e.has('lazyUpdate')) return
    const to = this.cg.next
    let update = bytes ?? (eager ? encodeUpdate(this.eventsIn([[from, to]])) : undefined)
    // Lazy listeners (update logs) first: an 'update' listener that edits this document
    // re-entrantly then appends its update to the logs after this one, in causal order.
    e.emit('lazyUpdate', () => (update ??= encodeUpdate(this.eventsIn([[from, to]]))), origin)
    if (eager) e.emit('update', update!, origin)
  }
}
anchorShape(() => new TextDoc())

/**
 * Appends insert run `op` to `out` with the text of its deleted characters elided (`visible`:
 * the visible characters' LVs, sorted and disjoint): the whole run when none is visible, else
 * each deleted stretch of at least `elision.minStretch` characters, the run split around it.
 */
function elideDeleted(op: OpRun, visible: readonly (readonly [LV, LV])[], out: OpSpan[]): void {
  // The first visible range ending after the run's start.
  let lo = 0
  let hi = visible.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (visible[mid][1] <= op.start) lo = mid + 1
    else hi = mid
  }
  // Stretches [start, end) of the run, each with its text or elided.
  const pieces: [start: LV, end: LV, text: boolean][] = []
  let i = lo
  for (let at = op.start; at < op.end;) {
    let end: LV
    let text: boolean
    if (i < visible.length && visible[i][0] <= at) {
      end = Math.min(op.end, visible[i][1])
      text = true
      if (end === visible[i][1]) i++
    } else {
      end = i < visible.length ? Math.min(op.end, visible[i][0]) : op.end
      text = at === op.start && end === op.end ? false : end - at < elision.minStretch
    }
    const last = pieces[pieces.length - 1]
    if (last !== undefined && last[2] === text) last[1] = end
    else pieces.push([at, end, text])
    at = end
  }
  for (const [start, end, text] of pieces) {
    const off = start - op.start
    const content = text ? op.content.slice(off, off + (end - start)) : ''
    out.push({ kind: INS, len: end - start, pos: op.pos + off, fwd: true, content })
  }
}

/** The offset in `span` of its first event from `from` on that inserts elided text, or -1. */
function firstElided(span: IncomingSpan, from: number): number {
  let at = 0
  for (const op of span.ops) {
    if (at + op.len > from && isElided(op)) return Math.max(at, from)
    at += op.len
  }
  return -1
}
