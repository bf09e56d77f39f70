// Integration: per-process and per-connection limits (RELIABILITY B4, C10, D8): documents per
// process with idle unload, document size cap, event-rate throttling, presence floods.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CLOSE } from '../server/close-codes.ts'
import { Presence } from '../shared/presence.ts'
import { WireState, encodeMessage } from '../shared/protocol.ts'
import { TextDoc } from '../shared/text-doc.ts'
import { SqliteStorage } from '../server/storage.ts'
import { FaultyStorage } from './support/server-faulty-storage.ts'
import {
  client,
  rawSocket,
  restText,
  startServer,
  tempDir,
  waitFor,
  within,
} from './support/server-harness.ts'

test('B4: documents per process are capped; idle ones unload and make room', async () => {
  const ts = await startServer({ limits: { maxLoadedDocuments: 3, idleUnloadMs: 50 } })
  const held = ['d1', 'd2', 'd3'].map((id) => client(ts.wsUrl, id))
  try {
    await within(Promise.all(held.map((c) => c.synced)), 5000, 'three synced')
    const fourth = client(ts.wsUrl, 'd4')
    const why = await within(
      new Promise<string>((r) => fourth.on('status', (s, w) => s === 'offline' && r(w ?? ''))),
      5000,
      'fourth refused for now',
    )
    assert.match(why, /capacity/)
    assert.is(ts.server.stats().documents, 3)
    held[0]!.close()
    await within(fourth.synced, 5000, 'fourth gets in once one is idle')
    fourth.close()
    for (const c of held) c.close()
    await waitFor(() => ts.server.stats().documents === 0, 'all unloaded when idle', 3000)
  } finally {
    for (const c of held) c.close()
    await ts.stop()
  }
})

test('B4: at the cap, two clients opening one document during an eviction share one copy', async () => {
  const dataDir = tempDir()
  const storage = new FaultyStorage(await SqliteStorage.open({ dataDir }))
  const limits = { maxLoadedDocuments: 3, idleUnloadMs: 60_000 }
  const ts = await startServer({ storage, limits })
  const clients: ReturnType<typeof client>[] = []
  try {
    for (const id of ['i1', 'i2', 'i3']) {
      const c = client(ts.wsUrl, id)
      await within(c.synced, 5000, `${id} synced`)
      c.doc.insert(0, `idle ${id}`)
      await waitFor(() => c.allAcknowledged, `${id} acked`)
      c.close()
    }
    // Evicting an idle document snapshots it first, slowly: both clients arrive meanwhile.
    storage.faults.compactDelayMs = 300
    const loadsBefore = storage.loads
    const a = client(ts.wsUrl, 'hot')
    const b = client(ts.wsUrl, 'hot')
    clients.push(a, b)
    await within(Promise.all([a.synced, b.synced]), 5000, 'both synced')
    assert.is(storage.loads - loadsBefore, 1, 'one load of the document')
    a.doc.insert(0, 'AAA')
    b.doc.insert(0, 'BBB')
    await waitFor(() => a.allAcknowledged && b.allAcknowledged, 'both acked')
    await waitFor(() => a.doc.length === 6 && b.doc.length === 6, 'each sees the other')
    assert.is(a.doc.toString(), b.doc.toString())
    for (const c of clients) c.close()
    storage.faults.compactDelayMs = 0
    await ts.stop(true)
    const again = await startServer({ dataDir, limits })
    assert.is(await restText(again.httpUrl, 'hot'), a.doc.toString(), 'both stored')
    await again.stop()
  } finally {
    for (const c of clients) c.close()
    await ts.stop()
  }
})

test('C10: writes past the document size cap are refused; reads keep working', async () => {
  const ts = await startServer({ limits: { maxDocumentChars: 1000 } })
  const a = client(ts.wsUrl, 'cap', { doc: new TextDoc('a') })
  try {
    await a.synced
    a.doc.insert(0, 'x'.repeat(600))
    await waitFor(() => a.allAcknowledged, 'under the cap')
    a.doc.insert(0, 'y'.repeat(600))
    const why = await within(
      new Promise<string>((r) => a.on('status', (s, w) => s === 'refused' && r(w ?? ''))),
      5000,
      'refused at the cap',
    )
    assert.match(why, /size limit/)
    // Any further write to the document is refused before it is applied.
    const b = client(ts.wsUrl, 'cap', { doc: new TextDoc('b') })
    await b.synced
    b.doc.insert(0, 'more')
    await waitFor(() => b.status === 'refused', 'second writer refused')
    const text = await restText(ts.httpUrl, 'cap')
    assert.not.ok(text.includes('more'), 'the refused write was not applied')
    assert.ok(text.length <= 1200)
    b.close()
  } finally {
    a.close()
    await ts.stop()
  }
})

test('event rate: a flooding connection is throttled; others keep real-time fan-out', async () => {
  const ts = await startServer({ limits: { eventsPerSecond: 5000, eventBurst: 500 } })
  const flood = client(ts.wsUrl, 'rate', { doc: new TextDoc('flood') })
  const b = client(ts.wsUrl, 'rate', { doc: new TextDoc('b') })
  const c = client(ts.wsUrl, 'rate', { doc: new TextDoc('c') })
  try {
    await Promise.all([flood.synced, b.synced, c.synced])
    const t0 = performance.now()
    for (let i = 0; i < 200; i++) {
      flood.doc.insert(flood.doc.length, 'f'.repeat(50))
      await new Promise((r) => setTimeout(r, 2))
    }
    // While the flood is throttled, b's edit reaches c promptly.
    await new Promise((r) => setTimeout(r, 100))
    const t1 = performance.now()
    b.doc.insert(0, 'B')
    await waitFor(() => c.doc.toString().includes('B'), 'b reaches c', 2000)
    const fanout = performance.now() - t1
    await waitFor(() => flood.allAcknowledged, 'flood eventually accepted', 10_000)
    const total = performance.now() - t0
    assert.ok(
      total >= 1000,
      `10,000 events at 5000/s, burst 500: the last batch is accepted >= 1 s in (${total})`,
    )
    assert.ok(fanout < 500, `fan-out during the flood stays fast (${fanout} ms)`)
    assert.is(flood.status, 'synced', 'throttled, not disconnected')
  } finally {
    for (const x of [flood, b, c]) x.close()
    await ts.stop()
  }
})

test('D8: a presence flood is rate-limited; the flooder is slowed, others see few updates', async () => {
  const ts = await startServer({ limits: { presencePerSecond: 20 } })
  const pb = new Presence()
  const b = client(ts.wsUrl, 'pres', { presence: pb })
  try {
    await b.synced
    let changes = 0
    pb.on('change', () => changes++)
    const ws = await rawSocket(ts.wsUrl, 'pres')
    const out = new WireState()
    const empty = new TextDoc().version()
    ws.send(
      encodeMessage(
        { type: 'hello', readOnly: false, id: 'flooder', have: empty, durable: empty },
        out,
      ),
    )
    for (let i = 1; i <= 500; i++) {
      ws.send(
        encodeMessage(
          { type: 'presence', entries: [{ id: 'flooder', clock: i, state: { name: 'n' + i } }] },
          out,
        ),
      )
    }
    await new Promise((r) => setTimeout(r, 1500))
    assert.ok(changes > 0, 'presence does flow')
    assert.ok(changes < 60, `flood is rate-limited (${changes} changes seen)`)
    assert.is(ws.readyState, ws.OPEN, 'throttled rather than disconnected')
    ws.close()
  } finally {
    b.close()
    await ts.stop()
  }
})

test('F4: connect / edit / leave loops free every connection and document', async () => {
  const ts = await startServer({ limits: { idleUnloadMs: 20 } })
  try {
    for (let round = 0; round < 5; round++) {
      const cs = Array.from({ length: 10 }, (_, i) => client(ts.wsUrl, `soak-${i % 4}`))
      await within(Promise.all(cs.map((c) => c.synced)), 5000, 'soak clients synced')
      for (const c of cs) c.doc.insert(0, 'r' + round)
      await waitFor(() => cs.every((c) => c.allAcknowledged), 'soak edits acked')
      for (const c of cs) c.close()
      await waitFor(
        () => ts.server.stats().connections === 0 && ts.server.stats().documents === 0,
        'back to no connections and no documents',
        5000,
      )
    }
    const text = await restText(ts.httpUrl, 'soak-0')
    assert.is(text.length, 5 * 3 * 2, 'every round stored (3 clients x 2 chars per round)')
  } finally {
    await ts.stop()
  }
})

test('size-cap close code is final for the client', () => {
  assert.is(CLOSE.DOCUMENT_TOO_LARGE, 4413)
})

test.run()
