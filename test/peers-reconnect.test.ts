/**
 * listenPeers / connectPeer in one process over ws on 127.0.0.1: tokens, reconnect
 * with backoff while the listener is down or restarting (catch-up only), and no
 * retry loop after a non-retryable protocol error.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/index.ts'
import { listenPeers, connectPeer } from '../client/index.ts'
import { until } from './support/raw-peer.ts'

test('two docs link through listenPeers/connectPeer and stay in step', async () => {
  const a = new TextDoc('a')
  const b = new TextDoc('b')
  a.insert(0, 'A')
  const server = await listenPeers({ port: 0, host: '127.0.0.1', doc: a })
  const conn = connectPeer({ url: `ws://127.0.0.1:${server.port}`, doc: b })
  await conn.synced
  assert.is(b.toString(), 'A')
  b.insert(1, 'B')
  await until(() => a.toString() === 'AB', 3000, 'b to a')
  conn.close()
  await server.close()
})

test('token: a wrong token is refused, and retried with growing backoff; the right one works', async () => {
  const doc = new TextDoc('s')
  doc.insert(0, 'secret')
  const server = await listenPeers({ port: 0, host: '127.0.0.1', doc, token: 'tok-123' })
  const intruder = new TextDoc('i')
  const bad = connectPeer({
    url: `ws://127.0.0.1:${server.port}`,
    doc: intruder,
    token: 'nope',
    minDelayMs: 20,
    maxDelayMs: 80,
  })
  const t0 = Date.now()
  await until(() => bad.attempts >= 3, 5000, 'retries after refusal')
  const elapsed = Date.now() - t0
  assert.is(intruder.toString(), '')
  // Backoff: at least ~10 ms (half of 20) then ~20 ms between the first attempts, never a hot loop.
  assert.ok(elapsed >= 25, `3 attempts after ${elapsed} ms`)
  bad.close()
  const ok = connectPeer({
    url: `ws://127.0.0.1:${server.port}`,
    doc: new TextDoc('g'),
    token: 'tok-123',
  })
  await ok.synced
  ok.close()
  await server.close()
})

test('connectPeer waits for a listener that is down, and resyncs after it restarts', async () => {
  const hub = new TextDoc('hub')
  const first = await listenPeers({ port: 0, host: '127.0.0.1', doc: hub })
  const port = first.port
  await first.close() // nothing listens on `port` now
  const client = new TextDoc('client')
  client.insert(0, 'offline edit. ')
  const conn = connectPeer({
    url: `ws://127.0.0.1:${port}`,
    doc: client,
    minDelayMs: 20,
    maxDelayMs: 100,
  })
  await until(() => conn.attempts >= 2, 5000, 'a retry while the listener is down')
  let seed = 7
  const bulk = Array.from({ length: 2000 }, () => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return 'abcdefghijklmnopqrstuvwxyz'[seed % 26]
  }).join('')
  hub.insert(0, bulk)
  const second = await listenPeers({ port, host: '127.0.0.1', doc: hub })
  await conn.synced
  await until(() => hub.toString() === client.toString() && hub.length === 2014, 3000, 'converge')
  // Restart again with edits on both sides while apart: only the missing events travel.
  const bytesBefore = hub.encodeUpdate().length
  await second.close()
  client.insert(0, 'c2 ')
  hub.insert(0, 'h2 ')
  let received = 0
  const third = await listenPeers({
    port,
    host: '127.0.0.1',
    doc: hub,
    onLink: (l) => l.on('close', () => (received += l.stats.bytesReceived)),
  })
  await until(() => hub.toString() === client.toString() && hub.length === 2020, 5000, 'reconverge')
  for (const l of third.links) received += l.stats.bytesReceived
  assert.ok(
    received < bytesBefore / 4,
    `${received} bytes received at the reconnect vs ${bytesBefore} for everything`,
  )
  conn.close()
  await third.close()
})

test('a non-retryable protocol error stops reconnecting', async () => {
  const hub = new TextDoc('hub')
  const server = await listenPeers({
    port: 0,
    host: '127.0.0.1',
    doc: hub,
    link: { maxMessageBytes: 40 },
  })
  const big = new TextDoc('big')
  for (let i = 0; i < 200; i++) big.insert(i, String.fromCharCode(65 + ((i * 37) % 58)))
  const conn = connectPeer({ url: `ws://127.0.0.1:${server.port}`, doc: big, minDelayMs: 20 })
  await until(() => conn.fatalError !== null, 3000, 'fatal error')
  assert.is(conn.fatalError!.codeName, 'TOO_LARGE')
  const attempts = conn.attempts
  await new Promise((r) => setTimeout(r, 200))
  assert.is(conn.attempts, attempts, 'no retry loop')
  assert.is(hub.length, 0)
  conn.close()
  await server.close()
})

test.run()
