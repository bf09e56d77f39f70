/**
 * The update log of one replica, shared by all its links (sync.ts): every batch of events
 * the replica made or integrated (its `'update'` events), in order, with the origin it came
 * from. Each link keeps a cursor in it (the peer holds the replica's state as of that
 * position, plus whatever came from the peer itself); to flush, a link sends the entries
 * after its cursor that the peer lacks as they are, with no re-encoding, or, for several
 * entries, one update encoded once for every link at the same position. A replica that can
 * announce its updates lazily (`Replica.onLazyUpdate`) encodes an entry only when a link reads
 * it: a client's one link never reads what it received itself.
 *
 * Invariants: entries are in integration order, so the parents of an entry's events are in
 * the replica's state before it; entries before every attached reader's cursor are
 * dropped; when readers lag further than MAX_ENTRIES / MAX_BYTES the oldest entries are
 * dropped anyway and `since` tells a lagging reader it lost its place (it then diffs
 * version vectors, like a handshake). Memos (`encodeSince`, `plainMessage`) hold only for
 * the current state and are cleared on every append.
 * Cost: O(1) per update, O(readers) per trim (every TRIM_EVERY appends).
 */
import { encodePlainEvents } from './protocol.ts'
import type { Replica, VersionVector } from './replica.ts'
import { summarizeUpdate, type UpdateSummary } from './update-summary.ts'
import { appended } from './tight-list.ts'

/** One `'update'` of the replica. */
export class LogEntry {
  private sum: UpdateSummary | null | undefined = undefined
  /**
   * The entry holds events its origin (a link) did not send: events waiting for parents that
   * the origin's update released. The origin's peer may lack them, so they go back to it too.
   */
  beyondOrigin = false
  constructor(
    /** Position in the log (grows by one per entry, never reused). */
    readonly pos: number,
    /** The update, or what makes it (`Replica.onLazyUpdate`), called when first read. */
    private data: Uint8Array | (() => Uint8Array),
    readonly origin: unknown,
    private readonly log: UpdateLog,
  ) {}
  /** The update's bytes (encoded now if the replica announced it lazily). */
  get bytes(): Uint8Array {
    const data = this.data
    if (typeof data !== 'function') return data
    const made = (this.data = data())
    this.log.encoded(this, made.length)
    return made
  }
  /** Whether the entry is `update` itself (the replica announced it as received). */
  is(update: Uint8Array): boolean {
    return this.data === update
  }
  /** Bytes the entry holds: 0 while a lazily announced update is not encoded. */
  get held(): number {
    return typeof this.data === 'function' ? 0 : this.data.length
  }
  /** What the entry holds (decoded once, on first use); null when it cannot be read. */
  get summary(): UpdateSummary | null {
    if (this.sum === undefined) this.sum = summarizeUpdate(this.bytes)
    return this.sum
  }
}

/**
 * A reader's cursor while it holds no place in the log: it reads nothing from it and pins
 * nothing. (-1 rather than a huge number: a small integer is stored in the reader's field as
 * is, where a double would be a heap number of its own, per reader.)
 */
export const NO_POSITION = -1

/** A link reading the log. */
export interface LogReader {
  /**
   * Position of the first entry the reader has not dealt with (entries before it may go), or
   * NO_POSITION.
   */
  readonly cursor: number
  /** Called for each new entry, in order, as the replica emits it. */
  onEntry(entry: LogEntry): void
}

/** Trim (drop entries every reader is past) once this many entries were appended. */
const TRIM_EVERY = 64
/** Beyond these, the oldest entries go even if a reader still needs them. */
const MAX_ENTRIES = 16_384
const MAX_BYTES = 32 << 20

const logs = new WeakMap<Replica, UpdateLog>()

export class UpdateLog {
  private entries: LogEntry[] = []
  /** Position of entries[0]. */
  private first = 0
  private bytes = 0
  private sinceTrim = 0
  /** A tight list (shared/tight-list.ts): most documents have a reader or two. */
  private readers: readonly LogReader[] = []
  private unsubscribe: (() => void) | null = null
  /** Memos of the current state (made on first use: most documents have one link). */
  private merged: Map<VersionVector, Uint8Array> | null = null
  /**
   * The last `since` answer and its position, until the entries change: a hub's links flush
   * together from one cursor, and each made its own copy of the same entries.
   */
  private sinceMemo: readonly LogEntry[] | null = null
  private sinceMemoPos = 0
  private plain: WeakMap<Uint8Array, Uint8Array> | null = null

  private constructor(readonly doc: Replica) {}

  /** The log of `doc` (one per replica object). */
  static of(doc: Replica): UpdateLog {
    let log = logs.get(doc)
    if (log === undefined) logs.set(doc, (log = new UpdateLog(doc)))
    return log
  }

  /** Position after the last entry. */
  get end(): number {
    return this.first + this.entries.length
  }

  /** The attached readers (a replica's links). */
  get readerList(): readonly LogReader[] {
    return this.readers
  }

  /** Starts telling `reader` about new entries (the log records while anyone reads). */
  attach(reader: LogReader): void {
    if (!this.readers.includes(reader)) this.readers = appended(this.readers, reader)
    this.unsubscribe ??=
      this.doc.onLazyUpdate?.((encode, origin) => this.append(encode, origin)) ??
      this.doc.on('update', (bytes, origin) => this.append(bytes, origin))
  }

  detach(reader: LogReader): void {
    if (this.readers.includes(reader)) this.readers = this.readers.filter((r) => r !== reader)
    if (this.readers.length > 0 || this.unsubscribe === null) return
    this.unsubscribe()
    this.unsubscribe = null
    this.first = this.end
    this.entries = []
    this.sinceMemo = null
    this.bytes = 0
    this.merged = null
  }

  /** Entries from position `pos` on (none for NO_POSITION); null when some of them were dropped. */
  since(pos: number): readonly LogEntry[] | null {
    if (pos === NO_POSITION) return []
    if (pos < this.first) return null
    if (pos >= this.end) return []
    if (this.sinceMemo === null || this.sinceMemoPos !== pos) {
      this.sinceMemo = this.entries.slice(pos - this.first)
      this.sinceMemoPos = pos
    }
    return this.sinceMemo
  }

  /** `doc.encodeUpdate(since)` for the current state, once per `since` object. */
  encodeSince(since: VersionVector): Uint8Array {
    const merged = (this.merged ??= new Map())
    let bytes = merged.get(since)
    if (bytes === undefined) merged.set(since, (bytes = this.doc.encodeUpdate(since)))
    return bytes
  }

  /** The EVENTS message carrying just `update` (no acks): the same bytes for every link. */
  plainMessage(update: Uint8Array): Uint8Array {
    const plain = (this.plain ??= new WeakMap())
    let msg = plain.get(update)
    if (msg === undefined) plain.set(update, (msg = encodePlainEvents([update])))
    return msg
  }

  /**
   * A reader moved its cursor: with one reader (a client's single link), drop what it passed
   * now; with many, the periodic trim does it (O(readers) each time).
   */
  moved(): void {
    if (this.readers.length === 1 && this.entries.length > 0) this.trim()
  }

  /** An entry's lazily announced update was encoded: its bytes count while it is logged. */
  encoded(entry: LogEntry, length: number): void {
    if (entry.pos >= this.first && entry.pos < this.end) this.bytes += length
  }

  private append(update: Uint8Array | (() => Uint8Array), origin: unknown): void {
    const entry = new LogEntry(this.end, update, origin, this)
    this.entries.push(entry)
    this.bytes += entry.held
    this.merged = this.sinceMemo = null
    for (const r of this.readers) r.onEntry(entry)
    if (++this.sinceTrim >= TRIM_EVERY) this.trim()
  }

  private trim(): void {
    this.sinceTrim = 0
    let min = this.end
    for (const r of this.readers) if (r.cursor !== NO_POSITION && r.cursor < min) min = r.cursor
    let drop = Math.max(0, min - this.first)
    let bytes = this.bytes
    for (let i = 0; i < drop; i++) bytes -= this.entries[i]!.held
    // Readers too far behind lose their place rather than pin memory.
    while (
      drop < this.entries.length &&
      (this.entries.length - drop > MAX_ENTRIES || bytes > MAX_BYTES)
    ) {
      bytes -= this.entries[drop]!.held
      drop++
    }
    if (drop === 0) return
    this.sinceMemo = null
    this.entries = this.entries.slice(drop)
    this.first += drop
    this.bytes = bytes
  }
}
