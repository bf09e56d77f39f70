// Integration: hostile transport input (RELIABILITY A1-A3, A5-A11, B3, F1). Every test runs a
// real server on 127.0.0.1:0 and checks the process keeps serving others afterwards.
import { randomBytes } from 'node:crypto'
import { connect as netConnect } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import WebSocket from 'ws'
import { signToken } from '../server/auth.ts'
import { CLOSE } from '../server/close-codes.ts'
import { FINAL_CLOSE_CODES as SERVER_FINAL } from '../server/close-codes.ts'
import {
  FINAL_CLOSE_CODES as CLIENT_FINAL,
  backoffDelay,
  isFinalClose,
} from '../client/connection.ts'
import { PROTOCOL_VERSION, WireState, encodeMessage } from '../shared/protocol.ts'
import { TextDoc } from '../shared/text-doc.ts'
import { FaultyStorage } from './support/server-faulty-storage.ts'
import { SqliteStorage } from '../server/storage.ts'
import {
  client,
  closeOf,
  rawSocket,
  restText,
  startServer,
  waitFor,
  within,
  type TestServer,
} from './support/server-harness.ts'

/** Text that does not compress (updates are deflated). */
function randomText(n: number): string {
  return randomBytes(Math.ceil((n * 3) / 4))
    .toString('base64')
    .slice(0, n)
}

/** The server still syncs a fresh client on a fresh document. */
async function stillServes(ts: TestServer): Promise<void> {
  const a = client(ts.wsUrl, 'health-' + Math.random())
  try {
    await within(a.synced, 5000, 'a fresh client syncs')
    a.doc.insert(0, 'ok')
    await waitFor(() => a.allAcknowledged, 'fresh client acked')
  } finally {
    a.close()
  }
}

/** HELLO for a fresh empty replica, so raw sockets get past the handshake. */
function hello(out: WireState, doc = new TextDoc()): Uint8Array {
  const v = doc.version()
  return encodeMessage({ type: 'hello', readOnly: false, id: 'raw', have: v, durable: v }, out)
}

/** A raw socket on document `docId` past the handshake: its HELLO sent, the document loaded. */
async function linkedSocket(ts: TestServer, docId: string): Promise<WebSocket> {
  const ws = await rawSocket(ts.wsUrl, docId)
  ws.send(hello(new WireState()))
  await waitFor(() => ts.server.stats().documents === 1, 'linked')
  return ws
}

test('close-code tables of client and server agree; backoff is capped and jittered', () => {
  assert.equal([...CLIENT_FINAL].sort(), [...SERVER_FINAL].sort())
  assert.ok(isFinalClose(CLOSE.UNAUTHORIZED))
  assert.ok(isFinalClose(4001)) // BAD_MESSAGE: not retryable
  assert.not.ok(isFinalClose(4009)) // PERSIST_FAILED: retryable
  assert.not.ok(isFinalClose(CLOSE.GOING_AWAY))
  assert.not.ok(isFinalClose(1006))
  assert.is(
    backoffDelay(0, 100, 5000, () => 1),
    100,
  )
  assert.is(
    backoffDelay(3, 100, 5000, () => 0),
    400,
  )
  assert.is(
    backoffDelay(50, 100, 5000, () => 1),
    5000,
  )
  const spread = new Set(Array.from({ length: 20 }, () => Math.round(backoffDelay(4, 100, 5000))))
  assert.ok(spread.size > 10, 'jittered')
})

test('A1: thousands of headers / huge headers are refused; the process is fine', async () => {
  const ts = await startServer()
  try {
    for (const headers of [
      Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n'),
      `X-Big: ${'a'.repeat(100_000)}`,
    ]) {
      const reply = await within(
        new Promise<string>((resolve) => {
          const s = netConnect(ts.server.port, '127.0.0.1', () => {
            s.write(
              `GET /ws/d HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
                headers +
                '\r\n\r\n',
            )
          })
          let data = ''
          s.on('data', (d) => (data += String(d)))
          s.on('error', () => undefined)
          s.on('close', () => resolve(data))
        }),
        5000,
        'raw request',
      )
      assert.match(reply, /^HTTP\/1\.1 4(31|00)/)
    }
    await stillServes(ts)
  } finally {
    await ts.stop()
  }
})

test('A2: a pathological Sec-WebSocket-Protocol / Extensions value is handled fast', async () => {
  const ts = await startServer()
  try {
    const t0 = performance.now()
    const ws = new WebSocket(`${ts.wsUrl}/ws/p`, {
      headers: {
        'Sec-WebSocket-Extensions': 'permessage-deflate;' + ' ;'.repeat(3000),
      },
    })
    ws.on('error', () => undefined)
    await within(
      new Promise((r) => {
        ws.once('open', r)
        ws.once('close', r)
        ws.once('unexpected-response', r)
      }),
      3000,
      'handshake answered',
    )
    ws.terminate()
    assert.ok(performance.now() - t0 < 1000, 'linear time')
    await stillServes(ts)
  } finally {
    await ts.stop()
  }
})

test('A3/A5: a frame over the limit closes 1009; others unaffected; no compression', async () => {
  const ts = await startServer({ limits: { maxMessageBytes: 64 * 1024 } })
  const other = client(ts.wsUrl, 'big')
  try {
    await other.synced
    const ws = await rawSocket(ts.wsUrl, 'big')
    assert.is(ws.extensions, '', 'permessage-deflate is off')
    ws.send(new Uint8Array(64 * 1024 + 1))
    assert.is((await closeOf(ws)).code, CLOSE.MESSAGE_TOO_BIG)
    other.doc.insert(0, 'still fine')
    await waitFor(() => other.allAcknowledged, 'other client unaffected')
    const c = client(ts.wsUrl, 'big', { doc: new TextDoc('big') })
    c.doc.insert(0, randomText(200_000)) // a big paste the client sends as one message
    const why = await within(
      new Promise<string>((r) => c.on('status', (s, reason) => s === 'refused' && r(reason ?? ''))),
      5000,
      'over-limit client refused',
    )
    assert.ok(why.length > 0)
    c.close()
  } finally {
    other.close()
    await ts.stop()
  }
})

test('A6/A11/F1: text, empty and random frames close that link only; state unchanged', async () => {
  const ts = await startServer()
  const other = client(ts.wsUrl, 'g')
  try {
    await other.synced
    other.doc.insert(0, 'intact')
    await waitFor(() => other.allAcknowledged, 'acked')
    const frames: [string, (ws: WebSocket, out: WireState) => void, number[]][] = [
      ['text frame', (ws) => ws.send('hello'), [CLOSE.UNSUPPORTED_DATA]],
      ['empty frame', (ws) => ws.send(new Uint8Array(0)), [4001]],
      ['unknown version', (ws) => ws.send(new Uint8Array([9, 1, 2, 3])), [4002]],
      ['unknown type', (ws) => ws.send(new Uint8Array([PROTOCOL_VERSION, 77])), [4003]],
      [
        'events before hello',
        (ws) => ws.send(new Uint8Array([PROTOCOL_VERSION, 2, 0, 0, 0])),
        [4001, 4006],
      ],
      [
        'garbage update after hello',
        (ws, out) => {
          ws.send(hello(out))
          const v = { evil: 3 }
          ws.send(
            encodeMessage(
              {
                type: 'events',
                have: v,
                updates: [new Uint8Array([80, 89, 1, 1, 0, 255, 255])],
              },
              out,
            ),
          )
        },
        [4005],
      ],
      [
        // A11: the frame after the one that closed the link is ignored (close code of the first).
        'text then garbage in one go',
        (ws) => {
          ws.send('x')
          ws.send(new Uint8Array([PROTOCOL_VERSION, 77]))
        },
        [CLOSE.UNSUPPORTED_DATA],
      ],
    ]
    let seed = 7
    for (let i = 0; i < 20; i++) {
      const bytes = Uint8Array.from(
        { length: 1 + ((i * 7) % 40) },
        () => (seed = (seed * 31 + 11) % 251),
      )
      frames.push([`random ${i}`, (ws) => ws.send(bytes), [4001, 4002, 4003, 4006, 4005]])
    }
    for (const [name, send, codes] of frames) {
      const ws = await rawSocket(ts.wsUrl, 'g')
      send(ws, new WireState())
      const { code } = await closeOf(ws)
      assert.ok(codes.includes(code), `${name}: close code ${code} in ${codes}`)
    }
    assert.is(await restText(ts.httpUrl, 'g'), 'intact')
    other.doc.insert(6, '!')
    await waitFor(() => other.allAcknowledged, 'other link still works')
    assert.is(await restText(ts.httpUrl, 'g'), 'intact!')
  } finally {
    other.close()
    await ts.stop()
  }
})

test('A7: never authenticating, or trickling a frame, is closed at the absolute deadline', async () => {
  const ts = await startServer({ secret: 's', limits: { authTimeoutMs: 300 } })
  try {
    const idle = await rawSocket(ts.wsUrl, 'a')
    const t0 = performance.now()
    assert.is((await closeOf(idle)).code, CLOSE.AUTH_TIMEOUT)
    assert.ok(performance.now() - t0 < 1500)
    // Trickle: a frame header announcing 1000 bytes, then one byte every 50 ms.
    const trickle = await rawSocket(ts.wsUrl, 'a')
    const sock = (trickle as unknown as { _socket: import('node:net').Socket })._socket
    sock.write(Buffer.from([0x82, 0xfe, 0x03, 0xe8, 1, 2, 3, 4]))
    const timer = setInterval(() => sock.writable && sock.write(Buffer.from([0])), 50)
    const closed = await closeOf(trickle, 5000).catch(() => ({ code: -2, reason: '' }))
    clearInterval(timer)
    assert.ok([CLOSE.AUTH_TIMEOUT, 1006].includes(closed.code), `trickle closed (${closed.code})`)
    assert.is(ts.server.stats().documents, 0)
    const token = signToken('s', { doc: 'h', role: 'write' })
    const ok = client(ts.wsUrl, 'h', { token })
    await within(ok.synced, 5000, 'a real client still works')
    ok.close()
  } finally {
    await ts.stop()
  }
})

test('B3: too much before authentication or while loading is refused', async () => {
  const storage = new FaultyStorage(
    await SqliteStorage.open({ dataDir: (await import('./support/server-harness.ts')).tempDir() }),
  )
  storage.faults.loadDelayMs = 300
  const ts = await startServer({
    secret: 's',
    storage,
    limits: { maxPreAuthBytes: 4096, maxPreAuthMessages: 10 },
  })
  try {
    const big = await rawSocket(ts.wsUrl, 'b')
    big.send(new Uint8Array(5000).fill(65))
    assert.is((await closeOf(big)).code, CLOSE.BAD_REQUEST)
    const token = signToken('s', { doc: 'b', role: 'write' })
    const flood = await rawSocket(ts.wsUrl, 'b', `?token=${token}`)
    const out = new WireState()
    flood.send(hello(out))
    for (let i = 0; i < 20; i++) flood.send(new Uint8Array([PROTOCOL_VERSION, 3, 0, 0]))
    assert.is((await closeOf(flood)).code, CLOSE.BAD_REQUEST)
  } finally {
    await ts.stop()
  }
})

/**
 * A raw TCP WebSocket to `/ws/:docId` past the upgrade: `send` writes bytes as they are, and
 * `closeCode` resolves with the code of the server's close frame (null if none came).
 */
async function rawTcp(ts: TestServer, docId: string) {
  const port = Number(new URL(ts.httpUrl).port)
  const socket = netConnect(port, '127.0.0.1')
  let got = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
  const closed = new Promise<void>((r) => socket.on('close', () => r()))
  socket.on('error', () => undefined)
  socket.write(
    `GET /ws/${docId} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  )
  await waitFor(() => got.includes('\r\n\r\n'), 'upgrade answered')
  assert.match(got.toString('latin1'), /^HTTP\/1.1 101/)
  const headEnd = got.indexOf('\r\n\r\n') + 4
  return {
    send: (bytes: Uint8Array) => socket.write(bytes),
    async closeCode(): Promise<number | null> {
      await within(closed, 3000, 'server closed the socket')
      const frames = got.subarray(headEnd)
      for (let at = 0; at + 1 < frames.length;) {
        const len = frames[at + 1]! & 0x7f // server frames here are short and unmasked
        if ((frames[at]! & 0x0f) === 8) return frames.readUInt16BE(at + 2)
        at += 2 + len
      }
      return null
    },
  }
}

/** A masked client frame header (mask 0: the payload goes as it is) declaring `len` bytes. */
function frameHeader(first: number, len: number): Buffer {
  const head = Buffer.alloc(14)
  head[0] = first
  head[1] = 0x80 | 127
  head.writeUInt32BE(Math.floor(len / 2 ** 32), 2)
  head.writeUInt32BE(len >>> 0, 6)
  return head // the last four bytes, the mask, are zero
}

test('B3: a message larger than the pre-auth budget is refused as it starts, unbuffered', async () => {
  const ts = await startServer({ secret: 's', limits: { maxPreAuthBytes: 4096 } })
  try {
    // 10 MB declared, 1 KB sent: closed at once (before, the server buffered up to
    // maxMessageBytes and waited for the rest until the auth deadline).
    const big = await rawTcp(ts, 'p')
    big.send(Buffer.concat([frameHeader(0x82, 10_000_000), Buffer.alloc(1000, 65)]))
    assert.is(await big.closeCode(), CLOSE.BAD_REQUEST)
    // Fragments, each small, adding up past the budget.
    const frag = await rawTcp(ts, 'p')
    frag.send(Buffer.concat([frameHeader(0x02, 3000), Buffer.alloc(3000, 65)]))
    frag.send(Buffer.concat([frameHeader(0x00, 3000), Buffer.alloc(3000, 65)]))
    assert.is(await frag.closeCode(), CLOSE.BAD_REQUEST)
    // Once linked, the message size limit is maxMessageBytes again.
    const token = signToken('s', { doc: 'p', role: 'write' })
    const c = client(ts.wsUrl, 'p', { token })
    await within(c.synced, 5000, 'synced')
    c.doc.insert(0, randomText(20_000))
    await waitFor(() => c.allAcknowledged, 'a 20k-character edit after auth is taken')
    c.close()
  } finally {
    await ts.stop()
  }
})

test('A8: a half-open peer (no pongs) is terminated by the heartbeat', async () => {
  const ts = await startServer({ limits: { heartbeatMs: 100 } })
  try {
    const ws = await linkedSocket(ts, 'hb')
    const sock = (ws as unknown as { _socket: import('node:net').Socket })._socket
    sock.pause() // reads nothing: pings go unanswered, like a vanished peer
    await waitFor(() => ts.server.stats().connections === 0, 'terminated', 3000)
    ws.terminate()
  } finally {
    await ts.stop()
  }
})

test('A8: an idle peer that answers pings outlives many heartbeats', async () => {
  const ts = await startServer({ limits: { heartbeatMs: 50 } })
  try {
    const ws = await linkedSocket(ts, 'idle')
    let pings = 0
    ws.on('ping', () => pings++)
    // Sends nothing after its HELLO; ws answers each ping with a pong by itself.
    await waitFor(() => pings >= 10, 'ten pings', 3000)
    assert.is(ts.server.stats().connections, 1)
    assert.is(ws.readyState, ws.OPEN)
    ws.close()
  } finally {
    await ts.stop()
  }
})

test("A8: the server answers a peer's pings with its data, before and after the link", async () => {
  const ts = await startServer({ secret: 's' })
  try {
    const ws = await rawSocket(ts.wsUrl, 'p')
    const pongs: string[] = []
    ws.on('pong', (data: Buffer) => pongs.push(String(data)))
    ws.ping('before auth')
    await waitFor(() => pongs.length === 1, 'pong before auth')
    ws.send(signToken('s', { doc: 'p', role: 'read' }))
    ws.send(hello(new WireState()))
    await waitFor(() => ws.received.length > 0, "the server's HELLO: linked")
    for (let i = 0; i < 3; i++) ws.ping(`beat ${i}`)
    await waitFor(() => pongs.length === 4, 'pongs after the link')
    assert.equal(pongs, ['before auth', 'beat 0', 'beat 1', 'beat 2'])
    ws.close()
  } finally {
    await ts.stop()
  }
})

test('A9: a slow reader is dropped at the send-buffer cap; the writer is unaffected', async () => {
  const ts = await startServer({
    limits: { maxSendBufferBytes: 256 * 1024, eventBurst: 1e8, eventsPerSecond: 1e8 },
  })
  const writer = client(ts.wsUrl, 'slow', { doc: new TextDoc('writer') })
  try {
    await writer.synced
    const reader = await rawSocket(ts.wsUrl, 'slow')
    reader.send(hello(new WireState()))
    await waitFor(() => ts.server.stats().connections === 2, 'reader linked')
    const sock = (reader as unknown as { _socket: import('node:net').Socket })._socket
    sock.pause()
    // The paused socket's kernel buffers take ~4 MB (loopback autotuning) before anything
    // queues in the server: send incompressible 1 MB pastes until the cap trips.
    for (let i = 0; i < 20 && ts.server.stats().connections === 2; i++) {
      writer.doc.insert(writer.doc.length, randomBytes(750_000).toString('base64'))
      await waitFor(() => writer.allAcknowledged, 'paste acked', 10_000)
    }
    await waitFor(() => ts.server.stats().connections === 1, 'slow reader dropped', 5000)
    await waitFor(() => writer.allAcknowledged, 'writer acked', 10_000)
    assert.ok(
      ts.logs.some((l) => l.reason === 'send buffer full'),
      'logged as slow reader',
    )
    reader.terminate()
  } finally {
    writer.close()
    await ts.stop()
  }
})

test('A10: connections per address are capped (HTTP 429); freed on close', async () => {
  const ts = await startServer({ limits: { maxConnectionsPerIp: 3 } })
  try {
    const open = await Promise.all([1, 2, 3].map(() => rawSocket(ts.wsUrl, 'ip')))
    const status = await within(
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`${ts.wsUrl}/ws/ip`)
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
        ws.on('error', () => undefined)
      }),
      3000,
      'fourth refused',
    )
    assert.is(status, 429)
    open[0]!.close()
    await closeOf(open[0]!)
    await new Promise((r) => setTimeout(r, 50))
    const again = await rawSocket(ts.wsUrl, 'ip')
    again.close()
    for (const w of open) w.close()
  } finally {
    await ts.stop()
  }
})

test('A10: new connections per address are rate-limited (HTTP 429), then allowed again', async () => {
  const ts = await startServer({
    limits: { connectionsPerIpPerSecond: 2, connectionBurstPerIp: 3 },
  })
  const statusOf = () =>
    within(
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`${ts.wsUrl}/ws/rate`)
        ws.on('open', () => {
          ws.close()
          resolve(101)
        })
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
        ws.on('error', () => undefined)
      }),
      3000,
      'upgrade answered',
    )
  try {
    // A connect/close loop: the burst passes, then the rate refuses though none is open.
    assert.equal([await statusOf(), await statusOf(), await statusOf()], [101, 101, 101])
    assert.is(await statusOf(), 429)
    await new Promise((r) => setTimeout(r, 600)) // one token back at 2 per second
    assert.is(await statusOf(), 101)
    const metrics = await (await fetch(`${ts.httpUrl}/metrics`)).text()
    assert.match(metrics, /refusals[^\n]*reason="connection-rate-per-ip"[^\n]* 1\n/)
  } finally {
    await ts.stop()
  }
})

test('A10: a client refused for the connection rate retries with backoff and gets in', async () => {
  const ts = await startServer({
    limits: { connectionsPerIpPerSecond: 0.5, connectionBurstPerIp: 1 },
  })
  try {
    const first = client(ts.wsUrl, 'storm')
    first.doc.insert(0, 'before the storm')
    await within(first.synced, 3000, 'first client synced')
    // The burst is spent: the next upgrades get 429 until a token refills (2 s); the client
    // keeps retrying with its backoff (20-200 ms here) and gets in then.
    const second = client(ts.wsUrl, 'storm')
    await within(second.synced, 6000, 'second client synced after retrying')
    await waitFor(() => second.doc.toString() === 'before the storm', 'second has the text')
    const metrics = await (await fetch(`${ts.httpUrl}/metrics`)).text()
    const refused = /refusals_total\{reason="connection-rate-per-ip"\} (\d+)/.exec(metrics)
    assert.ok(refused !== null && Number(refused[1]) >= 2, `refused and retried: ${refused?.[1]}`)
    first.close()
    second.close()
  } finally {
    await ts.stop()
  }
})

test.run()
