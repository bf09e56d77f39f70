/**
 * Durable document storage: the `Storage` contract and its embedded SQLite backend.
 *
 * A document is stored as an optional snapshot (`doc.save()` bytes) plus the updates appended
 * after it, in order. Load = snapshot + later updates; compaction replaces the snapshot and
 * deletes the updates it covers, in one transaction. Every blob carries a SHA-256 checksum that
 * is verified on load: corrupted bytes throw `StorageCorruptError`, never a partial document.
 *
 * Durability (README "Durability"): WAL journal with `synchronous=FULL`, so a commit is on disk
 * (fsync of the WAL) before `append` resolves; a power loss after that loses nothing committed.
 * Appends that arrive while a commit runs share the next transaction and its fsync (group
 * commit), which starts at least `commitIntervalMs` after the previous one did (under
 * sustained writes a commit then carries more, at the cost of that much ack latency); each
 * caller's promise resolves only after its commit. The database runs in a worker
 * thread: an fsync costs milliseconds and must not stall fan-out.
 */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { SQLITE_WORKER_SOURCE } from './sqlite-worker.ts'

/** What `Storage.load` returns for a document that has been stored before. */
export interface StoredDoc {
  /** The latest snapshot, or null when only updates were stored. */
  readonly snapshot: Uint8Array | null
  /** Updates stored after the snapshot, oldest first. */
  readonly updates: readonly Uint8Array[]
  /** Id of the newest stored update (0 when none); pass to `compact`. */
  readonly lastUpdateId: number
}

/** The contract every storage backend meets (test/server-storage.test.ts checks it). */
export interface Storage {
  /** The stored document, or null if it was never stored. Rejects on read errors or corruption. */
  load(docId: string): Promise<StoredDoc | null>
  /**
   * Stores one update; resolves with its id once it is committed durably. A document's appends
   * commit in the order they were called (a connection may have several under way).
   */
  append(docId: string, update: Uint8Array): Promise<number>
  /**
   * Replaces the snapshot with `snapshot`, which must contain every update with id <=
   * `throughId`; a snapshot through an id below the stored one's is ignored (it is older).
   */
  compact(docId: string, snapshot: Uint8Array, throughId: number): Promise<void>
  /** Number of updates stored after the snapshot. */
  pendingUpdates(docId: string): Promise<number>
  /** Flushes queued appends and closes. Later calls reject. */
  close(): Promise<void>
}

/** Stored bytes do not match their checksum, or a row is unreadable. */
export class StorageCorruptError extends Error {
  override readonly name = 'StorageCorruptError'
}

function checksum(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest().subarray(0, 16)
}

function verified(docId: string, what: string, data: unknown, sum: unknown): Uint8Array {
  if (!(data instanceof Uint8Array) || !(sum instanceof Uint8Array)) {
    throw new StorageCorruptError(`document ${JSON.stringify(docId)}: ${what} is not a blob`)
  }
  if (!checksum(data).equals(sum)) {
    throw new StorageCorruptError(
      `document ${JSON.stringify(docId)}: ${what} (${data.byteLength} bytes) fails its checksum`,
    )
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

interface QueuedAppend {
  readonly docId: string
  readonly update: Uint8Array
  readonly resolve: (id: number) => void
  readonly reject: (err: Error) => void
}

/** Options of the SQLite backend. */
export interface SqliteStorageOptions {
  /** Directory of the database file `polyphony.sqlite3`; created if missing. */
  readonly dataDir: string
  /** SQLite `synchronous` pragma; default FULL (see the module header). */
  readonly synchronous?: 'FULL' | 'NORMAL' | 'EXTRA'
  /**
   * Least time between the starts of two commits, in ms; default `COMMIT_INTERVAL_MS`. An
   * append after a quiet stretch commits at once.
   */
  readonly commitIntervalMs?: number
}

/**
 * Group commit spacing: at 200 clients typing 100 edits/s in all, commits as fast as they
 * finish were about 120 a second of one edit each; spaced 25 ms they carried three or four,
 * and the server's CPU per delivered edit fell from 8.2-8.7 µs to 6.8-7.3. Spaced 50 ms (about
 * 20 commits a second), the SQLite thread took 18-22 ms of CPU a second instead of 30, most of
 * it the kernel's fsync work (perf), and fewer, bigger acks went out (2026-11-29); an ack under
 * sustained writes waits up to 25 ms longer. Fan-out does not wait for commits.
 */
export const COMMIT_INTERVAL_MS = 50

type Reply = { id: number; ok: boolean; result?: unknown; error?: string }

/**
 * Embedded SQLite storage (better-sqlite3, WAL, synchronous=FULL, group commit). The database
 * lives in a worker thread (server/sqlite-worker.ts) so commits never block the event loop;
 * appends queue while a batch commits and go out together as the next batch.
 */
export class SqliteStorage implements Storage {
  readonly path: string
  private readonly worker: Worker
  private readonly waiting = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void }
  >()
  private nextId = 1
  private queue: QueuedAppend[] = []
  private batchInFlight = false
  private readonly commitIntervalMs: number
  /** When the last commit was sent (performance.now()), and the timer of one waiting for its turn. */
  private lastCommitAt = -Infinity
  private commitTimer: ReturnType<typeof setTimeout> | null = null
  private closed = false
  private failure: Error | null = null

  private constructor(opts: SqliteStorageOptions, ready: (err: Error | null) => void) {
    this.path = join(opts.dataDir, 'polyphony.sqlite3')
    const interval = opts.commitIntervalMs ?? COMMIT_INTERVAL_MS
    if (!(interval >= 0 && interval <= 10_000))
      throw new RangeError(`commitIntervalMs must be 0..10000 ms, not ${interval}`)
    this.commitIntervalMs = interval
    const require = createRequire(import.meta.url)
    this.worker = new Worker(SQLITE_WORKER_SOURCE, {
      eval: true,
      workerData: {
        sqlitePath: require.resolve('better-sqlite3'),
        dataDir: opts.dataDir,
        file: this.path,
        synchronous: opts.synchronous ?? 'FULL',
      },
    })
    this.worker.on('message', (m: Reply) => {
      if (m.id === 0) return ready(m.ok ? null : new Error(m.error))
      const w = this.waiting.get(m.id)
      this.waiting.delete(m.id)
      if (m.ok) w?.resolve(m.result)
      else w?.reject(new Error(m.error))
    })
    this.worker.on('error', (e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e))
      this.failure = err
      ready(err)
      for (const w of this.waiting.values()) w.reject(err)
      this.waiting.clear()
    })
  }

  /** Opens (creating if needed) the database in `opts.dataDir`; rejects if another process holds it. */
  static open(opts: SqliteStorageOptions): Promise<SqliteStorage> {
    return new Promise((resolve, reject) => {
      const s: SqliteStorage = new SqliteStorage(opts, (err) => {
        if (err === null) return resolve(s)
        void s.worker.terminate()
        reject(err)
      })
    })
  }

  private call<T>(op: string, fields: Record<string, unknown> = {}): Promise<T> {
    if (this.closed) return Promise.reject(new Error('storage is closed'))
    if (this.failure !== null) return Promise.reject(this.failure)
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.worker.postMessage({ id, op, ...fields })
    })
  }

  /** The value of a pragma, e.g. `synchronous` (2 = FULL) or `journal_mode`. */
  pragma(name: string): Promise<unknown> {
    return this.call('pragma', { name })
  }

  async load(docId: string): Promise<StoredDoc | null> {
    const { snap, rows } = await this.call<{
      snap: { data: unknown; sum: unknown; through_id: number } | null
      rows: { id: number; data: unknown; sum: unknown }[]
    }>('load', { doc: docId })
    if (snap === null && rows.length === 0) return null
    const snapshot = snap === null ? null : verified(docId, 'snapshot', snap.data, snap.sum)
    const updates = rows.map((r) => verified(docId, `update ${r.id}`, r.data, r.sum))
    const lastUpdateId = rows.length > 0 ? rows[rows.length - 1]!.id : (snap?.through_id ?? 0)
    return { snapshot, updates, lastUpdateId }
  }

  append(docId: string, update: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new Error('storage is closed'))
    return new Promise((resolve, reject) => {
      this.queue.push({ docId, update, resolve, reject })
      if (!this.batchInFlight) this.sendBatch()
    })
  }

  /**
   * Sends every queued append as one transaction, unless the last commit started less than
   * `commitIntervalMs` ago (then a timer sends them when it is time; `now` skips the wait). The
   * next batch waits for this one's commit.
   */
  private sendBatch(now = false): void {
    const batch = this.queue
    if (batch.length === 0 || this.commitTimer !== null) return
    const wait = this.lastCommitAt + this.commitIntervalMs - performance.now()
    if (wait > 0 && !now) {
      this.commitTimer = setTimeout(() => {
        this.commitTimer = null
        if (!this.batchInFlight) this.sendBatch()
      }, wait)
      return
    }
    this.lastCommitAt = performance.now()
    this.queue = []
    this.batchInFlight = true
    const items = batch.map((a) => ({ doc: a.docId, data: a.update }))
    this.call<number[]>('appendBatch', { items }).then(
      (ids) => {
        this.batchInFlight = false
        batch.forEach((a, i) => a.resolve(ids[i]!))
        this.sendBatch()
      },
      (err: Error) => {
        this.batchInFlight = false
        for (const a of batch) a.reject(err)
        this.sendBatch()
      },
    )
  }

  async compact(docId: string, snapshot: Uint8Array, throughId: number): Promise<void> {
    await this.call('compact', { doc: docId, data: snapshot, throughId })
  }

  async pendingUpdates(docId: string): Promise<number> {
    return this.call<number>('count', { doc: docId })
  }

  async close(): Promise<void> {
    if (this.closed) return
    if (this.commitTimer !== null) clearTimeout(this.commitTimer)
    this.commitTimer = null
    while (this.batchInFlight || this.queue.length > 0) {
      if (!this.batchInFlight) this.sendBatch(true)
      await new Promise((r) => setTimeout(r, 1))
    }
    await this.call('close').catch(() => undefined)
    this.closed = true
    await this.worker.terminate()
  }
}
