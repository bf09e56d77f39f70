/**
 * The SQLite side of `SqliteStorage`, run in a worker thread so fsyncs (`synchronous=FULL`
 * costs milliseconds per commit) never block the event loop that fans edits out.
 *
 * The source is plain JavaScript in a string (`new Worker(src, { eval: true })`), so it runs the
 * same under tsx, from a bundle, or from the compiled package. It owns the only connection to
 * the database (exclusive locking mode). Requests `{ id, op, ... }` are answered `{ id, ok,
 * result | error }` in order; `appendBatch` writes every item in one transaction.
 */
export const SQLITE_WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads')
const { createHash } = require('node:crypto')
const { mkdirSync } = require('node:fs')
const Database = require(workerData.sqlitePath)

const sum = (b) => createHash('sha256').update(b).digest().subarray(0, 16)
let db
let st
function open() {
  mkdirSync(workerData.dataDir, { recursive: true })
  db = new Database(workerData.file, { timeout: 0 })
  // One process owns a data directory (E9): exclusive locking, taken now with a write.
  db.pragma('locking_mode = EXCLUSIVE')
  try {
    db.pragma('journal_mode = WAL')
    db.exec('BEGIN IMMEDIATE; COMMIT')
  } catch (err) {
    db.close()
    throw new Error('data directory ' + workerData.dataDir + ' is in use by another server process (' + err + ')')
  }
  db.pragma('synchronous = ' + workerData.synchronous)
  db.exec(
    'CREATE TABLE IF NOT EXISTS updates (id INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL, data BLOB NOT NULL, sum BLOB NOT NULL);' +
    'CREATE INDEX IF NOT EXISTS updates_by_doc ON updates (doc, id);' +
    'CREATE TABLE IF NOT EXISTS snapshots (doc TEXT PRIMARY KEY, data BLOB NOT NULL, sum BLOB NOT NULL, through_id INTEGER NOT NULL);'
  )
  st = {
    insert: db.prepare('INSERT INTO updates (doc, data, sum) VALUES (?, ?, ?)'),
    snapshot: db.prepare('SELECT data, sum, through_id FROM snapshots WHERE doc = ?'),
    updates: db.prepare('SELECT id, data, sum FROM updates WHERE doc = ? ORDER BY id'),
    count: db.prepare('SELECT count(*) AS n FROM updates WHERE doc = ?'),
    upsert: db.prepare('INSERT INTO snapshots (doc, data, sum, through_id) VALUES (?, ?, ?, ?) ' +
      'ON CONFLICT (doc) DO UPDATE SET data = excluded.data, sum = excluded.sum, through_id = excluded.through_id ' +
      // A snapshot older than the stored one is not taken (it lacks what that one folded in).
      'WHERE excluded.through_id >= snapshots.through_id'),
    del: db.prepare('DELETE FROM updates WHERE doc = ? AND id <= ?'),
  }
}
const ops = {
  load(m) {
    const snap = st.snapshot.get(m.doc)
    const rows = st.updates.all(m.doc)
    return { snap: snap === undefined ? null : snap, rows }
  },
  appendBatch(m) {
    const ids = []
    db.transaction(() => {
      for (const it of m.items) ids.push(Number(st.insert.run(it.doc, it.data, sum(it.data)).lastInsertRowid))
    })()
    return ids
  },
  compact(m) {
    db.transaction(() => {
      st.upsert.run(m.doc, m.data, sum(m.data), m.throughId)
      st.del.run(m.doc, m.throughId)
    })()
    return null
  },
  count(m) {
    return st.count.get(m.doc).n
  },
  pragma(m) {
    return db.pragma(m.name, { simple: true })
  },
  close() {
    db.close()
    return null
  },
}
try {
  open()
  parentPort.postMessage({ id: 0, ok: true, result: null })
} catch (err) {
  parentPort.postMessage({ id: 0, ok: false, error: String(err && err.message || err) })
}
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ id: m.id, ok: true, result: ops[m.op](m) })
  } catch (err) {
    parentPort.postMessage({ id: m.id, ok: false, error: String(err && err.message || err) })
  }
})
`
