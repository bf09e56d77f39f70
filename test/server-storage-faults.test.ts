// Integration with a fault-injecting storage around real SQLite: write failures (E4), read
// failures (E5), single-flight loads (E6), unload only after pending writes (E7), corrupted
// stored bytes (E10).
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { rmSync } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SqliteStorage } from '../server/storage.ts'
import { TextDoc } from '../shared/text-doc.ts'
import { FaultyStorage } from './support/server-faulty-storage.ts'
import {
  client,
  restText,
  startServer,
  tempDir,
  waitFor,
  within,
} from './support/server-harness.ts'

async function faulty(dir: string): Promise<FaultyStorage> {
  return new FaultyStorage(await SqliteStorage.open({ dataDir: dir }))
}

test('E4: a failing write is never acknowledged; the client is told and resends later', async () => {
  const dir = tempDir()
  const storage = await faulty(dir)
  const ts = await startServer({ storage, dataDir: dir, limits: { storageWriteAttempts: 2 } })
  const c = client(ts.wsUrl, 'w', { doc: new TextDoc('w') })
  const errors: string[] = []
  c.on('error', (e) => errors.push(e.codeName))
  try {
    await c.synced
    c.doc.insert(0, 'stored ')
    await waitFor(() => c.allAcknowledged, 'first write acked')
    storage.faults.failAppends = true
    storage.faults.failCompacts = true
    c.doc.insert(c.doc.length, 'lost?')
    await waitFor(() => errors.includes('PERSIST_FAILED'), 'client told PERSIST_FAILED')
    assert.not.ok(c.allAcknowledged, 'the failed write is not acknowledged')
    assert.ok(storage.failedAppends >= 2, 'retried')
    // The document stays in memory (nothing is thrown away) and the server keeps running.
    assert.is(await restText(ts.httpUrl, 'w'), 'stored lost?')
    assert.ok(
      ts.logs.some((l) => l.msg === 'storage write failed'),
      'logged',
    )
    const failed = /^polyphony_storage_errors_total\{op="append"\} (\d+)$/m.exec(
      await (await fetch(`${ts.httpUrl}/metrics`)).text(),
    )
    assert.ok(Number(failed?.[1]) >= 2, `failed attempts counted (${failed?.[0]})`)
    // Storage still failing: reconnects are refused (retryable) rather than acknowledged.
    await new Promise((r) => setTimeout(r, 300))
    assert.not.ok(c.allAcknowledged)
    storage.faults.failAppends = false
    storage.faults.failCompacts = false
    await waitFor(() => c.allAcknowledged, 'acknowledged once storage works', 10_000)
    await ts.stop(true)
    const again = await startServer({ dataDir: dir })
    assert.is(await restText(again.httpUrl, 'w'), 'stored lost?')
    await again.stop()
  } finally {
    c.close()
    await ts.stop(true)
    rmSync(dir, { recursive: true, force: true })
  }
})

test('E4: while storage fails, a reconnecting client is refused, not falsely acknowledged', async () => {
  const dir = tempDir()
  const storage = await faulty(dir)
  const ts = await startServer({ storage, dataDir: dir, limits: { storageWriteAttempts: 1 } })
  const c = client(ts.wsUrl, 'x', { doc: new TextDoc('x') })
  try {
    await c.synced
    storage.faults.failAppends = true
    storage.faults.failCompacts = true
    c.doc.insert(0, 'pending')
    await waitFor(() => storage.failedAppends > 0, 'a write failed')
    await new Promise((r) => setTimeout(r, 400)) // several reconnect attempts
    assert.not.ok(c.allAcknowledged, 'never acknowledged while storage fails')
    assert.ok(
      ts.logs.some((l) => l.msg === 'storage still failing; connection refused'),
      'reconnects refused',
    )
  } finally {
    c.close()
    storage.faults.failAppends = false
    storage.faults.failCompacts = false
    await ts.stop()
  }
})

test('E5: a failed read never serves an empty document; recovery serves the real one', async () => {
  const dir = tempDir()
  const first = await startServer({ dataDir: dir })
  const w = client(first.wsUrl, 'r', { doc: new TextDoc('w') })
  await w.synced
  w.doc.insert(0, 'real content')
  await waitFor(() => w.allAcknowledged, 'stored')
  w.close()
  await first.stop(true)
  const storage = await faulty(dir)
  storage.faults.failLoads = true
  const ts = await startServer({ storage, dataDir: dir })
  const c = client(ts.wsUrl, 'r', { doc: new TextDoc('c') })
  const offline: string[] = []
  c.on('status', (s, why) => s === 'offline' && offline.push(why ?? ''))
  try {
    await waitFor(() => offline.length > 0, 'client closed with a retryable code')
    assert.match(offline[0]!, /unavailable/)
    assert.is(c.doc.toString(), '')
    assert.is(c.status === 'refused', false)
    const res = await fetch(`${ts.httpUrl}/api/docs/r/text`)
    assert.is(res.status, 503)
    assert.is(ts.server.stats().documents, 0)
    const metrics = await (await fetch(`${ts.httpUrl}/metrics`)).text()
    assert.match(metrics, /^polyphony_storage_errors_total\{op="load"\} [1-9]/m)
    storage.faults.failLoads = false
    await waitFor(() => c.doc.toString() === 'real content', 'real content after recovery', 5000)
    assert.is(await restText(ts.httpUrl, 'r'), 'real content')
  } finally {
    c.close()
    await ts.stop(true)
    rmSync(dir, { recursive: true, force: true })
  }
})

test('E6: concurrent loads of one document share one storage read', async () => {
  const dir = tempDir()
  const storage = await faulty(dir)
  storage.faults.loadDelayMs = 200
  const ts = await startServer({ storage, dataDir: dir })
  const clients = Array.from({ length: 8 }, () => client(ts.wsUrl, 'sf'))
  try {
    const reads = Array.from({ length: 3 }, () => restText(ts.httpUrl, 'sf'))
    await within(Promise.all(clients.map((c) => c.synced)), 5000, 'all synced')
    await Promise.all(reads)
    assert.is(storage.loads, 1)
    clients[0]!.doc.insert(0, 'one doc')
    await waitFor(() => clients.every((c) => c.doc.toString() === 'one doc'), 'shared')
  } finally {
    for (const c of clients) c.close()
    await ts.stop()
  }
})

test('E7: a document unloads only after its pending writes are stored', async () => {
  const dir = tempDir()
  const storage = await faulty(dir)
  const ts = await startServer({ storage, dataDir: dir, limits: { idleUnloadMs: 10 } })
  const c = client(ts.wsUrl, 'u', { doc: new TextDoc('u') })
  try {
    await c.synced
    storage.faults.appendDelayMs = 300
    c.doc.insert(0, 'slow write')
    await waitFor(() => storage.inFlightAppends > 0, 'write started')
    c.close()
    await new Promise((r) => setTimeout(r, 100))
    assert.is(ts.server.stats().documents, 1, 'still loaded while the write is pending')
    await waitFor(() => ts.server.stats().documents === 0, 'unloaded after the write', 3000)
    assert.is(storage.inFlightAppends, 0)
    storage.faults.appendDelayMs = 0
    assert.is(await restText(ts.httpUrl, 'u'), 'slow write')
    assert.is(storage.loads, 2, 'reloaded from storage')
  } finally {
    c.close()
    await ts.stop()
  }
})

test('E10: corrupted stored bytes fail loudly: no partial document, clear log', async () => {
  const dir = tempDir()
  const first = await startServer({ dataDir: dir })
  const w = client(first.wsUrl, 'z', { doc: new TextDoc('w') })
  await w.synced
  w.doc.insert(0, 'will be corrupted')
  await waitFor(() => w.allAcknowledged, 'stored')
  w.close()
  await first.stop(true)
  const raw = new Database(join(dir, 'polyphony.sqlite3'))
  // The shutdown compacted everything into the snapshot.
  const row = raw.prepare('SELECT rowid AS r, data FROM snapshots LIMIT 1').get() as {
    r: number
    data: Buffer
  }
  row.data[row.data.length - 1] ^= 0x01
  raw.prepare('UPDATE snapshots SET data = ? WHERE rowid = ?').run(row.data, row.r)
  raw.close()
  const ts = await startServer({ dataDir: dir })
  try {
    const res = await fetch(`${ts.httpUrl}/api/docs/z`)
    assert.is(res.status, 503)
    const logged = ts.logs.find((l) => l.msg === 'REST read failed')
    assert.ok(logged, 'logged')
    assert.match(JSON.stringify(logged), /checksum/)
    const c = client(ts.wsUrl, 'z', { doc: new TextDoc('c') })
    const why = await within(
      new Promise<string>((r) => c.on('status', (s, reason) => s === 'offline' && r(reason ?? ''))),
      5000,
      'client closed',
    )
    assert.match(why, /unavailable/)
    assert.is(c.doc.toString(), '')
    c.close()
  } finally {
    await ts.stop()
  }
})

test.run()
