/**
 * `link` on real TextDocs over in-memory channels: handshake sends only what is
 * missing, streaming and batching, relays, read-only, persist/ack and `synced`,
 * and bad messages: each closes the link with its code and changes nothing.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc, link, memoryPair, SyncError, closeCodeFor, SYNC_ERRORS } from '../shared/index.ts'
import type { Channel } from '../shared/channels.ts'
import { RawPeer, until } from './support/raw-peer.ts'
import { VirtualClock, simPair, sortVV, tap } from './support/netsim.ts'
import { decodeMessage, WireState } from '../shared/protocol.ts'
import { decodeUpdate } from '../shared/encoding.ts'

/** A replica's version, as a comparable key. */
function versionKey(d: TextDoc): string {
  return JSON.stringify(sortVV(d.version()))
}

function pair(a: TextDoc, b: TextDoc, opts: Parameters<typeof link>[2] = {}) {
  const [x, y] = memoryPair()
  return [link(a, x, opts), link(b, y, opts)] as const
}

/** A channel that records the close code it was closed with. */
function recordingPair(): [Channel & { code?: number }, Channel] {
  const [x, y] = memoryPair()
  const rec = x as Channel & { code?: number }
  const close = x.close.bind(x)
  rec.close = (code?: number, reason?: string) => {
    rec.code = code
    close(code, reason)
  }
  return [rec, y]
}

test('handshake: each side gets exactly what it lacks; synced resolves on both', async () => {
  const a = new TextDoc('alice')
  const b = new TextDoc('bob')
  a.insert(0, 'common ')
  b.applyUpdate(a.encodeUpdate())
  a.insert(7, 'from a')
  b.insert(0, 'b says: ')
  const [la, lb] = pair(a, b)
  await Promise.all([la.synced, lb.synced])
  assert.is(a.toString(), b.toString())
  assert.ok(a.toString().includes('from a') && a.toString().includes('b says: '))
  // Only the missing events travelled: less than the full history each way.
  assert.ok(la.stats.bytesSent < a.save().length + 40, `${la.stats.bytesSent} bytes sent`)
  la.close()
  await until(() => lb.closed, 1000, 'peer close')
})

test('streaming: a burst of edits travels in a few batches, not one message per event', async () => {
  const a = new TextDoc('alice')
  const b = new TextDoc('bob')
  const [la, lb] = pair(a, b)
  await Promise.all([la.synced, lb.synced])
  const before = la.stats.eventMessagesSent
  for (let i = 0; i < 200; i++) a.insert(a.length, 'x')
  await until(() => b.length === 200, 2000, 'burst to arrive')
  assert.ok(
    la.stats.eventMessagesSent - before <= 3,
    `${la.stats.eventMessagesSent - before} batches`,
  )
  b.insert(0, 'y')
  await until(() => a.toString() === b.toString(), 2000, 'reply')
  la.close()
})

/** Virtual time whose `soon` is a real microtask (as the real clock's): what is due now runs
 * when the current task ends, while virtual time stands still. */
class SoonClock extends VirtualClock {
  soon(fn: () => void): void {
    queueMicrotask(fn)
  }
}

const nextTask = () => new Promise<void>((r) => setImmediate(r))

test('a flush due now goes out when the task ends, without a timer; a windowed one waits', async () => {
  const clock = new SoonClock()
  const [x, y] = simPair(clock, 1)
  const sent: Uint8Array[] = []
  const tapped = tap(x, sent)
  const a = new TextDoc('a')
  const b = new TextDoc('b')
  const la = link(a, tapped, { clock, batchDelayMs: 0, deflate: false })
  link(b, y, { clock, batchDelayMs: 40, maxBatchDelayMs: 40, deflate: false })
  for (let t = 0; t < 100; t++) (clock.advance(1), await nextTask())
  const state = new WireState()
  const events = () =>
    sent
      .map((m) => decodeMessage(m, state))
      .filter((m) => m.type === 'events' && m.updates.length > 0).length
  assert.is(events(), 0)
  sent.length = 0
  // Two edits in one task: nothing is sent inside it, one message right after, no time passed.
  a.insert(0, 'x')
  a.insert(1, 'y')
  assert.is(sent.length, 0)
  await nextTask()
  assert.is(events(), 1)
  const at = clock.now()
  for (let t = 0; t < 5; t++) (clock.advance(1), await nextTask())
  assert.is(b.toString(), 'xy')
  // b's window is 40 ms: once it has not flushed for that long (it acked a's edits) its edit
  // goes out at once, the next one within 40 ms of that flush waits for the timer.
  for (let t = 0; t < 100; t++) (clock.advance(1), await nextTask())
  b.insert(2, 'z')
  for (let t = 0; t < 5; t++) (clock.advance(1), await nextTask())
  assert.is(a.toString(), 'xyz')
  b.insert(3, '!')
  for (let t = 0; t < 30; t++) (clock.advance(1), await nextTask())
  assert.is(a.toString(), 'xyz')
  for (let t = 0; t < 15; t++) (clock.advance(1), await nextTask())
  assert.is(a.toString(), 'xyz!')
  // A flush queued, then the link closed in the same task: nothing goes out.
  sent.length = 0
  a.insert(0, 'w')
  la.close()
  await nextTask()
  assert.is(events(), 0)
  assert.ok(at < clock.now())
})

test('deflate: peers deflate against their dictionaries; a side with deflate false gets none', async () => {
  const run = async (deflate: boolean) => {
    const a = new TextDoc('alice-with-a-long-agent-id')
    const b = new TextDoc('bob-with-a-long-agent-id')
    const [x, y] = memoryPair()
    const la = link(a, x, { batchDelayMs: 1, maxBatchDelayMs: 1 })
    const lb = link(b, y, { batchDelayMs: 1, maxBatchDelayMs: 1, deflate })
    await Promise.all([la.synced, lb.synced])
    const before = la.stats.bytesSent
    for (let i = 0; i < 30; i++) {
      b.insert(0, 'y')
      a.insert(a.length, 'x')
      await until(() => b.length === 2 * (i + 1) && a.length === 2 * (i + 1), 2000, 'edit')
    }
    la.close()
    return la.stats.bytesSent - before
  }
  const deflated = await run(true)
  const plain = await run(false)
  assert.ok(deflated < plain * 0.8, `${deflated} bytes deflated, ${plain} plain`)
})

test('relay: a chain a-b-c carries a edits to c and back (events forwarded on other links)', async () => {
  const a = new TextDoc('a')
  const b = new TextDoc('b')
  const c = new TextDoc('c')
  const l1 = pair(a, b)
  const l2 = pair(b, c)
  a.insert(0, 'hello ')
  c.insert(0, 'world')
  await until(() => a.toString() === c.toString() && a.length === 11, 3000, 'chain convergence')
  assert.is(b.toString(), a.toString())
  for (const l of [...l1, ...l2]) l.close()
})

test('D1: the same events twice (resend, ring loops) are dropped silently', async () => {
  const src = new TextDoc('src')
  src.insert(0, 'abc')
  const doc = new TextDoc('me')
  const [x, y] = memoryPair()
  const l = link(doc, x)
  const raw = new RawPeer(y)
  raw.hello({ src: 3 })
  const errors: SyncError[] = []
  l.on('error', (e) => errors.push(e))
  const u = src.encodeUpdate()
  raw.events(u, { src: 3 })
  raw.events(u, { src: 3 })
  raw.events(u, { src: 3 })
  await until(() => raw.of('ack').length + raw.of('events').length > 0 && doc.length === 3)
  await new Promise((r) => setTimeout(r, 100))
  assert.is(doc.toString(), 'abc')
  assert.equal(errors, [])
  assert.not.ok(l.closed)
  // A ring of three converges with duplicates dropped and no errors.
  const d = [new TextDoc('r0'), new TextDoc('r1'), new TextDoc('r2')]
  const ls = [...pair(d[0]!, d[1]!), ...pair(d[1]!, d[2]!), ...pair(d[2]!, d[0]!)]
  const ringErrors: SyncError[] = []
  for (const x of ls) x.on('error', (e) => ringErrors.push(e))
  d.forEach((doc, i) => doc.insert(0, `<${i}>`))
  await until(
    () => d.every((x) => x.toString() === d[0]!.toString() && x.length === 9),
    3000,
    'ring',
  )
  assert.equal(ringErrors, [])
  for (const x of [...ls, l]) x.close()
})

/** Agent `src` typing `first`, then `then` after it: the two updates, apart. */
function parentAndChild(first: string, then: string) {
  const src = new TextDoc('src')
  src.insert(0, first)
  const parent = src.encodeUpdate()
  const v1 = src.version()
  src.insert(first.length, then)
  return { src, parent, child: src.encodeUpdate(v1) }
}

test('D2: events with missing parents wait, the gap is asked for (NEED), then they apply', async () => {
  const src = new TextDoc('src')
  src.insert(0, 'first ')
  const v1 = src.version()
  const u1 = src.encodeUpdate()
  src.insert(6, 'second')
  const u2 = src.encodeUpdate(v1)
  const doc = new TextDoc('me')
  const [x, y] = memoryPair()
  const l = link(doc, x, { gapTimeoutMs: 50 })
  const raw = new RawPeer(y)
  raw.hello({ src: 12 })
  raw.events(u2, { src: 12 }) // u1 "lost": u2's parents are missing
  await until(() => raw.of('need').length > 0, 2000, 'NEED')
  assert.is(doc.pendingCount, 6)
  assert.is(doc.toString(), '')
  const need = raw.of('need')[0]!
  assert.equal({ ...need.have }, {})
  raw.events(src.encodeUpdate(need.have), { src: 12 })
  await until(() => doc.toString() === 'first second', 2000, 'gap filled')
  assert.is(doc.pendingCount, 0)
  assert.ok(u1.length > 0)
  l.close()
})

test('D2: only the link whose message waits for parents asks its peer for them', async () => {
  const { src, child: orphan } = parentAndChild('a', 'b') // its parent never comes
  const other = new TextDoc('other')
  other.insert(0, 'o')
  const doc = new TextDoc('hub')
  const [a, aPeer] = memoryPair()
  const [b, bPeer] = memoryPair()
  const links = [link(doc, a, { gapTimeoutMs: 30 }), link(doc, b, { gapTimeoutMs: 30 })]
  const sender = new RawPeer(aPeer)
  const bystander = new RawPeer(bPeer)
  try {
    sender.hello({ src: 2 })
    bystander.hello({ other: 1 })
    sender.events(orphan, { src: 2 })
    await until(() => doc.pendingCount === 1, 2000, 'orphan pending')
    bystander.events(other.encodeUpdate(), { other: 1 }) // integrates whole
    await until(() => doc.toString() === 'o', 2000, 'bystander integrated')
    await new Promise((r) => setTimeout(r, 200)) // several gap timeouts
    assert.ok(sender.of('need').length >= 2, `${sender.of('need').length} NEEDs to the sender`)
    assert.is(bystander.of('need').length, 0)
    assert.is(bystander.of('ack').length > 0, true, 'the bystander is acknowledged')
    // The parent arrives (from anyone): the sender's link stops asking.
    bystander.events(src.encodeUpdate(), { other: 1, src: 2 })
    await until(() => doc.pendingCount === 0, 2000, 'gap filled')
    const asked = sender.of('need').length
    await new Promise((r) => setTimeout(r, 150))
    assert.is(sender.of('need').length, asked)
  } finally {
    for (const l of links) l.close()
  }
})

test("D2: events a peer's update released from the pending buffer go back to that peer", async () => {
  // Q holds src:1 without its parent; H sends src:0, which releases it. The entry Q integrates
  // then holds more than H sent: H gets src:1 from Q (it was credited to H before).
  const { parent: first, child: second } = parentAndChild('x', 'y')
  const hub = new TextDoc('hub')
  const q = new TextDoc('q')
  const [hq, qh] = memoryPair()
  const [qr, rq] = memoryPair()
  const [hf, fh] = memoryPair()
  const links = [link(hub, hq), link(q, qh), link(q, qr), link(hub, hf)]
  try {
    await Promise.all(links.slice(0, 2).map((l) => l.synced))
    const raw = new RawPeer(rq)
    raw.hello({})
    raw.events(second, { src: 2 })
    await until(() => q.pendingCount === 1, 2000, 'src:1 waits at q')
    rq.close() // the only other holder of src:1 leaves
    // src:0 reaches the hub from another peer: relayed to q, which acknowledges nothing, so
    // q's link must flush for what it releases of its own accord.
    const feeder = new RawPeer(fh)
    feeder.hello({})
    feeder.events(first, { src: 1 })
    await until(() => q.toString() === 'xy', 2000, 'q integrated both')
    await until(() => hub.toString() === 'xy', 2000, 'the hub got src:1 back from q')
    assert.equal({ ...hub.version() }, { src: 2 })
  } finally {
    for (const l of links) l.close()
  }
})

test('D2: a pending buffer over maxPendingEvents closes the link that overflowed it (PENDING_OVERFLOW), not the next to send', async () => {
  const { child } = parentAndChild('a', 'many events here')
  const doc = new TextDoc('me')
  const [x, y] = recordingPair()
  const l = link(doc, x, { maxPendingEvents: 4 })
  const raw = new RawPeer(y)
  raw.hello({ src: 17 })
  raw.events(child, { src: 17 })
  await until(() => l.closed && raw.closed, 2000, 'close')
  assert.is(x.code, closeCodeFor(SYNC_ERRORS.PENDING_OVERFLOW.code))
  assert.is(raw.of('error')[0]?.code, SYNC_ERRORS.PENDING_OVERFLOW.code)
  assert.is(doc.pendingCount, 16, 'its events still wait')
  // Another peer's edits integrate (the buffer does not grow): that link stays, and is acked.
  const peer = new TextDoc('peer')
  const [p, q] = memoryPair()
  const mine = link(doc, p, { maxPendingEvents: 4 })
  const theirs = link(peer, q)
  await theirs.synced
  peer.insert(0, 'ok')
  await until(() => theirs.ackedVersion().peer === 2, 2000, 'acked')
  assert.not.ok(mine.closed)
  assert.is(doc.toString(), 'ok')
  mine.close()
  theirs.close()
})

test('D3: the same (agent, seq) with different content is rejected; the doc is unchanged', async () => {
  const mine = new TextDoc('dup')
  mine.insert(0, 'a')
  const theirs = new TextDoc('dup')
  theirs.insert(0, 'b')
  const [x, y] = recordingPair()
  const l = link(mine, x)
  const errors: SyncError[] = []
  l.on('error', (e) => errors.push(e))
  const raw = new RawPeer(y)
  raw.hello({})
  raw.events(theirs.encodeUpdate(), { dup: 1 })
  await until(() => l.closed, 2000, 'close')
  assert.is(errors[0]?.codeName, 'BAD_UPDATE')
  assert.match(errors[0]!.message, /conflicts/)
  assert.is(x.code, closeCodeFor(SYNC_ERRORS.BAD_UPDATE.code))
  assert.is(mine.toString(), 'a')
  assert.equal(mine.version(), { dup: 1 })
})

test('D4: parents naming the event itself or a later seq are rejected; a cycle never integrates', async () => {
  const { encodeUpdate } = await import('../shared/encoding.ts')
  const ins = { kind: 0 as const, len: 1, pos: 0, fwd: true, content: 'k' }
  for (const parents of [[['q', 0]], [['q', 5]]] as const) {
    const doc = new TextDoc('me')
    doc.insert(0, 'keep')
    const [x, y] = recordingPair()
    const l = link(doc, x)
    const raw = new RawPeer(y)
    raw.hello({})
    raw.events(encodeUpdate({ spans: [{ agent: 'q', seq: 0, len: 1, parents }], ops: [ins] }), {
      q: 1,
    })
    await until(() => l.closed, 2000, 'close')
    assert.is(x.code, closeCodeFor(SYNC_ERRORS.BAD_UPDATE.code))
    assert.is(doc.toString(), 'keep')
  }
  // A cycle across agents: p:0 <- r:0 <- p:0. Neither can ever integrate: both wait,
  // the gap is asked for, and the bounded buffer closes the link when it overflows.
  const doc = new TextDoc('me')
  const [x, y] = recordingPair()
  const l = link(doc, x, { gapTimeoutMs: 30, maxPendingEvents: 1 })
  const raw = new RawPeer(y)
  raw.hello({})
  const cyc = encodeUpdate({
    spans: [
      { agent: 'p', seq: 0, len: 1, parents: [['r', 0]] },
      { agent: 'r', seq: 0, len: 1, parents: [['p', 0]] },
    ],
    ops: [ins, ins],
  })
  let threw = false
  try {
    new TextDoc('probe').applyUpdate(cyc)
  } catch {
    threw = true
  }
  raw.events(cyc, { p: 1, r: 1 })
  await until(() => l.closed, 2000, 'close')
  assert.is(doc.toString(), '')
  assert.is(
    x.code,
    closeCodeFor(threw ? SYNC_ERRORS.BAD_UPDATE.code : SYNC_ERRORS.PENDING_OVERFLOW.code),
  )
})

test('D5: a version vector claiming unknown agents and huge seqs: no crash, real events still flow', async () => {
  const doc = new TextDoc('me')
  doc.insert(0, 'mine')
  const [x, y] = memoryPair()
  const l = link(doc, x)
  const raw = new RawPeer(y)
  raw.hello({ ghost: Number.MAX_SAFE_INTEGER, other: 1e12 })
  await until(() => raw.of('events').length > 0, 2000, 'events')
  const peer = new TextDoc('peer')
  peer.applyUpdate(raw.of('events')[0]!.updates[0]!)
  assert.is(peer.toString(), 'mine')
  raw.send({ type: 'need', have: Object.assign(Object.create(null), { ghost: 3, me: 0 }) })
  await until(() => raw.of('events').length > 1, 2000, 'reply to NEED')
  assert.not.ok(l.closed)
  assert.is(doc.toString(), 'mine')
  l.close()
})

test('D6: a replica far behind (10,000 events, with concurrent edits of its own) merges on link', async () => {
  const a = new TextDoc('a')
  const b = new TextDoc('b')
  a.insert(0, 'base ')
  b.applyUpdate(a.encodeUpdate())
  for (let i = 0; i < 10_000; i++) a.insert((i * 7) % a.length, 'xyz'[i % 3]!)
  b.insert(0, 'offline ')
  const [la, lb] = pair(a, b)
  await Promise.all([la.synced, lb.synced])
  assert.is(a.toString(), b.toString())
  assert.is(a.length, 5 + 10_000 + 8)
  // The catch-up sent only what was missing: b's 8 events to a, a's 10,000 to b.
  assert.ok(lb.stats.bytesSent < 200, `${lb.stats.bytesSent} bytes from b`)
  la.close()
})

test('D7: a replica reloaded from save() gets a new agent id and keeps syncing', async () => {
  const a = new TextDoc()
  const b = new TextDoc()
  assert.is.not(a.agent, b.agent)
  a.insert(0, 'one ')
  const [l1] = pair(a, b)
  await until(() => b.toString() === 'one ')
  l1.close()
  const a2 = TextDoc.load(a.save())
  assert.is.not(a2.agent, a.agent)
  a2.insert(4, 'two')
  const [l2, l3] = pair(a2, b)
  await Promise.all([l2.synced, l3.synced])
  assert.is(b.toString(), 'one two')
  l2.close()
})

test('bad bytes close the link with BAD_MESSAGE, tell the peer, and change nothing (A6)', async () => {
  const doc = new TextDoc('me')
  doc.insert(0, 'safe')
  for (const bytes of [new Uint8Array([1, 2, 0xff]), new Uint8Array(0), new Uint8Array([7, 1])]) {
    const [x, y] = recordingPair()
    const l = link(doc, x)
    const raw = new RawPeer(y)
    const errors: SyncError[] = []
    l.on('error', (e) => errors.push(e))
    raw.hello({})
    raw.sendBytes(bytes)
    raw.events(new TextDoc('late').encodeUpdate({}), {}) // after the close: ignored
    await until(() => l.closed && raw.closed, 2000, 'close')
    assert.ok(errors[0]!.fatal)
    assert.ok(['BAD_MESSAGE', 'UNSUPPORTED_VERSION'].includes(errors[0]!.codeName))
    assert.is(x.code, closeCodeFor(errors[0]!.code))
    assert.is(raw.of('error')[0]?.code, errors[0]!.code)
  }
  assert.is(doc.toString(), 'safe')
})

test('STATE: events before HELLO, or a second HELLO, close the link', async () => {
  for (const bad of ['early', 'twice'] as const) {
    const [x, y] = recordingPair()
    const l = link(new TextDoc('me'), x)
    const raw = new RawPeer(y)
    if (bad === 'twice') raw.hello({})
    if (bad === 'twice') raw.hello({})
    else raw.events(new TextDoc('e').encodeUpdate({}), {})
    await until(() => l.closed, 2000, 'close')
    assert.is(x.code, closeCodeFor(SYNC_ERRORS.STATE.code))
  }
})

test('TOO_LARGE: a message over maxMessageBytes closes the link', async () => {
  const [x, y] = recordingPair()
  const doc = new TextDoc('me')
  const l = link(doc, x, { maxMessageBytes: 64 })
  const raw = new RawPeer(y)
  raw.hello({})
  const big = new TextDoc('big')
  for (let i = 0; i < 300; i++) big.insert(big.length, String.fromCharCode(97 + ((i * 7919) % 26)))
  raw.events(big.encodeUpdate(), { big: 300 })
  await until(() => l.closed, 2000, 'close')
  assert.is(x.code, closeCodeFor(SYNC_ERRORS.TOO_LARGE.code))
  assert.is(doc.length, 0)
})

test('read-only: the peer edits are refused (READ_ONLY, link stays open), reads still flow (B5)', async () => {
  const server = new TextDoc('server')
  server.insert(0, 'official')
  const client = new TextDoc('client')
  const [x, y] = memoryPair()
  const ls = link(server, x, { readOnly: true })
  const lc = link(client, y)
  const clientErrors: SyncError[] = []
  lc.on('error', (e) => clientErrors.push(e))
  await lc.synced
  assert.is(client.toString(), 'official')
  client.insert(0, 'hack ')
  await new Promise((r) => setTimeout(r, 150))
  assert.is(server.toString(), 'official')
  server.insert(8, '!')
  await until(() => client.toString() === 'hack official!', 2000, 'reads flow')
  assert.not.ok(ls.closed)
  assert.ok(clientErrors.every((e) => e.codeName === 'READ_ONLY'))
  // Our read-only HELLO told the client not to send its edits: so no error either.
  assert.is(clientErrors.length, 0)
  // A raw client that ignores the flag gets READ_ONLY, and nothing is applied.
  const [x2, y2] = memoryPair()
  const ls2 = link(server, x2, { readOnly: true })
  const raw2 = new RawPeer(y2)
  raw2.hello({})
  raw2.events(client.encodeUpdate(server.version()), { ...client.version() })
  await until(() => raw2.of('error').length > 0, 2000, 'READ_ONLY')
  assert.is(raw2.of('error')[0]!.code, SYNC_ERRORS.READ_ONLY.code)
  assert.is(server.toString(), 'official!')
  assert.not.ok(ls2.closed)
  ls.close()
  ls2.close()
})

test('persist: acks wait for it; synced resolves only after; a rejection closes without ack (E1, E4)', async () => {
  const server = new TextDoc('server')
  const stored: Uint8Array[] = []
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const [x, y] = memoryPair()
  link(server, x, {
    persist: async (u) => {
      await gate
      stored.push(u)
    },
  })
  const client = new TextDoc('client')
  client.insert(0, 'durable')
  const lc = link(client, y)
  let synced = false
  lc.synced.then(() => (synced = true))
  await until(() => server.toString() === 'durable', 2000, 'integrated')
  await new Promise((r) => setTimeout(r, 100))
  assert.not.ok(synced, 'synced before persist resolved')
  assert.equal({ ...lc.ackedVersion() }, {})
  release()
  await lc.synced
  assert.is(stored.length, 1)
  assert.equal({ ...lc.ackedVersion() }, { client: 7 })
  // Rejection: no ack, PERSIST_FAILED (retryable), link closed.
  const s2 = new TextDoc('s2')
  const [x2, y2] = recordingPair()
  const ls2 = link(s2, x2, { persist: () => Promise.reject(new Error('disk full')) })
  const c2 = new TextDoc('c2')
  c2.insert(0, 'lost?')
  const lc2 = link(c2, y2)
  const errs: SyncError[] = []
  lc2.on('error', (e) => errs.push(e))
  await until(() => ls2.closed && lc2.closed, 2000, 'close')
  assert.is(x2.code, closeCodeFor(SYNC_ERRORS.PERSIST_FAILED.code))
  assert.is(errs[0]?.codeName, 'PERSIST_FAILED')
  assert.ok(errs[0]!.retryable && errs[0]!.remote)
  assert.equal({ ...lc2.ackedVersion() }, {})
  let rejected = false
  await lc2.synced.catch(() => (rejected = true))
  assert.ok(rejected)
})

test('ackOwnEvents false: merge events of a hub ask no ack; edits of its clients still get theirs', async () => {
  const hub = new TextDoc('hub')
  const docs = [new TextDoc('c1'), new TextDoc('c2')]
  const hubLinks = docs.map((d) => {
    const [x, y] = memoryPair()
    const l = link(hub, x, { ackOwnEvents: false, batchDelayMs: 0 })
    return [l, link(d, y, { batchDelayMs: 0 })] as const
  })
  await Promise.all(hubLinks.flatMap(([h, c]) => [h.synced, c.synced]))
  const [l1, c1] = hubLinks[0]!
  const heard = l1.stats.messagesReceived
  // Concurrent edits of both clients, joined by a merge event of the hub, 5 times over.
  for (let round = 0; round < 5; round++) {
    docs[0]!.insert(0, 'a')
    docs[1]!.insert(0, 'b')
    await until(() => hub.length === 2 * (round + 1), 2000, 'edits at the hub')
    assert.ok(hub.mergeHeads(), 'two heads joined')
    await until(
      () => docs.every((d) => versionKey(d) === versionKey(hub)),
      2000,
      'merge event at the clients',
    )
  }
  await new Promise((r) => setTimeout(r, 50))
  // c1 sent its 5 edits (each acked by the hub) and nothing for the hub's 5 merge events.
  assert.is(l1.stats.messagesReceived - heard, 5)
  assert.equal({ ...c1.ackedVersion() }.c1, 5)
  assert.is(docs[0]!.toString(), hub.toString())
})

test('beforeFlush: called as each flush begins, with the window; what it adds rides in that batch', async () => {
  // A hub joining its heads there: the merge event ends the batch that carries the edits.
  const hub = new TextDoc('hub')
  const [c1, c2] = [new TextDoc('c1'), new TextDoc('c2')]
  const windows: number[] = []
  const beforeFlush = (windowMs: number) => {
    windows.push(windowMs)
    hub.mergeHeads()
  }
  const sent: Uint8Array[] = []
  const [x1, y1] = memoryPair()
  const [x2, y2] = memoryPair()
  const opts = { beforeFlush, batchDelayMs: 5, maxBatchDelayMs: 5, deflate: false }
  const links = [
    link(hub, tap(x1, sent), opts),
    link(hub, x2, opts),
    link(c1, y1, { batchDelayMs: 0 }),
    link(c2, y2, { batchDelayMs: 0 }),
  ]
  await Promise.all(links.map((l) => l.synced))
  // Concurrent edits; the hub's link to c1 relays c2's, and its merge event, in one message.
  sent.length = 0
  c1.insert(0, 'a')
  c2.insert(0, 'b')
  await until(() => versionKey(c1) === versionKey(hub) && hub.length === 2, 2000, 'c1 has all')
  const state = new WireState()
  const batches = sent
    .map((m) => decodeMessage(m, state))
    .filter((m) => m.type === 'events' && m.updates.length > 0)
  assert.is(batches.length, 1, 'one batch to c1')
  assert.equal(Object.keys(c1.version()).sort(), ['c1', 'c2', 'hub'])
  assert.ok(windows.length > 0 && windows.every((w) => w === 5), `windows ${windows}`)
  // c1's next edit is made on the merge event alone.
  const made: Uint8Array[] = []
  c1.on('update', (u: Uint8Array) => void made.push(u))
  c1.insert(0, '!')
  assert.equal(
    decodeUpdate(made[0]!).spans[0]!.parents.map(([a]) => a),
    ['hub'],
  )
  for (const l of links) l.close()
})

test('durableVersion: events the server holds but has not stored are acked once stored', async () => {
  const server = new TextDoc('server')
  const client = new TextDoc('client')
  client.insert(0, 'abc')
  server.applyUpdate(client.encodeUpdate()) // in memory (a persist of another link still running)
  let stored: Record<string, number> = Object.create(null)
  const [x, y] = memoryPair()
  link(server, x, { durableVersion: () => stored, persist: async () => {}, gapTimeoutMs: 40 })
  const lc = link(client, y)
  let synced = false
  lc.synced.then(() => (synced = true))
  await new Promise((r) => setTimeout(r, 100))
  assert.not.ok(synced, 'acked before stored')
  stored = Object.assign(Object.create(null), { client: 3 })
  await lc.synced
  assert.equal({ ...lc.ackedVersion() }, { client: 3 })
  lc.close()
})

test('whenStored: every ack waits for it (HELLO, relayed, new, and after a message that waited)', async () => {
  const server = new TextDoc('server')
  const client = new TextDoc('client')
  client.insert(0, 'abc')
  server.applyUpdate(client.encodeUpdate()) // in memory, another link still storing it
  // Each call waits for `store()`: the storage of what the doc holds at that call.
  let waiting: (() => void)[] = []
  const store = () => {
    for (const r of waiting) r()
    waiting = []
  }
  let calls = 0
  const whenStored = () => {
    calls++
    return new Promise<void>((r) => waiting.push(r))
  }
  const persisted: Uint8Array[] = []
  const [x, y] = memoryPair()
  const ls = link(server, x, {
    whenStored,
    durableVersion: () => ({}), // nothing stored yet
    persist: async (u) => void persisted.push(u),
    gapTimeoutMs: 10_000,
  })
  const lc = link(client, y)
  const settle = () => new Promise((r) => setTimeout(r, 60))
  let synced = false
  lc.synced.then(() => (synced = true))
  await settle()
  assert.is(calls, 1, 'asked at HELLO')
  assert.not.ok(synced, 'acked before stored')
  store()
  await lc.synced
  assert.equal({ ...lc.ackedVersion() }, { client: 3 })
  // A new update is persisted at once; its ack (which claims every earlier event of its agent)
  // waits too.
  client.insert(3, 'd')
  await settle()
  assert.is(persisted.length, 1)
  assert.is(lc.ackedVersion().client, 3, 'not acked before stored')
  store()
  await until(() => lc.ackedVersion().client === 4)
  // One the server got elsewhere first (a relay): nothing to persist, the ack waits.
  const other = new TextDoc('other')
  other.insert(0, 'Z')
  const z = other.encodeUpdate()
  server.applyUpdate(z)
  client.applyUpdate(z)
  await settle()
  assert.is(lc.ackedVersion().other ?? 0, 0, 'not acked before stored')
  store()
  await until(() => lc.ackedVersion().other === 1)
  assert.is(persisted.length, 1, 'nothing new to persist')
  // While another peer's event waits for its parent here, nothing is acked: a relayed event
  // (held here) is not. Once the parent comes, the client's next edit is acked (cumulatively,
  // the relayed message too) only after a wait.
  const carol = new TextDoc('carol')
  carol.insert(0, 'P')
  const parent = carol.encodeUpdate()
  carol.insert(1, 'E')
  server.applyUpdate(carol.encodeUpdate({ carol: 1 }), 'carol link')
  assert.is(server.pendingCount, 1)
  const dan = new TextDoc('dan')
  dan.insert(0, 'X')
  const relayed = dan.encodeUpdate()
  server.applyUpdate(relayed, 'dan link')
  client.applyUpdate(relayed)
  await settle()
  server.applyUpdate(parent, 'carol link')
  assert.is(server.pendingCount, 0)
  const before = calls
  client.insert(0, 'y')
  await until(() => calls > before)
  await settle()
  assert.is(lc.ackedVersion().dan ?? 0, 0, 'the relayed event not acked before stored')
  assert.is(lc.ackedVersion().client, 4)
  store()
  await until(() => lc.ackedVersion().client === 5 && lc.ackedVersion().dan === 1)
  ls.close()
  lc.close()
})

test('persist: what a link integrated is stored even if it closes first (without an ack)', async () => {
  const server = new TextDoc('server')
  const client = new TextDoc('client')
  const gates: (() => void)[] = []
  const persisted: Uint8Array[] = []
  const persist = async (u: Uint8Array) => {
    await new Promise<void>((r) => gates.push(r))
    persisted.push(u)
  }
  const [x, y] = memoryPair()
  const ls = link(server, x, { persist })
  const lc = link(client, y, { batchDelayMs: 0, maxBatchDelayMs: 0 })
  await until(() => lc.peerId !== undefined)
  for (const ch of 'abc') {
    client.insert(client.length, ch)
    await until(() => server.toString().endsWith(ch))
  }
  assert.is(gates.length, 1, 'one stored at a time')
  ls.close()
  for (let i = 0; i < 3; i++) {
    await until(() => gates.length > 0)
    gates.shift()!()
  }
  await until(() => persisted.length === 3)
  assert.is(lc.ackedVersion().client ?? 0, 0, 'nothing acked')
  lc.close()
})

test('persist: the valid updates before a bad one in a message are stored (they stay in the doc)', async () => {
  const server = new TextDoc('server')
  const persisted: Uint8Array[] = []
  const [x, y] = recordingPair()
  const l = link(server, x, { persist: async (u) => void persisted.push(u) })
  const raw = new RawPeer(y)
  raw.hello({})
  const src = new TextDoc('src')
  src.insert(0, 'ok')
  const garbage = new Uint8Array([1, 2, 3, 4, 5])
  raw.send({
    type: 'events',
    updates: [src.encodeUpdate(), garbage],
    ackWanted: true,
    have: Object.assign(Object.create(null), { src: 2 }),
  })
  await until(() => l.closed, 2000, 'close')
  assert.is(x.code, closeCodeFor(SYNC_ERRORS.BAD_UPDATE.code))
  assert.is(server.toString(), 'ok')
  await until(() => persisted.length === 1, 2000, 'the valid update stored')
  assert.equal(raw.of('ack'), [], 'nothing acked')
})

test.run()
