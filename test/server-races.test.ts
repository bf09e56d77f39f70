// Races between a document's writes, compactions, unloads and links that once lost acknowledged
// edits (found by review, each reproduced before its fix): a compaction queued by a leaving
// link ran on a copy already unloaded and overwrote a newer copy's snapshot. And a snapshot owed
// after failed writes is retried on its own once storage is back.
import { rmSync } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DocumentRegistry } from '../server/documents.ts'
import { resolveLimits } from '../server/limits.ts'
import { createLogger } from '../server/log.ts'
import { createMetrics } from '../server/metrics.ts'
import { SqliteStorage, type Storage } from '../server/storage.ts'
import { TextDoc } from '../shared/text-doc.ts'
import { FaultyStorage } from './support/server-faulty-storage.ts'
import { client, startServer, tempDir, waitFor, within } from './support/server-harness.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** FaultyStorage whose n-th compaction (from 1) waits `delays[n]` ms before it is stored. */
class SlowCompactions extends FaultyStorage {
  calls = 0
  constructor(
    inner: Storage,
    readonly delays: Record<number, number>,
  ) {
    super(inner)
  }
  override async compact(docId: string, snapshot: Uint8Array, throughId: number): Promise<void> {
    const delay = this.delays[++this.calls] ?? 0
    if (delay > 0) await sleep(delay)
    await super.compact(docId, snapshot, throughId)
  }
}

/** A replica whose edits come back as their updates. */
function author(agent: string) {
  const doc = new TextDoc(agent)
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => void updates.push(u))
  return {
    doc,
    type(text: string): Uint8Array {
      doc.insert(doc.length, text)
      return updates[updates.length - 1]!
    },
  }
}

test('an unload waits for the compaction a leaving link queued; none runs on an unloaded copy', async () => {
  const dir = tempDir()
  // The second compaction (the one the first link's settle queues) is slow.
  const sqlite = await SqliteStorage.open({ dataDir: dir, commitIntervalMs: 0 })
  const storage = new SlowCompactions(sqlite, { 2: 400 })
  const limits = resolveLimits({
    idleUnloadMs: 20,
    compactAfterUpdates: 1000,
    compactAfterGrowth: 0,
  })
  const log = createLogger('silent')
  const registry = new DocumentRegistry(storage, limits, log, createMetrics())
  const a = author('alice')
  try {
    const first = await registry.acquire('d')
    await registry.acquire('d') // a second connection
    // Connection 1: one update being stored, one integrated but never handed to persist.
    storage.faults.appendDelayMs = 100
    const u1 = a.type('one ')
    first.doc.applyUpdate(u1, 'link 1')
    void registry.persist(first, u1).catch(() => undefined)
    first.doc.applyUpdate(a.type('two '), 'link 1')
    registry.release(first) // its settle waits for u1's write
    await sleep(30)
    storage.faults.appendDelayMs = 150
    const u3 = a.type('three ')
    first.doc.applyUpdate(u3, 'link 2')
    void registry.persist(first, u3).catch(() => undefined)
    registry.release(first) // no connection left: unloads after 20 ms
    storage.faults.appendDelayMs = 0
    await waitFor(() => registry.loadedCount === 0, 'first copy unloaded')
    assert.is(first.compacting, null, 'no compaction left running on the unloaded copy')
    // A new copy takes an acknowledged edit, and its own unload compacts it.
    const second = await registry.acquire('d')
    assert.ok(second !== first)
    const u4 = a.type('FOUR ')
    second.doc.applyUpdate(u4, 'link 3')
    await registry.persist(second, u4)
    registry.release(second)
    await waitFor(() => registry.loadedCount === 0, 'second copy unloaded')
    await sleep(500) // past the slow compaction, had it run late
    assert.is(storage.calls, 3)
  } finally {
    await registry.close()
    await storage.close()
  }
  const reopened = await SqliteStorage.open({ dataDir: dir })
  const again = new DocumentRegistry(reopened, resolveLimits({}), log, createMetrics())
  try {
    assert.is((await again.read('d')).doc.toString(), 'one two three FOUR ')
  } finally {
    await again.close()
    await reopened.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('an owed snapshot is retried once storage is back, with no connection to ask for it', async () => {
  const dataDir = tempDir()
  const storage = new FaultyStorage(await SqliteStorage.open({ dataDir }))
  const limits = { idleUnloadMs: 60_000, storageWriteAttempts: 1 }
  const ts = await startServer({ storage, dataDir, limits })
  const alice = client(ts.wsUrl, 'owed', { doc: new TextDoc('alice') })
  const bob = client(ts.wsUrl, 'owed', { doc: new TextDoc('bob') })
  try {
    await within(Promise.all([alice.synced, bob.synced]), 5000, 'both synced')
    Object.assign(storage.faults, { failAppends: true, failCompacts: true })
    alice.doc.insert(0, 'ALICE')
    await waitFor(() => storage.failedAppends === 1, 'her write failed for good', 3000)
    alice.close() // the snapshot her leaving asks for fails too
    await sleep(300)
    assert.is(storage.compactsDone, 0)
    Object.assign(storage.faults, { failAppends: false, failCompacts: false })
    // Bob stays, idle: no write, no new connection. The retry stores the owed snapshot.
    await waitFor(() => storage.compactsDone === 1, 'owed snapshot stored by the retry', 8000)
    assert.is(bob.doc.toString(), 'ALICE')
  } finally {
    alice.close()
    bob.close()
    await ts.stop()
  }
})

test.run()
