/**
 * Fan-out through one replica's update log (shared/update-log.ts): a hub relays an edit's
 * bytes as they are, one message object for every peer; several edits go out as one update
 * encoded once (a client's own burst too); clients send nothing back for relays they need
 * not acknowledge; their own edits are acknowledged, and what awaits an ack stays bounded;
 * a reader that lags past the log's bound loses its place and the link falls back to a
 * version-vector diff. With aligned windows a hub's links flush at the same moments, on the
 * window's grid, and share each batch's bytes.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc, link, memoryPair, type Link, type LinkOptions } from '../shared/index.ts'
import type { Channel } from '../shared/channels.ts'
import { decodeMessage, WireState, type Message } from '../shared/protocol.ts'
import type { Replica, VersionVector } from '../shared/replica.ts'
import { LogEntry, UpdateLog } from '../shared/update-log.ts'
import { summarizeUpdate } from '../shared/update-summary.ts'
import { RawPeer, until } from './support/raw-peer.ts'
import { VirtualClock, simPair, tap } from './support/netsim.ts'

interface Star {
  hub: TextDoc
  clients: TextDoc[]
  hubSent: Uint8Array[][]
  clientSent: Uint8Array[][]
  links: Link[]
}

async function star(n: number, hubOptions: LinkOptions = {}): Promise<Star> {
  const hub = new TextDoc('hub')
  const s: Star = { hub, clients: [], hubSent: [], clientSent: [], links: [] }
  for (let i = 0; i < n; i++) {
    const [x, y] = memoryPair()
    const hs: Uint8Array[] = []
    const cs: Uint8Array[] = []
    const c = new TextDoc(`c${i}`)
    // A hub's links as the server sets them: nothing deflated per link, either way.
    s.links.push(
      link(hub, tap(x, hs), { batchDelayMs: 5, relayDelayMs: 0, deflate: false, ...hubOptions }),
    )
    s.links.push(link(c, tap(y, cs), { batchDelayMs: 5 }))
    s.clients.push(c)
    s.hubSent.push(hs)
    s.clientSent.push(cs)
  }
  await Promise.all(s.links.map((l) => l.synced))
  return s
}

function decodeAll(msgs: Uint8Array[]): Message[] {
  const st = new WireState()
  return msgs.map((m) => decodeMessage(m, st))
}

test('a hub relays an edit as its bytes, one message object for all peers, and gets no acks back for it', async () => {
  const s = await star(4)
  for (const l of s.hubSent) l.length = 0
  for (const l of s.clientSent) l.length = 0
  const updates: Uint8Array[] = []
  s.clients[0]!.on('update', (u, origin) => void (origin === undefined && updates.push(u)))
  s.clients[0]!.insert(0, 'hello')
  await until(() => s.clients.every((c) => c.toString() === 'hello'), 2000, 'fan-out')
  await new Promise((r) => setTimeout(r, 50))
  // The sender's message carries its edit as the doc emitted it, asking for an ack.
  const fromC0 = decodeAll(s.clientSent[0]!).filter((m) => m.type === 'events')
  assert.is(fromC0.length, 1)
  assert.ok(fromC0[0]!.type === 'events' && fromC0[0].ackWanted)
  const flags = s.clientSent[0]!.filter((m) => m[1] === 2).map((m) => m[2]! & 16)
  assert.equal(flags, [0], 'the hub asked for nothing deflated')
  assert.equal([...(fromC0[0]!.type === 'events' ? fromC0[0].updates[0]! : [])], [...updates[0]!])
  // The hub's relay to the three others: one and the same bytes object.
  const relays = s.hubSent.slice(1).map((l) => l.filter((m) => m[1] === 2))
  assert.equal(
    relays.map((r) => r.length),
    [1, 1, 1],
  )
  assert.ok(relays[1]![0] === relays[0]![0] && relays[2]![0] === relays[0]![0], 'shared bytes')
  const relay = decodeAll(relays[0]!)[0]!
  assert.ok(relay.type === 'events' && !relay.ackWanted)
  // Nothing comes back from the receivers; the sender gets its ack.
  for (const l of s.clientSent.slice(1)) assert.is(l.length, 0, 'no message for a relay')
  await until(() => s.links[1]!.ackedVersion()['c0'] === 5, 2000, 'ack of the own edit')
  for (const l of s.links) l.close()
})

test('edits arriving together are relayed as one update, encoded once for every peer', async () => {
  const s = await star(5)
  for (const l of s.hubSent) l.length = 0
  // Four clients type at once; the fifth only listens.
  for (let i = 0; i < 4; i++) s.clients[i]!.insert(0, `<${i}>`)
  await until(
    () => s.clients.every((c) => c.length === 12 && c.toString() === s.hub.toString()),
    3000,
    'converged',
  )
  const listener = decodeAll(s.hubSent[4]!).filter((m) => m.type === 'events')
  const updates = listener.flatMap((m) => (m.type === 'events' ? m.updates : []))
  const events = updates.reduce((n, u) => n + (summarizeUpdate(u)?.events ?? 0), 0)
  assert.is(events, 12, 'every event reached the listener once')
  assert.ok(listener.length <= 3, `${listener.length} messages to the listener`)
  for (const l of s.links) l.close()
})

test('a lazy update is encoded only when read, then always the same bytes, of just the new events', () => {
  const a = new TextDoc('a')
  a.insert(0, 'hello')
  const hello = a.encodeUpdate()
  const b = new TextDoc('b')
  b.applyUpdate(hello)
  a.insert(5, ' world')
  // Holds what b has ('hello') and what it lacks: b announces only the new events, so it
  // cannot pass these bytes on as they are.
  const both = a.encodeUpdate()
  const lazy: (() => Uint8Array)[] = []
  const eager: Uint8Array[] = []
  b.onLazyUpdate((encode) => lazy.push(encode))
  let encodes = 0
  const spied = b as unknown as { eventsIn: (...args: unknown[]) => unknown }
  const eventsIn = spied.eventsIn
  spied.eventsIn = function (this: unknown, ...args: unknown[]) {
    encodes++
    return eventsIn.apply(this, args)
  }
  b.applyUpdate(both)
  assert.is(encodes, 0, 'nothing encoded at integration')
  b.insert(0, '>') // later events, and another lazy update
  b.on('update', (u) => eager.push(u))
  b.insert(b.length, '!')
  assert.is(encodes, 1, "the eager listener's update is encoded at once")
  const first = lazy[0]!()
  assert.is(encodes, 2, 'the first lazy update, when read')
  assert.is(lazy[0]!(), first, 'once')
  assert.equal({ ...summarizeUpdate(first)!.vv }, { a: 11 })
  assert.is(summarizeUpdate(first)!.events, 6, "just ' world'")
  assert.is(lazy[2]!(), eager[0], 'an update with an eager listener too is encoded once')
  const c = new TextDoc('c')
  c.applyUpdate(hello)
  c.applyUpdate(first)
  c.applyUpdate(lazy[1]!())
  c.applyUpdate(lazy[2]!())
  assert.is(c.toString(), b.toString())
})

test("a server's clients never encode the relays they receive; the hub still relays all", async () => {
  // As the server's links: no tree relay (a link on a tree counts the events of what it
  // receives, from the update's bytes).
  const s = await star(3, { treeRelay: false })
  const read = new Set<unknown>()
  const bytes = Object.getOwnPropertyDescriptor(LogEntry.prototype, 'bytes')!
  const get = bytes.get!
  Object.defineProperty(LogEntry.prototype, 'bytes', {
    ...bytes,
    get(this: LogEntry) {
      read.add(this.origin)
      return get.call(this)
    },
  })
  try {
    for (let round = 0; round < 5; round++) {
      for (const [i, c] of s.clients.entries()) c.insert(round % (c.length + 1), `${i}${round}`)
      await new Promise((r) => setTimeout(r, 3))
    }
    await until(
      () => s.clients.every((c) => c.length === 30 && c.toString() === s.hub.toString()),
      3000,
      'converged',
    )
    const clientLinks = s.links.filter((_, i) => i % 2 === 1)
    const hubLinks = s.links.filter((_, i) => i % 2 === 0)
    assert.ok(
      clientLinks.every((l) => !read.has(l)),
      'no client read the bytes of an update its link brought',
    )
    assert.ok(
      hubLinks.every((l) => read.has(l)),
      'the hub relayed what each client sent',
    )
  } finally {
    Object.defineProperty(LogEntry.prototype, 'bytes', bytes)
    for (const l of s.links) l.close()
  }
})

test('local edits of one window go out as one update; the hub integrates it once', async () => {
  const s = await star(2)
  for (const l of s.clientSent) l.length = 0
  // Received events in the same window must not be echoed back to the hub.
  s.clients[1]!.insert(0, 'other ')
  await until(() => s.clients[0]!.length === 6, 2000, 'relay')
  for (let i = 0; i < 5; i++) s.clients[0]!.insert(s.clients[0]!.length, `${i}`)
  await until(() => s.clients[1]!.toString() === 'other 01234', 2000, 'fan-out')
  const sent = decodeAll(s.clientSent[0]!).filter((m) => m.type === 'events')
  const updates = sent.flatMap((m) => (m.type === 'events' ? m.updates : []))
  assert.is(updates.length, 1, 'one update')
  assert.equal({ ...summarizeUpdate(updates[0]!)!.vv }, { c0: 5 })
  await until(() => s.links[1]!.ackedVersion()['c0'] === 5, 2000, 'acked')
  for (const l of s.links) l.close()
})

test('a peer that never acks costs bounded memory; a late cumulative ack still covers everything', async () => {
  const doc = new TextDoc('me')
  const [x, y] = memoryPair()
  const l = link(doc, x, { batchDelayMs: 0, maxBatchDelayMs: 0 })
  const raw = new RawPeer(y)
  raw.hello({})
  for (let i = 0; i < 400; i++) {
    doc.insert(doc.length, 'x')
    await until(() => raw.of('events').length === i + 1, 2000, `message ${i + 1}`)
  }
  const awaiting = (l as unknown as { awaiting: unknown[] }).awaiting
  assert.ok(awaiting.length <= 256, `${awaiting.length} records`)
  assert.ok(raw.of('events').every((m) => m.ackWanted))
  raw.send({ type: 'ack', ackedMessages: 400 })
  await until(() => l.ackedVersion()['me'] === 400, 2000, 'cumulative ack')
  l.close()
})

test("a link whose place the log dropped diffs version vectors and sends what's missing", async () => {
  // A fake replica: the log sees its 'update's; every reader but one keeps up.
  const handlers: ((u: Uint8Array, o: unknown) => void)[] = []
  const doc: Replica = {
    version: (): VersionVector => ({}),
    encodeUpdate: () => new Uint8Array(0),
    applyUpdate: () => undefined,
    on: (_e, h) => (handlers.push(h), () => undefined),
    pendingCount: 0,
  }
  const log = UpdateLog.of(doc)
  const fast = { cursor: 0, onEntry: (e: LogEntry) => void (fast.cursor = e.pos + 1) }
  const slow = { cursor: 0, onEntry: () => undefined }
  log.attach(fast)
  log.attach(slow)
  const u = new Uint8Array(8)
  for (let i = 0; i < 20_000; i++) for (const h of handlers) h(u, undefined)
  assert.is(log.end, 20_000)
  assert.is(log.since(0), null, 'the slow reader lost its place')
  assert.is(log.since(19_999)!.length, 1)
  // Entries everyone passed are dropped once the lagging reader goes.
  log.detach(slow)
  for (const h of handlers) h(u, undefined)
  assert.equal(log.since(log.end), [])

  // With real docs: a NEED (or a lost place) makes the next flush a full diff, and the peer
  // converges from its announced state.
  const a = new TextDoc('a')
  const b = new TextDoc('b')
  const [x, y] = memoryPair()
  const la = link(a, x, { batchDelayMs: 1 })
  const lb = link(b, y, { batchDelayMs: 1, gapTimeoutMs: 20 })
  await Promise.all([la.synced, lb.synced])
  for (let i = 0; i < 50; i++) a.insert(a.length, 'x')
  await until(() => b.length === 50, 2000, 'stream')
  la.close()
  const c = TextDoc.load(b.save(), 'b2')
  const [x2, y2] = memoryPair()
  const la2 = link(a, x2, { batchDelayMs: 1 })
  const lc = link(c, y2, { batchDelayMs: 1 })
  a.insert(0, 'late ')
  await until(() => c.toString() === a.toString(), 2000, 'full diff after HELLO')
  la2.close()
  lc.close()
  lb.close()
})

test("aligned windows: a hub's links flush on the window's grid, together, the same batch", () => {
  const clock = new VirtualClock()
  const hub = new TextDoc('hub')
  const clients: TextDoc[] = []
  const links: Link[] = []
  const sent: { at: number; bytes: Uint8Array }[][] = []
  for (let i = 0; i < 5; i++) {
    const [x, y] = simPair(clock, 1)
    const out: { at: number; bytes: Uint8Array }[] = []
    const timed: Channel = {
      send: (m) => (out.push({ at: clock.now(), bytes: m }), x.send(m)),
      onMessage: (h) => x.onMessage(h),
      onClose: (h) => x.onClose(h),
      close: (code, reason) => x.close(code, reason),
    }
    const hubOptions = { clock, batchDelayMs: 40, relayDelayMs: 0, deflate: false }
    links.push(link(hub, timed, { ...hubOptions, alignBatches: true }))
    const c = new TextDoc(`c${i}`)
    links.push(link(c, y, { clock, batchDelayMs: 0 }))
    clients.push(c)
    sent.push(out)
  }
  clock.advance(1000)
  const before = sent.map((s) => s.length)
  // Three writers at 1003, 1010 and 1023 ms; their edits reach the hub 1 ms later.
  clock.advance(3)
  clients[0]!.insert(0, 'a')
  clock.advance(7)
  clients[1]!.insert(0, 'b')
  clock.advance(13)
  clients[2]!.insert(0, 'c')
  clock.advance(1000)
  assert.ok(clients.every((c) => c.toString() === hub.toString() && c.length === 3))
  const relays = sent.map((s, i) => {
    const st = new WireState()
    return s
      .map((m) => ({ at: m.at, msg: decodeMessage(m.bytes, st), bytes: m.bytes }))
      .slice(before[i])
      .filter((m) => m.msg.type === 'events' && m.msg.updates.length > 0)
  })
  // The listeners (3 and 4) got all three edits in one message, at the first multiple of 40
  // after the last one arrived: the same bytes (a server's replica memoises the encoding, so
  // there it is one object; test/server-replica-cache.test.ts).
  for (const r of relays.slice(3))
    assert.equal(
      r.map((m) => m.at),
      [1040],
    )
  assert.equal([...relays[3]![0]!.bytes], [...relays[4]![0]!.bytes])
  const updates = relays[3]![0]!.msg.type === 'events' ? relays[3]![0]!.msg.updates : []
  assert.is(updates.length, 1)
  assert.is(summarizeUpdate(updates[0]!)?.events, 3)
  // Every flush of every link was on the grid, the writers' acks too.
  for (const s of sent) for (const m of s) if (m.at > 1000) assert.is(m.at % 40, 0)
  assert.ok(relays[0]!.length > 0, 'the first writer got the edits of the others')
  for (const l of links) l.close()
})

test.run()
