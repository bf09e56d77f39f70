// Integration: ordering under slow storage and at the close of a link (RELIABILITY F2, E6, A11).
// F2: one link's messages are integrated, stored and acknowledged in the order they were sent,
// while the document loads or while storage writes are slow (a later write made to finish
// first). E6: a document's compactions never overlap in storage, however many are asked for.
// A11: a frame that arrives after the one that closed the link is never applied.
import { rmSync } from 'node:fs'
import type { Socket } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type WebSocket from 'ws'
import { CLOSE } from '../server/close-codes.ts'
import { SqliteStorage } from '../server/storage.ts'
import { PROTOCOL_VERSION, WireState, decodeMessage, encodeMessage } from '../shared/protocol.ts'
import type { Message } from '../shared/protocol.ts'
import { TextDoc } from '../shared/text-doc.ts'
import { summarizeUpdate } from '../shared/update-summary.ts'
import { FaultyStorage } from './support/server-faulty-storage.ts'
import {
  client,
  closeOf,
  rawSocket,
  restText,
  startServer,
  tempDir,
  waitFor,
  within,
  type RawSocket,
} from './support/server-harness.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * FaultyStorage that also records, per document, how many compactions are in storage at once,
 * and each append as it commits; `appendDelay(k)` holds the k-th append's (from 0) answer that
 * long after it is stored (storage commits a document's appends in the order called: the
 * Storage contract; their answers may come in any order).
 */
class WatchedStorage extends FaultyStorage {
  private readonly compacting = new Map<string, number>()
  maxCompacting = 0
  appendDelay: ((k: number) => number) | null = null
  private appendNo = 0
  /** Appends committed, in commit order. */
  readonly committed: { docId: string; update: Uint8Array }[] = []

  override async compact(docId: string, snapshot: Uint8Array, throughId: number): Promise<void> {
    const n = (this.compacting.get(docId) ?? 0) + 1
    this.compacting.set(docId, n)
    this.maxCompacting = Math.max(this.maxCompacting, n)
    try {
      await super.compact(docId, snapshot, throughId)
    } finally {
      this.compacting.set(docId, this.compacting.get(docId)! - 1)
    }
  }

  override async append(docId: string, update: Uint8Array): Promise<number> {
    const delay = this.appendDelay?.(this.appendNo++) ?? 0
    const id = await super.append(docId, update)
    this.committed.push({ docId, update })
    if (delay > 0) await sleep(delay)
    return id
  }
}

async function watched(dir: string): Promise<WatchedStorage> {
  return new WatchedStorage(await SqliteStorage.open({ dataDir: dir }))
}

/** HELLO for a fresh empty replica. */
function hello(out: WireState): Uint8Array {
  const v = new TextDoc().version()
  return encodeMessage({ type: 'hello', readOnly: false, id: 'raw', have: v, durable: v }, out)
}

/** EVENTS carrying one update of `doc` (its version as `have`). */
function events(doc: TextDoc, update: Uint8Array, out: WireState, ackWanted = false): Uint8Array {
  return encodeMessage({ type: 'events', have: doc.version(), updates: [update], ackWanted }, out)
}

/** EVENTS whose update is garbage (the link fails it with BAD_UPDATE, close 4005). */
function garbageEvents(out: WireState): Uint8Array {
  const updates = [new Uint8Array([80, 89, 1, 1, 0, 255, 255])]
  return encodeMessage({ type: 'events', have: { evil: 3 }, updates }, out)
}

/** Sends `frames` as one socket write (one TCP chunk on loopback): they arrive in one burst. */
function burst(ws: WebSocket, frames: readonly (Uint8Array | string)[]): void {
  const sock = (ws as unknown as { _socket: Socket })._socket
  sock.cork()
  for (const f of frames) ws.send(f)
  sock.uncork()
}

/** `n` updates of `doc`, each one character appended after the previous (each depends on it). */
function chain(doc: TextDoc, n: number): Uint8Array[] {
  const ups: Uint8Array[] = []
  const off = doc.on('update', (u) => void ups.push(u))
  for (let i = 0; i < n; i++) doc.insert(doc.length, String.fromCharCode(97 + (i % 26)))
  off()
  return ups
}

/** Decodes what the server sent on `ws`, in order, as it arrives (one WireState per direction). */
function serverMessages(ws: RawSocket, onMessage: (m: Message) => void = () => {}): Message[] {
  const st = new WireState()
  const msgs: Message[] = []
  let seen = 0
  const pump = () => {
    while (seen < ws.received.length) {
      const m = decodeMessage(ws.received[seen++]!, st)
      msgs.push(m)
      onMessage(m)
    }
  }
  pump()
  ws.on('message', pump) // after rawSocket's own listener: `received` already holds it
  return msgs
}

/** The `ackedMessages` counts the server sent, in order. */
function ackCounts(msgs: readonly Message[]): number[] {
  const out: number[] = []
  for (const m of msgs) {
    if ((m.type === 'ack' || m.type === 'events') && m.ackedMessages !== undefined) {
      out.push(m.ackedMessages)
    }
  }
  return out
}

/** The seqs of `agent` covered by the updates committed for `docId` so far. */
function committedSeqs(storage: WatchedStorage, docId: string, agent: string): Set<number> {
  const seqs = new Set<number>()
  for (const c of storage.committed) {
    if (c.docId !== docId) continue
    const s = summarizeUpdate(c.update)
    const end = s?.vv[agent]
    if (s === null || end === undefined) continue
    // Updates from a single writer carry one contiguous run of its events.
    for (let q = end - s.events; q < end; q++) seqs.add(q)
  }
  return seqs
}

/**
 * What the server sends on `ws`, decoded; `early` lists every ack that arrived before storage had
 * committed all the events of `docId`'s writer `agent` it covers (message k carries event k-1).
 */
function watchAcks(ws: RawSocket, storage: WatchedStorage, docId: string, agent: string) {
  const early: string[] = []
  const msgs = serverMessages(ws, (m) => {
    if ((m.type !== 'ack' && m.type !== 'events') || m.ackedMessages === undefined) return
    const n = m.ackedMessages
    const seqs = committedSeqs(storage, docId, agent)
    for (let q = 0; q < n; q++) if (!seqs.has(q)) early.push(`ack ${n} before event ${q} stored`)
  })
  return { msgs, early }
}

/** The writer's event count after each update committed for `docId`, in commit order. */
function commitOrder(storage: WatchedStorage, docId: string, agent: string): number[] {
  return storage.committed
    .filter((c) => c.docId === docId)
    .map((c) => summarizeUpdate(c.update)?.vv[agent])
    .filter((e) => e !== undefined)
}

function assertNonDecreasing(xs: readonly number[], what: string): void {
  for (let i = 1; i < xs.length; i++) {
    assert.ok(xs[i]! >= xs[i - 1]!, `${what} out of order: ${xs.join(',')}`)
  }
}

/** Polls the REST text of `docId` until it is `expected` (bounded). */
async function waitForText(httpUrl: string, docId: string, expected: string): Promise<void> {
  const end = Date.now() + 5000
  let last = ''
  while ((last = await restText(httpUrl, docId)) !== expected) {
    if (Date.now() > end) assert.is(last, expected, `REST text of ${docId}`)
    await sleep(20)
  }
}

// ---------------------------------------------------------------- F2

test('F2: 20 dependent messages sent while the document loads slowly are applied in order', async () => {
  const dir = tempDir()
  const storage = await watched(dir)
  storage.faults.loadDelayMs = 400
  const ts = await startServer({ storage, dataDir: dir })
  try {
    const ws = await rawSocket(ts.wsUrl, 'f2-load')
    const { msgs, early } = watchAcks(ws, storage, 'f2-load', 'writer')
    const out = new WireState()
    const doc = new TextDoc('writer')
    const ups = chain(doc, 20)
    // HELLO and the 20 messages in one burst: all of them arrive while the load is held.
    burst(ws, [hello(out), ...ups.map((u) => events(doc, u, out, true))])
    await sleep(100)
    assert.is(ts.server.stats().documents, 0, 'the document was still loading')
    await waitFor(() => ackCounts(msgs).at(-1) === 20, 'all 20 messages acknowledged', 5000)
    assert.is(ws.readyState, ws.OPEN, 'the socket stays open')
    assert.equal(early, [], 'no ack ahead of storage')
    assertNonDecreasing(ackCounts(msgs), 'acks')
    assert.not.ok(
      msgs.some((m) => m.type === 'need' || m.type === 'error'),
      'no gap request or error',
    )
    // Applied in the order sent, each finding its parent already there: each message is
    // integrated, and stored, on its own. (Replayed out of order, the events would wait for
    // their parents and integrate in one lump when the first message came.)
    assert.equal(
      commitOrder(storage, 'f2-load', 'writer'),
      Array.from({ length: 20 }, (_, i) => i + 1),
      'one write per message, in message order',
    )
    assert.is(await restText(ts.httpUrl, 'f2-load'), 'abcdefghijklmnopqrst')
    ws.close()
  } finally {
    await ts.stop(true)
    rmSync(dir, { recursive: true, force: true })
  }
})

test('F2: with slow storage writes (later ones faster), stores and acks keep message order', async () => {
  const dir = tempDir()
  const storage = await watched(dir)
  let ts = await startServer({ storage, dataDir: dir })
  const port = ts.server.port
  try {
    const ws = await rawSocket(ts.wsUrl, 'f2-write')
    const out = new WireState()
    const doc = new TextDoc('writer')
    // Each ack must cover only messages whose events are already committed to storage.
    const { msgs, early } = watchAcks(ws, storage, 'f2-write', 'writer')
    ws.send(hello(out))
    await waitFor(() => msgs.some((m) => m.type === 'hello'), "the server's HELLO: linked")
    // The k-th write's answer comes 200 - 10k ms after it is stored: the last first.
    storage.appendDelay = (k) => Math.max(0, 200 - 10 * k)
    const ups = chain(doc, 20)
    burst(
      ws,
      ups.map((u) => events(doc, u, out, true)),
    )
    await waitFor(() => ackCounts(msgs).at(-1) === 20, 'all 20 messages acknowledged', 8000)
    assert.is(ws.readyState, ws.OPEN, 'the socket stays open')
    assert.equal(early, [], 'no ack ahead of storage')
    assertNonDecreasing(ackCounts(msgs), 'acks')
    assert.not.ok(msgs.some((m) => m.type === 'need' || m.type === 'error'))
    // Committed in the order sent.
    assert.equal(
      commitOrder(storage, 'f2-write', 'writer'),
      Array.from({ length: 20 }, (_, i) => i + 1),
      'writes committed in message order',
    )
    assert.is(await restText(ts.httpUrl, 'f2-write'), 'abcdefghijklmnopqrst')
    ws.close()
    storage.appendDelay = null
    await ts.stop(true)
    ts = await startServer({ dataDir: dir, port })
    assert.is(await restText(ts.httpUrl, 'f2-write'), 'abcdefghijklmnopqrst', 'after a restart')
  } finally {
    await ts.stop(true)
    rmSync(dir, { recursive: true, force: true })
  }
})

// ---------------------------------------------------------------- E6

test('E6: compactions of a document never overlap in storage; the text survives a restart', async () => {
  const dir = tempDir()
  const storage = await watched(dir)
  storage.faults.compactDelayMs = 40
  storage.faults.appendDelayMs = 15
  let ts = await startServer({
    storage,
    dataDir: dir,
    // A compaction after every stored update, and an unload (flush + snapshot) when idle.
    limits: { compactAfterUpdates: 1, compactAfterGrowth: 0, idleUnloadMs: 20 },
  })
  const port = ts.server.port
  const docs = ['e6-a', 'e6-b']
  const writers = 3
  const rounds = 3
  const edits = 8
  /** Writer `w` of `docId`: `rounds` short sessions, each `edits` tokens appended. */
  const session = async (docId: string, w: number) => {
    const doc = new TextDoc(`w${w}-${docId}`)
    for (let r = 0; r < rounds; r++) {
      const c = client(ts.wsUrl, docId, { doc })
      try {
        await within(c.synced, 5000, `${docId} w${w} synced`)
        for (let i = 0; i < edits; i++) {
          doc.insert(doc.length, `<${w}.${r * edits + i}>`)
          await sleep(3)
        }
        // Leave at once, edits still being stored: the link's settle asks for a snapshot while
        // the write path's compaction may be running. The last session waits for its acks.
        if (r === rounds - 1) await waitFor(() => c.allAcknowledged, `${docId} w${w} acked`, 8000)
      } finally {
        c.close()
      }
      await sleep(15 * w) // rejoin at different moments: unloads and reloads overlap the writes
    }
  }
  try {
    await Promise.all(docs.flatMap((d) => Array.from({ length: writers }, (_, w) => session(d, w))))
    const texts = await Promise.all(docs.map((d) => restText(ts.httpUrl, d)))
    for (const [i, text] of texts.entries()) {
      // Every token exactly once, each writer's in the order it typed them.
      const tokens = [...text.matchAll(/<(\d+)\.(\d+)>/g)]
      assert.is(tokens.map((m) => m[0]).join(''), text, `${docs[i]}: nothing but tokens`)
      assert.is(tokens.length, writers * rounds * edits, `${docs[i]}: every token once`)
      for (let w = 0; w < writers; w++) {
        const mine = tokens.filter((m) => m[1] === String(w)).map((m) => Number(m[2]))
        assert.equal(
          mine,
          Array.from({ length: rounds * edits }, (_, k) => k),
          `${docs[i]}: writer ${w}`,
        )
      }
    }
    await waitFor(() => storage.compactsDone === storage.compacts, 'compactions finished', 5000)
    assert.ok(storage.compacts >= 15, `many compactions (${storage.compacts})`)
    assert.is(storage.maxCompacting, 1, 'at most one compaction of a document in storage at once')
    await ts.stop(true)
    ts = await startServer({ dataDir: dir, port })
    for (const [i, d] of docs.entries()) {
      assert.is(await restText(ts.httpUrl, d), texts[i], `${d} after a restart`)
    }
  } finally {
    await ts.stop(true)
    rmSync(dir, { recursive: true, force: true })
  }
})

// ---------------------------------------------------------------- A11

test('A11: on a linked socket, a valid edit right after a closing frame is not applied', async () => {
  const ts = await startServer()
  try {
    const cases: [string, ((out: WireState) => Uint8Array | string) | null, number | null][] = [
      ['control (no bad frame)', null, null],
      ['text frame', () => 'x', CLOSE.UNSUPPORTED_DATA],
      ['garbage events', garbageEvents, 4005], // BAD_UPDATE
      ['unknown type', () => new Uint8Array([PROTOCOL_VERSION, 77]), 4003], // UNKNOWN_TYPE
    ]
    for (const [i, [name, bad, code]] of cases.entries()) {
      const docId = `a11-linked-${i}`
      const ws = await rawSocket(ts.wsUrl, docId)
      const msgs = serverMessages(ws)
      const out = new WireState()
      const doc = new TextDoc(`raw${i}`)
      ws.send(hello(out))
      await waitFor(() => msgs.some((m) => m.type === 'hello'), `${name}: linked`)
      // A first edit is applied: the link works.
      const [first] = chain(doc, 1)
      ws.send(events(doc, first!, out, true))
      await waitFor(() => ackCounts(msgs).at(-1) === 1, `${name}: first edit acknowledged`)
      assert.is(await restText(ts.httpUrl, docId), 'a')
      // Then, in one burst: the bad frame and a valid edit.
      const before = doc.version()
      doc.insert(doc.length, 'APPLIED?')
      const edit = events(doc, doc.encodeUpdate(before), out, true)
      if (bad === null) {
        burst(ws, [edit])
        await waitForText(ts.httpUrl, docId, 'aAPPLIED?')
        assert.is(ws.readyState, ws.OPEN, `${name}: open`)
        ws.close()
        continue
      }
      burst(ws, [bad(out), edit])
      assert.is((await closeOf(ws)).code, code, `${name}: close code`)
      await sleep(100) // anything still queued would be applied by now
      assert.is(await restText(ts.httpUrl, docId), 'a', `${name}: the edit after it not applied`)
      assert.is(ackCounts(msgs).at(-1), 1, `${name}: nothing more acknowledged`)
    }
    await waitFor(() => ts.server.stats().connections === 0, 'every link closed')
  } finally {
    await ts.stop()
  }
})

test('A11: frames queued behind a closing frame while the document loads are not applied', async () => {
  const dir = tempDir()
  const storage = await watched(dir)
  storage.faults.loadDelayMs = 300
  const ts = await startServer({ storage, dataDir: dir })
  try {
    const cases: [string, (out: WireState) => Uint8Array | string, number][] = [
      ['text frame', () => 'x', CLOSE.UNSUPPORTED_DATA],
      ['garbage events', garbageEvents, 4005], // BAD_UPDATE, on replay of the early frames
    ]
    for (const [i, [name, bad, code]] of cases.entries()) {
      const docId = `a11-loading-${i}`
      const ws = await rawSocket(ts.wsUrl, docId)
      const out = new WireState()
      const doc = new TextDoc(`early${i}`)
      const [edit] = chain(doc, 1)
      const h = hello(out)
      const b = bad(out)
      burst(ws, [h, b, events(doc, edit!, out, true)])
      assert.is((await closeOf(ws)).code, code, `${name}: close code`)
      await sleep(100)
      assert.is(await restText(ts.httpUrl, docId), '', `${name}: the edit after it not applied`)
      assert.not.ok(
        storage.committed.some((c) => c.docId === docId),
        `${name}: nothing stored`,
      )
    }
  } finally {
    await ts.stop(true)
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
