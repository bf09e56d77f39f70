// The client's offline switch (`connection.setOnline`) against a real server on port 0: while
// cut, status is `offline` and nothing reconnects; edits on both sides meet on return; events
// not yet acknowledged when the link is cut are kept and stored after; and the return costs only
// what is missing (bytes on the wire counted by a WebSocket wrapper), not the document. A dead
// link (a partition that closes nothing) is replaced once the server goes silent; a live one
// (idle, slow to store, its client's loop held) is not.
import { createServer as createNetServer, connect as netConnect } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import WebSocket from 'ws'
import { TextDoc } from '../shared/text-doc.ts'
import type { ConnectionStatus } from '../client/connection.ts'
import { SqliteStorage } from '../server/storage.ts'
import { FaultyStorage } from './support/server-faulty-storage.ts'
import {
  client,
  restText,
  startServer,
  tempDir,
  waitFor,
  within,
} from './support/server-harness.ts'

/** `ws` with counters of the bytes sent and received by every socket it makes. */
function countingWebSocket() {
  const totals = { sent: 0, received: 0, sockets: 0 }
  class Counting extends WebSocket {
    constructor(url: string) {
      super(url)
      totals.sockets++
      // fromWebSocket sets binaryType 'arraybuffer'
      this.on('message', (m: ArrayBuffer | Buffer) => (totals.received += m.byteLength))
    }
    override send(data: Uint8Array, ...rest: unknown[]): void {
      totals.sent += data.length
      ;(super.send as (...a: unknown[]) => void)(data, ...rest)
    }
  }
  return { Counting, totals }
}

async function until(pred: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

test('offline: no reconnect while cut; edits on both sides converge on return', async () => {
  const ts = await startServer()
  const a = client(ts.wsUrl, 'offline-1', { doc: new TextDoc('ann') })
  const b = client(ts.wsUrl, 'offline-1', { doc: new TextDoc('bob') })
  try {
    await within(Promise.all([a.synced, b.synced]), 5000, 'synced')
    a.doc.insert(0, 'shared start. ')
    await waitFor(() => b.doc.toString() === 'shared start. ', 'b sees a')
    const statuses: ConnectionStatus[] = []
    a.on('status', (s) => statuses.push(s))
    a.setOnline(false)
    assert.is(a.online, false)
    assert.is(a.status, 'offline')
    a.doc.insert(a.doc.length, 'ann offline.')
    b.doc.insert(0, 'bob online. ')
    await waitFor(() => b.allAcknowledged, 'b stored')
    // Well past the test backoff (20-200 ms): a cut link must not come back by itself.
    await new Promise((r) => setTimeout(r, 400))
    assert.equal(statuses, ['offline'])
    assert.is(a.doc.toString(), 'shared start. ann offline.')
    assert.is(await restText(ts.httpUrl, 'offline-1'), 'bob online. shared start. ')
    a.setOnline(true)
    assert.is(a.online, true)
    await waitFor(() => a.status === 'synced' && a.allAcknowledged, 'a back and stored')
    const expected = 'bob online. shared start. ann offline.'
    await waitFor(() => a.doc.toString() === expected && b.doc.toString() === expected, 'equal')
    await until(async () => (await restText(ts.httpUrl, 'offline-1')) === expected, 'server')
    assert.equal(statuses.slice(0, 2), ['offline', 'connecting'])
    assert.is(statuses.at(-1), 'synced')
  } finally {
    a.close()
    b.close()
    await ts.stop()
  }
})

test('offline: events cut before their acknowledgement are kept and stored on return', async () => {
  const ts = await startServer()
  const a = client(ts.wsUrl, 'offline-2', { doc: new TextDoc('ann') })
  try {
    await within(a.synced, 5000, 'synced')
    // Cut in the same turn as the edit: the batch (10 ms delay) never leaves.
    a.doc.insert(0, 'typed just before the cut')
    a.setOnline(false)
    assert.is(a.allAcknowledged, false)
    await new Promise((r) => setTimeout(r, 100))
    assert.is(await restText(ts.httpUrl, 'offline-2'), '')
    a.setOnline(true)
    await waitFor(() => a.status === 'synced' && a.allAcknowledged, 'acknowledged after return')
    assert.is(await restText(ts.httpUrl, 'offline-2'), 'typed just before the cut')
  } finally {
    a.close()
    await ts.stop()
  }
})

test('offline: the return sends and receives only what is missing, not the document', async () => {
  const ts = await startServer()
  const { Counting, totals } = countingWebSocket()
  const a = client(ts.wsUrl, 'offline-3', { doc: new TextDoc('ann'), WebSocket: Counting })
  const b = client(ts.wsUrl, 'offline-3', { doc: new TextDoc('bob') })
  try {
    await within(Promise.all([a.synced, b.synced]), 5000, 'synced')
    // 200,000 characters of varied text, so deflate cannot make the whole document tiny.
    let seed = 7
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % 26
    const big = Array.from({ length: 200_000 }, () => String.fromCharCode(97 + rnd())).join('')
    a.doc.insert(0, big)
    await waitFor(() => a.allAcknowledged && b.doc.length === big.length, 'big doc everywhere')
    a.setOnline(false)
    a.doc.insert(5, 'ANN')
    b.doc.insert(0, 'BOB')
    await waitFor(() => b.allAcknowledged, 'b stored')
    const before = { ...totals }
    a.setOnline(true)
    await waitFor(() => a.status === 'synced' && a.allAcknowledged, 'a back and stored')
    await waitFor(() => a.doc.toString() === b.doc.toString(), 'equal')
    const sent = totals.sent - before.sent
    const received = totals.received - before.received
    assert.is(totals.sockets, before.sockets + 1)
    console.log(`  offline return: ${sent} bytes sent, ${received} received (doc 200,006 chars)`)
    assert.ok(sent < 2000, `sent ${sent} bytes on return`)
    assert.ok(received < 2000, `received ${received} bytes on return`)
    assert.is(a.doc.toString(), 'BOB' + big.slice(0, 5) + 'ANN' + big.slice(5))
  } finally {
    a.close()
    b.close()
    await ts.stop()
  }
})

test('offline: cut while connecting, repeated calls, and no effect after close', async () => {
  const ts = await startServer()
  const a = client(ts.wsUrl, 'offline-4', { doc: new TextDoc('ann') })
  try {
    assert.is(a.status, 'connecting')
    a.setOnline(false) // before the socket opened
    a.setOnline(false)
    assert.is(a.status, 'offline')
    a.doc.insert(0, 'x')
    await new Promise((r) => setTimeout(r, 200))
    assert.is(a.status, 'offline')
    a.setOnline(true)
    a.setOnline(true)
    await within(a.synced, 5000, 'synced after return')
    await waitFor(() => a.allAcknowledged, 'stored')
    assert.is(await restText(ts.httpUrl, 'offline-4'), 'x')
    a.close()
    a.setOnline(true)
    await new Promise((r) => setTimeout(r, 100))
    assert.is(a.status, 'offline')
  } finally {
    a.close()
    await ts.stop()
  }
})

/**
 * A TCP proxy on 127.0.0.1 to `port`; `blackhole()` stops passing bytes either way while
 * closing nothing (a partition, a sleeping laptop); connections made after it pass again.
 */
async function proxyTo(port: number) {
  let cut: Set<Socket> | null = null
  const pairs: Socket[] = []
  const proxy = createNetServer((down) => {
    const up = netConnect(port, '127.0.0.1')
    const dead = new Set<Socket>()
    pairs.push(down, up)
    for (const [from, to] of [
      [down, up],
      [up, down],
    ] as const) {
      from.on('data', (d) => {
        if (!dead.has(from)) to.write(d)
      })
      from.on('close', () => {
        if (!dead.has(from)) to.destroy()
      })
      from.on('error', () => undefined)
    }
    cut = dead
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
  return {
    url: `ws://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    /** The newest connection's bytes go nowhere from now on. */
    blackhole() {
      for (const s of pairs.slice(-2)) cut!.add(s)
    },
    close() {
      for (const s of pairs) s.destroy()
      proxy.close()
    },
  }
}

test('a dead link (partition, nothing closed) is replaced; edits made on it are stored', async () => {
  const ts = await startServer({ limits: { heartbeatMs: 200 } })
  const proxy = await proxyTo(Number(new URL(ts.httpUrl).port))
  const a = client(ts.wsUrl.replace(/ws:\/\/[^/]+/, proxy.url), 'dead-link', {
    doc: new TextDoc('ann'),
    silenceMs: 800,
  })
  let acks = 0
  a.on('ack', () => acks++)
  const statuses: string[] = []
  a.on('status', (st, why) => statuses.push(why === undefined ? st : `${st}(${why})`))
  try {
    await within(a.synced, 5000, 'synced through the proxy')
    proxy.blackhole()
    a.doc.insert(0, 'typed during the partition')
    await waitFor(() => a.status === 'offline', 'dead link noticed', 5000)
    assert.match(statuses.join(), /offline\(nothing from the server in \d+ s\)/)
    const before = acks
    await waitFor(() => a.allAcknowledged, 'resent on a new link and stored', 5000)
    assert.is(await restText(ts.httpUrl, 'dead-link'), 'typed during the partition')
    await waitFor(() => a.status === 'synced', 'synced again')
    assert.ok(acks > before, 'ack event for what the new link acknowledged')
  } finally {
    a.close()
    proxy.close()
    await ts.stop()
  }
})

test('a live link is not replaced: idle, slow to store, or its client loop held', async () => {
  const dataDir = tempDir()
  const storage = new FaultyStorage(await SqliteStorage.open({ dataDir }))
  // The server says it is alive every 100 ms; the client allows 500 ms of silence.
  const ts = await startServer({ storage, dataDir, limits: { heartbeatMs: 100 } })
  const a = client(ts.wsUrl, 'live-link', { doc: new TextDoc('ann'), silenceMs: 500 })
  const statuses: ConnectionStatus[] = []
  a.on('status', (st) => statuses.push(st))
  try {
    await within(a.synced, 5000, 'synced')
    await new Promise((r) => setTimeout(r, 1200)) // idle: the heartbeat's keepalives come
    storage.faults.appendDelayMs = 1500 // an acknowledgement three times the silence away
    a.doc.insert(0, 'slowly stored ')
    await waitFor(() => a.allAcknowledged, 'acked', 5000)
    storage.faults.appendDelayMs = 0
    const held = performance.now() + 1200 // a long task on the client
    while (performance.now() < held);
    a.doc.insert(a.doc.length, 'after a long task')
    await waitFor(() => a.allAcknowledged, 'acked after the long task')
    assert.equal(statuses, ['connected', 'synced'])
  } finally {
    a.close()
    await ts.stop()
  }
})

test('close() before the first sync rejects synced', async () => {
  const ts = await startServer()
  const a = client(ts.wsUrl, 'closed-early')
  try {
    a.close()
    const outcome = await within(
      a.synced.then(
        () => 'resolved',
        (e: Error) => e.message,
      ),
      2000,
      'synced settles',
    )
    assert.is(outcome, 'connection closed before it synced')
    assert.throws(() => client(ts.wsUrl, 'x', { silenceMs: 0 }), /silenceMs/)
  } finally {
    await ts.stop()
  }
})

test.run()
