// Integration: acknowledgements of events the server already holds in memory but has not yet
// stored. A client that relays another's edits (peer to peer as well as through the server), or
// reconnects after leaving with writes in flight, sends the server events another link is still
// storing: they must not be acknowledged before storage has them (else a crash, or that write
// failing for good, loses an acknowledged edit), and must be acknowledged once it has, even on a
// document whose writes never all settle at once.
import { rmSync } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DocumentRegistry, whenStored, type LoadedDoc } from '../server/documents.ts'
import { resolveLimits } from '../server/limits.ts'
import { createLogger } from '../server/log.ts'
import { createMetrics } from '../server/metrics.ts'
import { SqliteStorage, type Storage } from '../server/storage.ts'
import { decodeUpdate } from '../shared/encoding.ts'
import { summarizeUpdate } from '../shared/update-summary.ts'
import { TextDoc } from '../shared/text-doc.ts'
import { FaultyStorage } from './support/server-faulty-storage.ts'
import { encodeMessage, WireState } from '../shared/protocol.ts'
import {
  client,
  rawSocket,
  startServer,
  tempDir,
  waitFor,
  within,
} from './support/server-harness.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function slowServer() {
  const dataDir = tempDir()
  const storage = new FaultyStorage(await SqliteStorage.open({ dataDir, commitIntervalMs: 0 }))
  const ts = await startServer({ storage, dataDir })
  return {
    storage,
    ts,
    async stop() {
      await ts.stop(true)
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** FaultyStorage whose appends each wait for `release()` while `gated`. */
class GatedStorage extends FaultyStorage {
  gated = false
  private readonly gates: (() => void)[] = []
  override async append(docId: string, update: Uint8Array): Promise<number> {
    if (this.gated) await new Promise<void>((r) => this.gates.push(r))
    return super.append(docId, update)
  }
  /** Lets the oldest held append go on. */
  release(): void {
    this.gates.shift()!()
  }
  /** Lets every append go on, now and from now on. */
  open(): void {
    this.gated = false
    for (const go of this.gates.splice(0)) go()
  }
}

test('whenStored waits for the updates held when called, not for those integrated after', async () => {
  const dataDir = tempDir()
  const storage = new GatedStorage(await SqliteStorage.open({ dataDir, commitIntervalMs: 0 }))
  const registry = new DocumentRegistry(
    storage,
    resolveLimits({}),
    createLogger('silent'),
    createMetrics(),
  )
  const dave = new TextDoc('dave')
  const updates: Uint8Array[] = []
  dave.on('update', (u) => void updates.push(u))
  /** Dave types `text`; the registry's copy integrates it from a link and starts storing it. */
  const typed = (entry: LoadedDoc, text: string) => {
    dave.insert(dave.length, text)
    const u = updates[updates.length - 1]!
    entry.doc.applyUpdate(u, 'a link')
    return registry.persist(entry, u)
  }
  try {
    const entry = await registry.acquire('w')
    assert.is(whenStored(entry), null, 'nothing outstanding')
    storage.gated = true
    const one = typed(entry, 'one ')
    const two = typed(entry, 'two ')
    let settled = false
    const waiting = whenStored(entry)!.then(() => (settled = true))
    const three = typed(entry, 'three') // integrated after the call: not waited for
    storage.release()
    await one
    await sleep(20)
    assert.not.ok(settled, 'not while the second update is being stored')
    storage.release()
    await two
    await within(waiting, 1000, 'settled with the third still being stored')
    assert.ok(entry.outstanding !== null && entry.outstanding.size === 1, 'the third outstanding')
    storage.release()
    await three
    assert.is(entry.outstanding, null)
    assert.is(whenStored(entry), null)
  } finally {
    storage.open()
    await registry.close()
    await storage.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
})

test('events relayed by a second client are acknowledged to it only once stored', async () => {
  const { storage, ts, stop } = await slowServer()
  const alice = client(ts.wsUrl, 'relay', { doc: new TextDoc('alice') })
  const bob = client(ts.wsUrl, 'relay', { doc: new TextDoc('bob') })
  try {
    await within(Promise.all([alice.synced, bob.synced]), 5000, 'both synced')
    storage.faults.appendDelayMs = 800
    // Alice's edit reaches Bob directly (a peer link) before either sends it: both send it to
    // the server; the second to arrive brings events the server holds but is still storing.
    const updates: Uint8Array[] = []
    const off = alice.doc.on('update', (u) => void updates.push(u))
    alice.doc.insert(0, 'A')
    off()
    bob.doc.applyUpdate(updates[0]!)
    await waitFor(() => storage.inFlightAppends === 1, 'her edit being stored')
    await sleep(400)
    assert.is(storage.inFlightAppends, 1, 'still being stored')
    assert.is(alice.ackedVersion().alice ?? 0, 0, 'not acknowledged to alice before stored')
    assert.is(bob.ackedVersion().alice ?? 0, 0, 'not acknowledged to bob before stored')
    await waitFor(
      () => alice.ackedVersion().alice === 1 && bob.ackedVersion().alice === 1,
      'acknowledged to both once stored',
      3000,
    )
    assert.is(storage.inFlightAppends, 0)
  } finally {
    alice.close()
    bob.close()
    await stop()
  }
})

test('a client back with edits the server is still storing is acknowledged while others type', async () => {
  const { storage, ts, stop } = await slowServer()
  const carol = client(ts.wsUrl, 'busy', { doc: new TextDoc('carol') })
  const first = client(ts.wsUrl, 'busy', { doc: new TextDoc('alice') })
  let typing = true
  try {
    await within(Promise.all([carol.synced, first.synced]), 5000, 'both synced')
    // Every write takes 300 ms and Carol types every 10 ms, for 4 s: some update of the document
    // is always being stored, so its stored version (`durable`) never catches up meanwhile.
    storage.faults.appendDelayMs = 300
    const carolTypes = (async () => {
      for (let i = 0; typing && i < 400; i++) {
        carol.doc.insert(carol.doc.length, 'c')
        await sleep(10)
      }
    })()
    await sleep(200)
    // Alice types three edits, sent apart: the first being stored when she leaves, the others
    // waiting their turn on her link (a link stores its peer's updates one after another).
    for (const word of ['one ', 'two ', 'six ']) {
      first.doc.insert(first.doc.length, word)
      await sleep(40)
    }
    const atServer = () => ['one ', 'two ', 'six '].every((w) => carol.doc.toString().includes(w))
    await waitFor(atServer, 'her edits at the server')
    assert.is(first.ackedVersion().alice ?? 0, 0, 'her edits not stored yet')
    first.close()
    const again = client(ts.wsUrl, 'busy', { doc: first.doc })
    try {
      const t0 = performance.now()
      await within(again.synced, 2000, 'synced again while carol types')
      const waited = performance.now() - t0
      assert.ok(typing, 'acknowledged before the typing stopped')
      assert.is(again.ackedVersion().alice, 12)
      assert.ok(waited < 2000, `waited ${waited.toFixed(0)} ms`)
    } finally {
      typing = false
      await carolTypes
      again.close()
    }
    storage.faults.appendDelayMs = 0
    await waitFor(() => carol.allAcknowledged, 'carol acknowledged', 8000)
  } finally {
    typing = false
    carol.close()
    first.close()
    await stop()
  }
})

/** FaultyStorage that records which of one agent's events it holds (appends and snapshots). */
class AgentLedger extends FaultyStorage {
  private readonly seqs = new Set<number>()
  private snapshotThrough = 0
  constructor(
    inner: Storage,
    readonly agent: string,
  ) {
    super(inner)
  }
  override async append(docId: string, update: Uint8Array): Promise<number> {
    const id = await super.append(docId, update)
    for (const span of decodeUpdate(update).spans) {
      if (span.agent === this.agent)
        for (let q = span.seq; q < span.seq + span.len; q++) this.seqs.add(q)
    }
    return id
  }
  override async compact(docId: string, snapshot: Uint8Array, throughId: number): Promise<void> {
    await super.compact(docId, snapshot, throughId)
    const through = summarizeUpdate(snapshot)?.vv[this.agent] ?? 0
    this.snapshotThrough = Math.max(this.snapshotThrough, through)
  }
  /** How many of the agent's first events storage holds, all of them. */
  prefix(): number {
    let n = this.snapshotThrough
    while (this.seqs.has(n)) n++
    return n
  }
}

test('an ack never claims more of an agent than storage holds (a new edit right after a reconnect)', async () => {
  const dataDir = tempDir()
  const storage = new AgentLedger(
    await SqliteStorage.open({ dataDir, commitIntervalMs: 0 }),
    'alice',
  )
  const ts = await startServer({ storage, dataDir })
  const doc = new TextDoc('alice')
  const first = client(ts.wsUrl, 'back', { doc })
  let again: ReturnType<typeof client> | null = null
  try {
    await within(first.synced, 5000, 'synced')
    storage.faults.appendDelayMs = 300
    for (const word of ['one ', 'two ', 'six ']) {
      doc.insert(doc.length, word)
      await sleep(40)
    }
    await sleep(60)
    first.close() // her edits still being stored, one after another
    const back = (again = client(ts.wsUrl, 'back', { doc }))
    const claims: string[] = []
    back.on('ack', () => {
      const acked = back.ackedVersion().alice ?? 0
      if (acked > storage.prefix()) claims.push(`${acked} acked, ${storage.prefix()} stored`)
    })
    await sleep(60)
    doc.insert(doc.length, 'x') // all new at the server: the ack's version claims 0..12
    await within(back.synced, 5000, 'synced again')
    assert.is(back.ackedVersion().alice, 13)
    assert.equal(claims, [], 'acknowledged before stored')
    assert.ok(storage.prefix() >= 13)
  } finally {
    storage.faults.appendDelayMs = 0
    first.close()
    again?.close()
    await ts.stop(true)
    rmSync(dataDir, { recursive: true, force: true })
  }
})

test("a client sending faster than storage commits delays neither others' acks nor shutdown", async () => {
  // Real SQLite with its default commit spacing (a commit starts 50 ms after the last): a link
  // that stored one update per commit fell behind a client sending 100 messages a second, and
  // every other client's acks (which wait for everything held to be stored) waited with it.
  const dataDir = tempDir()
  const ts = await startServer({ dataDir })
  const fast = client(ts.wsUrl, 'backlog', { doc: new TextDoc('fast') })
  const slow = client(ts.wsUrl, 'backlog', { doc: new TextDoc('slow') })
  let typing = true
  try {
    await within(Promise.all([fast.synced, slow.synced]), 5000, 'synced')
    const t0 = performance.now()
    const fastTypes = (async () => {
      while (typing && performance.now() - t0 < 3000) {
        fast.doc.insert(fast.doc.length, 'f')
        await sleep(10)
      }
    })()
    const waits: number[] = []
    while (performance.now() - t0 < 3000) {
      slow.doc.insert(0, 's')
      const seq = slow.doc.version().slow!
      const sent = performance.now()
      await waitFor(() => (slow.ackedVersion().slow ?? 0) >= seq, 'slow acknowledged', 10_000)
      waits.push(performance.now() - sent)
      await sleep(200)
    }
    await fastTypes
    assert.ok(waits.length >= 5)
    assert.ok(Math.max(...waits) < 1000, `slow client's acks waited ${waits.map(Math.round)} ms`)
    const behind = (fast.doc.version().fast ?? 0) - (fast.ackedVersion().fast ?? 0)
    assert.ok(behind < 50, `fast client ${behind} events behind`)
    const closing = performance.now()
    await within(ts.server.close(), 3000, 'close')
    assert.ok(performance.now() - closing < 1000, 'shutdown not held by a backlog')
  } finally {
    typing = false
    fast.close()
    slow.close()
    await ts.stop()
  }
})

test("an event without its parent, sent by a client that then leaves, holds up no one else's acks", async () => {
  const ts = await startServer()
  const good = client(ts.wsUrl, 'orphan', { doc: new TextDoc('good') })
  let late: ReturnType<typeof client> | null = null
  try {
    await within(good.synced, 5000, 'synced')
    // seq 1 of 'mal' alone: its parent (seq 0) never comes; it waits in the server's buffer.
    const mal = new TextDoc('mal')
    mal.insert(0, 'a')
    mal.insert(1, 'b')
    const orphan = mal.encodeUpdate({ mal: 1 })
    const raw = await rawSocket(ts.wsUrl, 'orphan')
    const tx = new WireState()
    const none = () => Object.create(null) as Record<string, number>
    raw.send(
      encodeMessage(
        {
          type: 'hello',
          readOnly: false,
          id: 'mal',
          have: none(),
          durable: none(),
          noDeflate: true,
          tree: false,
        },
        tx,
      ),
    )
    raw.send(encodeMessage({ type: 'events', updates: [orphan], ackWanted: true }, tx))
    await waitFor(() => ts.server.stats().documents === 1, 'loaded')
    await sleep(200)
    raw.close()
    good.doc.insert(0, 'y')
    await waitFor(() => good.allAcknowledged, 'her edit acknowledged', 3000)
    late = client(ts.wsUrl, 'orphan', { doc: new TextDoc('late') })
    late.doc.insert(0, 'z')
    await within(late.synced, 3000, 'a new client synced')
    assert.is(good.status, 'synced')
  } finally {
    good.close()
    late?.close()
    await ts.stop()
  }
})

test.run()
