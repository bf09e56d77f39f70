// Compaction policy: a document's update log is folded into a snapshot after
// `compactAfterUpdates` updates, and, once it has a snapshot, only when those updates hold
// `compactAfterGrowth` of the snapshot's bytes (a snapshot costs time in proportion to the
// history). Counted on a real SQLite store through the counting wrapper; the text survives a
// restart whichever way the log was left.
import { rmSync } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SqliteStorage } from '../server/storage.ts'
import { TextDoc } from '../shared/text-doc.ts'
import { FaultyStorage } from './support/server-faulty-storage.ts'
import { client, restText, startServer, tempDir, waitFor } from './support/server-harness.ts'
import { Rng } from './support/rng.ts'

/** Text that deflate cannot shrink much, so its snapshot is about as long as it is. */
function noise(n: number, seed: number): string {
  const r = new Rng(seed)
  let s = ''
  while (s.length < n) s += String.fromCharCode(97 + (r.u32() % 26))
  return s
}

async function run(growth: number): Promise<{ compacts: number[]; text: string; after: string }> {
  const dir = tempDir()
  const storage = new FaultyStorage(await SqliteStorage.open({ dataDir: dir }))
  let ts = await startServer({
    storage,
    dataDir: dir,
    limits: { compactAfterUpdates: 4, compactAfterGrowth: growth },
  })
  const port = ts.server.port
  const c = client(ts.wsUrl, 'log', { doc: new TextDoc('writer') })
  const compacts: number[] = []
  try {
    await c.synced
    /**
     * One edit, stored as one update before the next. (The registry decides on compaction in
     * the same promise chain as the append, so once the append has settled and timers run, the
     * decision is made. The compaction then stores its snapshot once the text is deflated on
     * the thread pool, well under a millisecond for these texts: 100 ms is ample.)
     */
    const edit = async (text: string) => {
      const before = storage.appends
      c.doc.insert(c.doc.length, text)
      await waitFor(() => storage.appends === before + 1 && storage.inFlightAppends === 0, 'stored')
      await new Promise((r) => setTimeout(r, 100))
    }
    // A big first update, then small ones: the first compaction comes at the 4th update.
    await edit(noise(20_000, 1))
    for (let i = 0; i < 3; i++) await edit(`small ${i};`)
    compacts.push(storage.compacts)
    // Twelve small updates: three times the count, a sliver of the snapshot's bytes.
    for (let i = 0; i < 12; i++) await edit(`more ${i};`)
    compacts.push(storage.compacts)
    // Over half the snapshot's bytes again: the next count boundary compacts.
    await edit(noise(20_000, 2))
    for (let i = 0; i < 3; i++) await edit(`last ${i};`)
    compacts.push(storage.compacts)
    const text = c.doc.toString()
    c.close()
    await ts.stop(true)
    ts = await startServer({ dataDir: dir, port })
    return { compacts, text, after: await restText(ts.httpUrl, 'log') }
  } finally {
    c.close()
    await ts.stop(true)
    rmSync(dir, { recursive: true, force: true })
  }
}

test('a document with a large snapshot compacts once its log has grown by the fraction', async () => {
  const { compacts, text, after } = await run(0.5)
  assert.equal(compacts, [1, 1, 2])
  assert.is(after, text)
})

test('compactAfterGrowth 0: every compactAfterUpdates updates, whatever their size', async () => {
  const { compacts, text, after } = await run(0)
  assert.equal(compacts, [1, 4, 5])
  assert.is(after, text)
})

test('a compaction runs behind the acks; updates stored while it runs are kept', async () => {
  const dir = tempDir()
  const storage = new FaultyStorage(await SqliteStorage.open({ dataDir: dir }))
  let ts = await startServer({
    storage,
    dataDir: dir,
    limits: { compactAfterUpdates: 3, compactAfterGrowth: 0 },
  })
  const port = ts.server.port
  const c = client(ts.wsUrl, 'behind', { doc: new TextDoc('writer') })
  try {
    await c.synced
    storage.faults.compactDelayMs = 1500
    for (let i = 0; i < 3; i++) {
      const before = storage.appends
      c.doc.insert(c.doc.length, `before ${i};`)
      await waitFor(() => storage.appends === before + 1 && storage.inFlightAppends === 0, 'stored')
    }
    await waitFor(() => storage.compacts === 1, 'a compaction started')
    // Its snapshot waits 1.5 s to be stored; edits meanwhile are stored and acknowledged.
    const t0 = performance.now()
    for (let i = 0; i < 5; i++) c.doc.insert(c.doc.length, `during ${i};`)
    await waitFor(() => c.status === 'synced' && storage.inFlightAppends === 0, 'acknowledged')
    assert.ok(performance.now() - t0 < 1000, 'the acks did not wait for the compaction')
    assert.is(storage.compactsDone, 0, 'the compaction was still running')
    await waitFor(() => storage.compactsDone >= 1, 'compacted', 5000)
    const text = c.doc.toString()
    c.close()
    await ts.stop(true)
    ts = await startServer({ dataDir: dir, port })
    assert.is(await restText(ts.httpUrl, 'behind'), text)
  } finally {
    c.close()
    await ts.stop(true)
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
