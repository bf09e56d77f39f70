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
 * Appends that arrive in the same event-loop turn share one transaction and one fsync (group
 * commit); each caller's promise resolves only after that commit.
 */
import Database from 'better-sqlite3'
import { createHash } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

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
  /** Stores one update; resolves with its id once it is committed durably. */
  append(docId: string, update: Uint8Array): Promise<number>
  /** Replaces the snapshot with `snapshot`, which must contain every update with id <= `throughId`. */
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
}

/** Embedded SQLite storage (better-sqlite3, WAL, synchronous=FULL, group commit). */
export class SqliteStorage implements Storage {
  readonly path: string
  private readonly db: Database.Database
  private queue: QueuedAppend[] = []
  private flushScheduled = false
  private closed = false
  private readonly stmt: {
    insert: Database.Statement
    snapshot: Database.Statement
    updates: Database.Statement
    count: Database.Statement
    upsertSnapshot: Database.Statement
    deleteThrough: Database.Statement
  }

  constructor(opts: SqliteStorageOptions) {
    mkdirSync(opts.dataDir, { recursive: true })
    this.path = join(opts.dataDir, 'polyphony.sqlite3')
    this.db = new Database(this.path)
    // One process owns a data directory (documents have one home server, E9): exclusive
    // locking, taken now with a write transaction, so a second process fails at start instead
    // of two in-memory copies compacting each other's updates away.
    this.db.pragma('locking_mode = EXCLUSIVE')
    this.db.pragma('busy_timeout = 0')
    try {
      this.db.pragma('journal_mode = WAL')
      this.db.exec('BEGIN IMMEDIATE; COMMIT')
    } catch (err) {
      this.db.close()
      throw new Error(
        `data directory ${opts.dataDir} is in use by another server process (${String(err)})`,
      )
    }
    this.db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`)
    this.db.pragma('busy_timeout = 5000')
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS updates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        doc TEXT NOT NULL,
        data BLOB NOT NULL,
        sum BLOB NOT NULL
      );
      CREATE INDEX IF NOT EXISTS updates_by_doc ON updates (doc, id);
      CREATE TABLE IF NOT EXISTS snapshots (
        doc TEXT PRIMARY KEY,
        data BLOB NOT NULL,
        sum BLOB NOT NULL,
        through_id INTEGER NOT NULL
      );
    `)
    this.stmt = {
      insert: this.db.prepare('INSERT INTO updates (doc, data, sum) VALUES (?, ?, ?)'),
      snapshot: this.db.prepare('SELECT data, sum, through_id FROM snapshots WHERE doc = ?'),
      updates: this.db.prepare('SELECT id, data, sum FROM updates WHERE doc = ? ORDER BY id'),
      count: this.db.prepare('SELECT count(*) AS n FROM updates WHERE doc = ?'),
      upsertSnapshot: this.db.prepare(
        `INSERT INTO snapshots (doc, data, sum, through_id) VALUES (?, ?, ?, ?)
         ON CONFLICT (doc) DO UPDATE SET data = excluded.data, sum = excluded.sum,
         through_id = excluded.through_id`,
      ),
      deleteThrough: this.db.prepare('DELETE FROM updates WHERE doc = ? AND id <= ?'),
    }
  }

  /** The value of a pragma, e.g. `synchronous` (2 = FULL) or `journal_mode`. */
  pragma(name: string): unknown {
    return this.db.pragma(name, { simple: true })
  }

  async load(docId: string): Promise<StoredDoc | null> {
    this.assertOpen()
    const snap = this.stmt.snapshot.get(docId) as
      { data: unknown; sum: unknown; through_id: number } | undefined
    const rows = this.stmt.updates.all(docId) as { id: number; data: unknown; sum: unknown }[]
    if (snap === undefined && rows.length === 0) return null
    const snapshot = snap === undefined ? null : verified(docId, 'snapshot', snap.data, snap.sum)
    const updates = rows.map((r) => verified(docId, `update ${r.id}`, r.data, r.sum))
    const lastUpdateId = rows.length > 0 ? rows[rows.length - 1]!.id : (snap?.through_id ?? 0)
    return { snapshot, updates, lastUpdateId }
  }

  append(docId: string, update: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new Error('storage is closed'))
    return new Promise((resolve, reject) => {
      this.queue.push({ docId, update, resolve, reject })
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  /** Writes every queued append in one transaction (one fsync), then settles their promises. */
  private flush(): void {
    this.flushScheduled = false
    const batch = this.queue
    this.queue = []
    if (batch.length === 0) return
    const ids: number[] = []
    try {
      this.db.transaction(() => {
        for (const a of batch) {
          const info = this.stmt.insert.run(a.docId, a.update, checksum(a.update))
          ids.push(Number(info.lastInsertRowid))
        }
      })()
    } catch (err) {
      for (const a of batch) a.reject(err as Error)
      return
    }
    batch.forEach((a, i) => a.resolve(ids[i]!))
  }

  async compact(docId: string, snapshot: Uint8Array, throughId: number): Promise<void> {
    this.assertOpen()
    this.flush()
    this.db.transaction(() => {
      this.stmt.upsertSnapshot.run(docId, snapshot, checksum(snapshot), throughId)
      this.stmt.deleteThrough.run(docId, throughId)
    })()
  }

  async pendingUpdates(docId: string): Promise<number> {
    this.assertOpen()
    return (this.stmt.count.get(docId) as { n: number }).n
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.flush()
    this.closed = true
    this.db.close()
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('storage is closed')
  }
}
