/**
 * The documents registry: which documents are in memory, loading and unloading them, and
 * writing their events to storage.
 *
 * Invariants:
 * - Single flight: concurrent `acquire`/`read` of one id share one storage load; an unload in
 *   progress finishes (writes flushed, snapshot compacted) before the id is loaded again.
 * - A failed load is never replaced by an empty document: the error goes to every waiter and the
 *   id is forgotten so the next attempt reads storage again.
 * - A document is unloaded only with no connections, after `idleUnloadMs`, once every write it
 *   started has settled and, if a write was lost, a full snapshot has been stored.
 * - `durable` is a version whose events are all in storage; it is what the server announces to a
 *   reconnecting client in HELLO as its acknowledgement baseline (the client resends anything
 *   beyond it). It advances only when no integrated update is outstanding (each update the
 *   document emits is outstanding until its own append, or a snapshot taken after it, commits),
 *   so it never covers an event storage lacks.
 * - `whenStored` settles once every update outstanding when it was called is stored, however
 *   many are integrated meanwhile. Every ack a link sends waits for it: an ack claims events the
 *   link did not store itself (another link's, a reconnecting client's from before, and at the
 *   client every earlier event of each agent it names). (Waiting for `durable` instead stalled
 *   acks on a busy document until its typing paused.)
 */
import { TextDoc, type VersionVector } from '../shared/text-doc.ts'
import { randomAgent } from '../shared/agent.ts'
import type { Replica } from '../shared/replica.ts'
import type { Limits } from './limits.ts'
import { cachedReplica } from './replica-cache.ts'
import type { Logger } from './log.ts'
import type { ServerMetrics } from './metrics.ts'
import type { Storage } from './storage.ts'

/** A loaded document and its bookkeeping. */
export interface LoadedDoc {
  readonly id: string
  readonly doc: TextDoc
  /** `doc` as its links see it: encodings memoised per state (server/replica-cache.ts). */
  readonly replica: Replica
  /** Connections holding it. */
  refs: number
  /** Version whose events are all stored. */
  durable: VersionVector
  /** Writes started and not settled; null when none (a Set costs, most documents are idle). */
  inFlight: Set<Promise<unknown>> | null
  /**
   * Updates the document integrated that are not yet known to be stored (by identity), each with
   * its ticket (numbered in the order integrated, so the first entry has the lowest); null when
   * none.
   */
  outstanding: Map<Uint8Array, number> | null
  /** Tickets given out (`outstanding`). */
  tickets: number
  /** `whenStored` callers, in ticket order: each waits until no ticket up to its own is outstanding. */
  storedWaiters: StoredWaiter[] | null
  /** Set when a write failed for good: the next flush stores a whole snapshot. */
  needsSnapshot: boolean
  /** Writes that failed for good so far (a snapshot taken before the last one does not cover it). */
  failedWrites: number
  /** Updates appended since the last snapshot, and their bytes. */
  sinceSnapshot: number
  bytesSinceSnapshot: number
  /** Bytes of the last snapshot stored (0: none). */
  snapshotBytes: number
  /** Highest update id stored for this document. */
  lastUpdateId: number
  /** The compaction running for this document, if any (one at a time, in order). */
  compacting: Promise<void> | null
  /** Unloaded (flushed and dropped from the registry): nothing compacts it any more. */
  unloaded: boolean
  idleTimer: ReturnType<typeof setTimeout> | null
  /** When the server last joined the document's heads by a merge event (`join`). */
  joinedAt: number
  /** Edits from links came after the last join. */
  unjoined: boolean
  /** The trailing join's timer. */
  joinTimer: ReturnType<typeof setTimeout> | null
}

/**
 * Shortest time between two merge events of one document: a join ends each fan-out batch
 * when batches are at least this far apart (from 30 connections on, server/connection.ts
 * `fanoutWindowMs`), else every few batches.
 */
const JOIN_INTERVAL_MS = 10
/** Longest wait between attempts at an owed snapshot while storage fails (`retryOwed`). */
const MAX_OWED_RETRY_MS = 30_000
/** How long after the last join a burst's unjoined edits are joined by a timer. */
const TRAILING_JOIN_MS = 100

/**
 * The agent of the server's merge events: one per process, so a seq is never used twice (a
 * document unloads only once its writes have settled, and reloads continue from them).
 */
const HUB_AGENT = `hub-${randomAgent()}`

/** Write `p` of `entry` settled (the set goes once empty). */
function settled(entry: LoadedDoc, p: Promise<unknown>): void {
  if (entry.inFlight?.delete(p) && entry.inFlight.size === 0) entry.inFlight = null
}

/**
 * Whether a document let go of (unloaded, or at shutdown) must store a snapshot first: a write
 * failed, updates were appended since the last one, or some are not stored yet.
 */
function snapshotOwed(entry: LoadedDoc): boolean {
  return entry.needsSnapshot || entry.sinceSnapshot > 0 || entry.outstanding !== null
}

interface StoredWaiter {
  readonly ticket: number
  readonly resolve: () => void
}

/** `update` of `entry` is stored (the map goes once empty); wakes the waiters it was holding. */
function stored(entry: LoadedDoc, update: Uint8Array): void {
  const outstanding = entry.outstanding
  if (outstanding === null || !outstanding.delete(update)) return
  if (outstanding.size === 0) entry.outstanding = null
  const waiters = entry.storedWaiters
  if (waiters === null) return
  const lowest = entry.outstanding === null ? Infinity : outstanding.values().next().value!
  let woken = 0
  while (woken < waiters.length && waiters[woken]!.ticket < lowest) waiters[woken++]!.resolve()
  if (woken === waiters.length) entry.storedWaiters = null
  else if (woken > 0) waiters.splice(0, woken)
}

/** Settles once every update `entry` holds now is stored; null when they all are. */
export function whenStored(entry: LoadedDoc): Promise<void> | null {
  if (entry.outstanding === null) return null
  const ticket = entry.tickets
  return new Promise((resolve) => (entry.storedWaiters ??= []).push({ ticket, resolve }))
}

/** The process is at `maxLoadedDocuments` and none is idle. */
export class CapacityError extends Error {
  override readonly name = 'CapacityError'
}

type Slot =
  | { readonly state: 'loading'; readonly promise: Promise<LoadedDoc> }
  | { readonly state: 'loaded'; readonly entry: LoadedDoc }
  | { readonly state: 'unloading'; readonly promise: Promise<void> }

function sumVersion(vv: VersionVector): number {
  let n = 0
  for (const k in vv) n += vv[k]!
  return n
}

/** Loads, holds, stores and unloads documents. One per server. */
export class DocumentRegistry {
  private readonly slots = new Map<string, Slot>()
  private closed = false
  /** Documents owing a snapshot, with the timer of its next attempt (`retryOwed`). */
  private readonly owed = new Map<LoadedDoc, ReturnType<typeof setTimeout>>()

  constructor(
    private readonly storage: Storage,
    private readonly limits: Limits,
    private readonly log: Logger,
    private readonly metrics: ServerMetrics,
  ) {}

  /** Documents in memory (loaded, or unloading while their writes finish). */
  get loadedCount(): number {
    let n = 0
    for (const s of this.slots.values()) if (s.state !== 'loading') n++
    return n
  }

  /** The loaded document `id` for a connection (refcount + 1); loads it on first use. */
  async acquire(id: string): Promise<LoadedDoc> {
    const entry = await this.get(id)
    entry.refs++
    if (entry.idleTimer !== null) {
      clearTimeout(entry.idleTimer)
      entry.idleTimer = null
    }
    return entry
  }

  /** A connection let go of `entry`; the document unloads after `idleUnloadMs` without any. */
  release(entry: LoadedDoc): void {
    entry.refs--
    if (entry.refs === 0) this.scheduleUnload(entry)
    if (entry.outstanding !== null) void this.settle(entry)
  }

  /** The document for a one-off read (REST); it unloads when idle like any other. */
  async read(id: string): Promise<LoadedDoc> {
    const entry = await this.get(id)
    if (entry.refs === 0 && entry.idleTimer === null) this.scheduleUnload(entry)
    return entry
  }

  private async get(id: string): Promise<LoadedDoc> {
    for (;;) {
      if (this.closed) throw new Error('server is shutting down')
      const slot = this.slots.get(id)
      if (slot === undefined) break
      if (slot.state === 'loaded') return slot.entry
      if (slot.state === 'loading') return slot.promise
      await slot.promise // unloading: wait, then load afresh
    }
    if (this.loadedCount >= this.limits.maxLoadedDocuments) {
      await this.evictIdle()
      // Another caller may have begun loading `id` while the eviction flushed: join it (two
      // copies would each take edits, and one's snapshot would drop the other's updates).
      if (this.slots.has(id)) return this.get(id)
    }
    if (this.slots.size >= this.limits.maxLoadedDocuments) {
      this.metrics.refusals.inc({ reason: 'document-capacity' })
      throw new CapacityError(`${this.slots.size} documents loaded, the limit`)
    }
    const promise = this.load(id)
    this.slots.set(id, { state: 'loading', promise })
    try {
      const entry = await promise
      this.slots.set(id, { state: 'loaded', entry })
      this.metrics.documentsLoaded.set(this.loadedCount)
      return entry
    } catch (err) {
      this.slots.delete(id)
      throw err
    }
  }

  private async load(id: string): Promise<LoadedDoc> {
    const stored = await this.storageOp('load', () => this.storage.load(id))
    let doc: TextDoc
    if (stored === null) {
      doc = new TextDoc(HUB_AGENT)
    } else {
      doc =
        stored.snapshot === null ? new TextDoc(HUB_AGENT) : TextDoc.load(stored.snapshot, HUB_AGENT)
      for (const u of stored.updates) doc.applyUpdate(u)
    }
    this.log.debug(
      { doc: id, chars: doc.length, updates: stored?.updates.length ?? 0 },
      'document loaded',
    )
    // Made before any link subscribes, so its memo is cleared before links hear of a change.
    const replica = cachedReplica(doc)
    const entry: LoadedDoc = {
      id,
      doc,
      replica,
      refs: 0,
      durable: doc.version(),
      inFlight: null,
      outstanding: null,
      tickets: 0,
      storedWaiters: null,
      needsSnapshot: false,
      failedWrites: 0,
      sinceSnapshot: stored?.updates.length ?? 0,
      bytesSinceSnapshot: stored?.updates.reduce((sum, u) => sum + u.length, 0) ?? 0,
      snapshotBytes: stored?.snapshot?.length ?? 0,
      lastUpdateId: stored?.lastUpdateId ?? 0,
      compacting: null,
      unloaded: false,
      idleTimer: null,
      joinedAt: -Infinity,
      unjoined: false,
      joinTimer: null,
    }
    // Every update integrated from now on is outstanding until stored (see the header). The
    // server's own updates, its merge events, are stored here; links store their peers'.
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      ;(entry.outstanding ??= new Map()).set(update, ++entry.tickets)
      // A failed write is logged and owed as a snapshot (persistWithRetry).
      if (origin === undefined) this.persist(entry, update).catch(() => {})
      else this.scheduleJoin(entry)
    })
    return entry
  }

  /**
   * After edits from links: the document's heads are joined by a merge event
   * (TextDoc.mergeHeads) when its links next flush (`joinBeforeFanout`), so the merge event ends
   * that batch and the clients' next edits name it as their one parent (with their own newer
   * edits) instead of every edit they have seen. That keeps the cost of integrating an edit,
   * here and at every client, flat however many write at once. A join at every flush once
   * flushes are `JOIN_INTERVAL_MS` apart or more, else at most one that often; edits a flush
   * leaves unjoined are joined by a trailing timer `TRAILING_JOIN_MS` after the last join (a
   * join from a timer costs a flush to every client, so the timer does nothing while joins
   * keep coming).
   */
  private scheduleJoin(entry: LoadedDoc): void {
    entry.unjoined = true
    if (entry.joinTimer === null) this.armTrailingJoin(entry)
  }

  /**
   * A link of the document begins a flush (LinkOptions.beforeFlush, with its batch window):
   * joins the heads first when edits wait, at every flush when flushes are at least
   * `JOIN_INTERVAL_MS` apart (the links flush together, on the window's grid: measuring the
   * time since the last join would skip a batch whenever a timer ran late), else when the last
   * join is that old.
   */
  joinBeforeFanout(entry: LoadedDoc, windowMs: number): void {
    if (!entry.unjoined) return
    if (windowMs >= JOIN_INTERVAL_MS || performance.now() - entry.joinedAt >= JOIN_INTERVAL_MS)
      this.join(entry)
  }

  private armTrailingJoin(entry: LoadedDoc): void {
    entry.joinTimer = setTimeout(() => {
      entry.joinTimer = null
      if (!entry.unjoined) return
      if (performance.now() - entry.joinedAt < TRAILING_JOIN_MS) this.armTrailingJoin(entry)
      else this.join(entry)
    }, TRAILING_JOIN_MS)
    entry.joinTimer.unref?.()
  }

  private join(entry: LoadedDoc): void {
    entry.unjoined = false
    const slot = this.slots.get(entry.id)
    if (this.closed || slot?.state !== 'loaded' || slot.entry !== entry) return
    // One head (the edits came one after another): nothing joined, no interval started.
    if (entry.doc.mergeHeads()) entry.joinedAt = performance.now()
  }

  /**
   * Stores `update` (new events of `entry`), retrying up to `storageWriteAttempts` times.
   * Resolves once committed; rejects if every attempt failed (then the next flush stores a
   * whole snapshot, and `durable` stays behind so reconnecting clients resend).
   */
  persist(entry: LoadedDoc, update: Uint8Array): Promise<void> {
    const p = this.persistWithRetry(entry, update)
    ;(entry.inFlight ??= new Set()).add(p)
    p.then(
      () => {
        settled(entry, p)
        stored(entry, update)
        this.advanceDurable(entry)
      },
      () => settled(entry, p),
    )
    return p
  }

  /** `durable` = the document's version once nothing integrated is waiting to be stored. */
  private advanceDurable(entry: LoadedDoc): void {
    if (entry.outstanding === null && !entry.needsSnapshot) entry.durable = entry.replica.version()
  }

  /**
   * After a connection leaves: updates its link integrated but could not store (a link goes on
   * storing what it integrated after it closes, unless a write fails for good) would keep
   * `durable` behind for good; once in-flight writes settle, a snapshot stores whatever is
   * still outstanding.
   */
  async settle(entry: LoadedDoc): Promise<void> {
    while (entry.inFlight !== null) await Promise.allSettled([...entry.inFlight])
    if (entry.outstanding === null) return
    if (this.closed) {
      // Shutting down, storage closing: those updates were never acknowledged, and their
      // senders resend them to the next server.
      this.log.debug({ doc: entry.id }, 'outstanding updates left to their senders at shutdown')
      return
    }
    await this.compact(entry).catch((err) => {
      this.log.warn({ doc: entry.id, err }, 'snapshot of outstanding updates failed')
      this.retryOwed(entry)
    })
  }

  /**
   * Stores the snapshot `entry` owes (a write failed for good, or a leaving link's events
   * could not be stored) after `delayMs`, and again with backoff until storage takes it: else
   * `durable` would stay behind until some connection attached, and a link acknowledging those
   * events (`whenStored`) would wait as long.
   */
  private retryOwed(entry: LoadedDoc, delayMs = 1000): void {
    if (this.closed || entry.unloaded || this.owed.has(entry)) return
    const timer = setTimeout(() => {
      this.owed.delete(entry)
      if (this.closed || entry.unloaded) return
      if (!entry.needsSnapshot && entry.outstanding === null) return
      this.compact(entry).then(
        () => {
          if (entry.needsSnapshot) this.retryOwed(entry) // a write failed meanwhile
        },
        (err: unknown) => {
          this.log.warn({ doc: entry.id, err }, 'owed snapshot failed; retrying')
          this.retryOwed(entry, Math.min(delayMs * 2, MAX_OWED_RETRY_MS))
        },
      )
    }, delayMs)
    timer.unref?.()
    this.owed.set(entry, timer)
  }

  private async persistWithRetry(entry: LoadedDoc, update: Uint8Array): Promise<void> {
    let lastError: unknown
    for (let attempt = 0; attempt < Math.max(1, this.limits.storageWriteAttempts); attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 20 * 2 ** attempt))
      // A snapshot stored since (a compaction, the seal at shutdown) holds it: nothing to append.
      if (!entry.outstanding?.has(update)) return
      try {
        const id = await this.storageOp('append', () => this.storage.append(entry.id, update))
        entry.lastUpdateId = Math.max(entry.lastUpdateId, id)
        entry.sinceSnapshot++
        entry.bytesSinceSnapshot += update.length
        if (!this.closed && entry.compacting === null && this.compactionDue(entry)) {
          // The append is committed, and acknowledged without waiting for the compaction; a
          // failed one only leaves more updates to replay. (Unless a snapshot was owed: then
          // `needsSnapshot` stays set and `durable` behind.)
          this.compact(entry).catch((err) =>
            this.log.warn({ doc: entry.id, err }, 'compaction failed'),
          )
        }
        return
      } catch (err) {
        lastError = err
        if (this.closed) {
          // Shutting down: storage may be closing (a link's writes go on after it closes). Not
          // acknowledged, and their senders resend them to the next server.
          this.log.debug({ doc: entry.id, err }, 'write at shutdown not stored')
          break
        }
        this.log.warn({ doc: entry.id, attempt, err }, 'storage write failed')
      }
    }
    entry.needsSnapshot = true
    entry.failedWrites++
    this.retryOwed(entry)
    throw lastError instanceof Error ? lastError : new Error(String(lastError))
  }

  /**
   * A snapshot is owed, or the log has grown enough since the last one: by
   * `compactAfterUpdates` updates and `compactAfterGrowth` of the snapshot's bytes (a snapshot
   * costs time in proportion to the document's history; see limits.ts).
   */
  private compactionDue(entry: LoadedDoc): boolean {
    const l = this.limits
    return (
      entry.needsSnapshot ||
      (entry.sinceSnapshot >= l.compactAfterUpdates &&
        entry.bytesSinceSnapshot >= entry.snapshotBytes * l.compactAfterGrowth)
    )
  }

  /**
   * Stores a snapshot of everything in memory and drops the updates it covers, once the
   * document's previous compaction has finished: two at once could store an older snapshot
   * after a newer one had dropped the updates between them.
   */
  compact(entry: LoadedDoc): Promise<void> {
    // An unloaded copy: its flush stored everything (and a copy loaded since may have newer
    // snapshots, which this one's would overwrite).
    if (entry.unloaded) return Promise.resolve()
    const previous = entry.compacting
    const run = (async () => {
      if (previous !== null) await previous.catch(() => undefined)
      await this.compactNow(entry)
    })()
    entry.compacting = run
    const done = () => {
      if (entry.compacting === run) entry.compacting = null
    }
    run.then(done, done)
    return run
  }

  private async compactNow(entry: LoadedDoc): Promise<void> {
    const t0 = performance.now()
    // Taken in one turn with the snapshot's state: it holds exactly these events and updates.
    const version = entry.doc.version()
    const covered = [...(entry.outstanding?.keys() ?? [])]
    const throughId = entry.lastUpdateId
    const folded = entry.sinceSnapshot
    const foldedBytes = entry.bytesSinceSnapshot
    const failedWrites = entry.failedWrites
    // The text is deflated off the event loop (the history's chunks are mostly kept bytes).
    const snapshot = await entry.doc.saveAsync()
    await this.storageOp('compact', () => this.storage.compact(entry.id, snapshot, throughId), t0)
    // Updates stored meanwhile are after the snapshot, and stay counted.
    entry.sinceSnapshot = Math.max(0, entry.sinceSnapshot - folded)
    entry.bytesSinceSnapshot = Math.max(0, entry.bytesSinceSnapshot - foldedBytes)
    entry.snapshotBytes = snapshot.length
    // A write that failed meanwhile still owes a snapshot of its own.
    if (entry.failedWrites === failedWrites) entry.needsSnapshot = false
    for (const u of covered) stored(entry, u)
    if (sumVersion(version) >= sumVersion(entry.durable)) entry.durable = version
    this.advanceDurable(entry)
  }

  /**
   * Waits for every write and compaction of `entry` to settle, storing a snapshot if one is
   * due, until none is running: a compaction queued meanwhile (a leaving link's `settle`) ends
   * before this does, so none runs on a copy that is then unloaded.
   */
  async flush(entry: LoadedDoc): Promise<void> {
    let compacted = false
    for (;;) {
      if (entry.inFlight !== null) await Promise.allSettled([...entry.inFlight])
      else if (entry.compacting !== null) await entry.compacting.catch(() => undefined)
      else if (!compacted && snapshotOwed(entry)) {
        compacted = true
        await this.compact(entry)
      } else return
    }
  }

  /**
   * At shutdown: one snapshot stores everything `entry` holds now, at once, rather than after
   * the writes queued behind its links' earlier ones (one at a time per link: with slow
   * storage, seconds). Writes still running or queued then store again what it holds (their
   * rows stay after it, and loading applies them as no-ops).
   */
  private async seal(entry: LoadedDoc): Promise<void> {
    if (entry.compacting !== null) await entry.compacting.catch(() => undefined)
    if (snapshotOwed(entry)) await this.compact(entry)
  }

  private scheduleUnload(entry: LoadedDoc): void {
    if (entry.idleTimer !== null) clearTimeout(entry.idleTimer)
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = null
      if (entry.refs === 0) void this.unload(entry)
    }, this.limits.idleUnloadMs)
    entry.idleTimer.unref?.()
  }

  private async unload(entry: LoadedDoc): Promise<void> {
    const slot = this.slots.get(entry.id)
    if (slot?.state !== 'loaded' || slot.entry !== entry) return
    const promise = (async () => {
      try {
        await this.flush(entry)
        this.slots.delete(entry.id)
        entry.unloaded = true
        this.log.debug({ doc: entry.id }, 'document unloaded')
      } catch (err) {
        // Keep it in memory: unloading now would lose the events storage has not taken.
        this.slots.set(entry.id, { state: 'loaded', entry })
        this.log.error({ doc: entry.id, err }, 'flush before unload failed; document kept')
        if (entry.refs === 0) this.scheduleUnload(entry)
      }
      this.metrics.documentsLoaded.set(this.loadedCount)
    })()
    this.slots.set(entry.id, { state: 'unloading', promise })
    await promise
  }

  /** Unloads the longest-loaded idle document (Map order is load order), if any. */
  private async evictIdle(): Promise<void> {
    for (const s of this.slots.values()) {
      if (s.state === 'loaded' && s.entry.refs === 0) {
        if (s.entry.idleTimer !== null) clearTimeout(s.entry.idleTimer)
        s.entry.idleTimer = null
        return this.unload(s.entry)
      }
    }
  }

  /**
   * Runs storage operation `op` (begun at `t0`): its time goes to `storage_seconds`, or its
   * failure to `storage_errors_total`.
   */
  private async storageOp<T>(
    op: 'load' | 'append' | 'compact',
    run: () => Promise<T>,
    t0 = performance.now(),
  ): Promise<T> {
    try {
      const result = await run()
      this.metrics.storageSeconds.observe({ op }, (performance.now() - t0) / 1000)
      return result
    } catch (err) {
      this.metrics.storageErrors.inc({ op })
      throw err
    }
  }

  /** Shutdown: stores a snapshot of every loaded document (`seal`). Later acquires fail. */
  async close(): Promise<void> {
    this.closed = true
    for (const timer of this.owed.values()) clearTimeout(timer)
    this.owed.clear()
    const waits: Promise<unknown>[] = []
    for (const s of this.slots.values()) {
      if (s.state === 'loaded') {
        if (s.entry.idleTimer !== null) clearTimeout(s.entry.idleTimer)
        waits.push(
          this.seal(s.entry).catch((err) =>
            this.log.error({ doc: s.entry.id, err }, 'flush at shutdown failed'),
          ),
        )
      } else {
        waits.push(s.promise.catch(() => undefined))
      }
    }
    await Promise.all(waits)
    this.slots.clear()
    this.metrics.documentsLoaded.set(0)
  }
}
