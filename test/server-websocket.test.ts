// The server's WebSocket (server/websocket.ts) on its own: an http server on 127.0.0.1:0 whose
// upgrades it accepts, echoing every message back. Interop with the `ws` client (sizes at each
// length encoding, fragments, ping, the closing handshake), and raw frames that break RFC 6455.
import { createServer, type Server } from 'node:http'
import { connect as netConnect, type Socket } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import WebSocket from 'ws'
import { acceptWebSocket, type HubSocket, type HubSocketHandler } from '../server/websocket.ts'
import { within } from './support/server-harness.ts'

const MAX_PAYLOAD = 256 * 1024

interface EchoServer {
  readonly port: number
  readonly sockets: HubSocket[]
  readonly errors: string[]
  readonly closed: () => number
  /** TCP connections the server holds open (upgraded or not). */
  connections(): Promise<number>
  stop(): Promise<void>
}

/** An http server whose WebSockets echo every message (binary as binary, text as text). */
async function echoServer(): Promise<EchoServer> {
  const sockets: HubSocket[] = []
  const errors: string[] = []
  let closed = 0
  const http: Server = createServer((_req, res) => res.writeHead(404).end())
  http.on('upgrade', (req, socket, head) => {
    const ws = acceptWebSocket(req, socket, head, MAX_PAYLOAD)
    if (ws === null) return
    sockets.push(ws)
    const handler: HubSocketHandler = {
      onFrame: (data, isBinary) => {
        if (isBinary) ws.send(data)
        else ws.send(Buffer.concat([Buffer.from('text:'), data]))
      },
      onPing: (data) => ws.pong(data),
      onSocketError: (err) => errors.push(err.message),
      onSocketClose: () => closed++,
    }
    ws.handler = handler
  })
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  return {
    port: (http.address() as { port: number }).port,
    sockets,
    errors,
    closed: () => closed,
    connections: () => new Promise((r, j) => http.getConnections((e, n) => (e ? j(e) : r(n)))),
    async stop() {
      for (const s of sockets) s.terminate()
      await new Promise((r) => http.close(r))
    },
  }
}

function wsClient(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
  return within(
    new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws))
      ws.once('error', reject)
    }),
    3000,
    'client open',
  )
}

/** Runs `body` with an echo server and a `ws` client connected to it, then closes both. */
async function withClient(body: (srv: EchoServer, ws: WebSocket) => Promise<void>): Promise<void> {
  const srv = await echoServer()
  const ws = await wsClient(srv.port)
  try {
    await body(srv, ws)
  } finally {
    ws.terminate()
    await srv.stop()
  }
}

function nextMessage(ws: WebSocket): Promise<Buffer> {
  return within(
    new Promise((r) => ws.once('message', (d) => r(d as Buffer))),
    3000,
    'echo received',
  )
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return within(
    new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: String(reason) }))),
    4000,
    'close',
  )
}

/** The RFC 6455 example key (section 1.3) and version: a valid upgrade's own headers. */
const VALID_KEY = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13'

/** An upgrade request with `headers` (its key and version lines) over HTTP/`version`. */
function upgradeRequest(headers = VALID_KEY, version = '1.1'): string {
  return (
    `GET / HTTP/${version}\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `${headers}\r\n\r\n`
  )
}

/** Everything the server answers to `request` on a new connection, once it closes. */
function replyTo(port: number, request: string): Promise<string> {
  return within(
    new Promise<string>((resolve) => {
      const s = netConnect(port, '127.0.0.1', () => s.write(request))
      let data = ''
      s.on('data', (d) => (data += String(d)))
      s.on('close', () => resolve(data))
    }),
    3000,
    'answered and closed',
  )
}

/** Messages 0, 1, ... n - 1 (one byte each) as masked binary frames in one buffer. */
function numberedFrames(n: number): Buffer {
  return Buffer.concat(Array.from({ length: n }, (_, i) => frame(0x82, Buffer.from([i]))))
}

/** A raw TCP socket past the opening handshake, and what the server sent after its 101. */
async function rawUpgrade(port: number): Promise<{ socket: Socket; frames: () => Buffer }> {
  const socket = netConnect(port, '127.0.0.1')
  socket.setNoDelay(true)
  let received = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])))
  socket.on('error', () => undefined)
  socket.write(upgradeRequest())
  await waitUntil(() => received.includes('\r\n\r\n'), 'handshake answered')
  const text = received.toString('latin1')
  assert.match(text, /^HTTP\/1\.1 101 /)
  // The RFC 6455 example key and its accept value (section 1.3).
  assert.match(text, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/)
  const start = received.indexOf('\r\n\r\n') + 4
  return { socket, frames: () => received.subarray(start) }
}

async function waitUntil(pred: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = performance.now() + ms
  while (!pred()) {
    if (performance.now() > end) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** A masked client frame. */
function frame(first: number, payload: Uint8Array, opts: { masked?: boolean; len?: number } = {}) {
  const n = opts.len ?? payload.length
  const head = n < 126 ? [n] : n < 65536 ? [126, n >> 8, n & 255] : [127, 0, 0, 0, 0, 0, 0, 0, 0]
  if (n >= 65536) {
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(BigInt(n))
    head.splice(1, 8, ...b)
  }
  const masked = opts.masked !== false
  if (masked) head[0]! |= 0x80
  const mask = [0x12, 0x34, 0x56, 0x78]
  const body = Buffer.from(payload.map((b, i) => (masked ? b ^ mask[i % 4]! : b)))
  return Buffer.concat([Buffer.from([first, ...head]), Buffer.from(masked ? mask : []), body])
}

/** The close code of the server's close frame in `bytes` (its first frame), or null. */
function closeCode(bytes: Buffer): number | null {
  for (let pos = 0; pos + 2 <= bytes.length;) {
    const len = bytes[pos + 1]! & 0x7f
    if (len >= 126) return null // the tests' server frames are short
    if (bytes[pos] === 0x88) return len >= 2 ? bytes.readUInt16BE(pos + 2) : 1005
    pos += 2 + len
  }
  return null
}

test('messages of every length encoding echo back intact, text apart from binary', () =>
  withClient(async (_srv, ws) => {
    for (const n of [0, 1, 125, 126, 127, 65535, 65536, 200_000]) {
      const data = Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + n) & 255))
      const echoed = nextMessage(ws)
      ws.send(data)
      assert.ok((await echoed).equals(data), `${n} bytes`)
    }
    const echoed = nextMessage(ws)
    ws.send('héllo')
    assert.is(String(await echoed), 'text:héllo')
  }))

test('one message object sent to many sockets (framed once) reaches each intact', async () => {
  const srv = await echoServer()
  const clients = await Promise.all([wsClient(srv.port), wsClient(srv.port)])
  try {
    await waitUntil(() => srv.sockets.length === 2, 'both accepted')
    const got = clients.map((c) => {
      const all: Buffer[] = []
      c.on('message', (d) => all.push(d as Buffer))
      return all
    })
    const shared = new Uint8Array([1, 2, 3])
    const other = new Uint8Array(300).fill(7)
    for (const s of srv.sockets) s.send(shared)
    for (const s of srv.sockets) s.send(other)
    srv.sockets[0]!.send(shared)
    await waitUntil(() => got[0]!.length === 3 && got[1]!.length === 2, 'all received')
    for (const all of got) {
      assert.equal([...all[0]!], [1, 2, 3])
      assert.ok(all[1]!.equals(Buffer.from(other)))
    }
    assert.equal([...got[0]![2]!], [1, 2, 3])
  } finally {
    for (const c of clients) c.terminate()
    await srv.stop()
  }
})

test('fragments join into one message, with a ping between them answered', () =>
  withClient(async (_srv, ws) => {
    const echoed = nextMessage(ws)
    const pong = within(new Promise<Buffer>((r) => ws.once('pong', r)), 3000, 'pong')
    ws.send(Buffer.from('abc'), { fin: false })
    ws.ping(Buffer.from('p!'))
    ws.send(Buffer.from('def'), { fin: false })
    ws.send(Buffer.from('g'), { fin: true })
    assert.is(String(await pong), 'p!')
    assert.is(String(await echoed), 'abcdefg')
  }))

test('frames cut into single bytes, and a 10,000-fragment message, arrive whole', async () => {
  const srv = await echoServer()
  const { socket, frames } = await rawUpgrade(srv.port)
  try {
    const payload = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 255))
    const bytes = Buffer.concat([frame(0x82, payload), frame(0x82, Buffer.from('xy'))])
    for (const b of bytes) {
      socket.write(Buffer.from([b]))
      await new Promise((r) => setImmediate(r))
    }
    // Echoes: 300 bytes (4-byte header), then 2 bytes (2-byte header).
    await waitUntil(() => frames().length >= 304 + 4, 'both echoes')
    assert.ok(frames().subarray(4, 304).equals(payload))
    assert.is(String(frames().subarray(306, 308)), 'xy')

    const parts = [frame(0x02, Buffer.from([0]))]
    for (let i = 1; i < 9999; i++) parts.push(frame(0x00, Buffer.from([i & 255])))
    parts.push(frame(0x80, Buffer.from([9999 & 255])))
    const before = frames().length
    socket.write(Buffer.concat(parts))
    await waitUntil(() => frames().length >= before + 4 + 10_000, 'joined echo')
    const echo = frames().subarray(before + 4, before + 4 + 10_000)
    assert.ok(echo.every((b, i) => b === (i & 255)))
    assert.equal(srv.errors, [])
  } finally {
    socket.destroy()
    await srv.stop()
  }
})

test('the closing handshake: the peer’s code is echoed, the socket ends, the handler hears', () =>
  withClient(async (srv, ws) => {
    const closed = closeOf(ws)
    ws.close(4000, 'bye')
    assert.equal(await closed, { code: 4000, reason: '' })
    await waitUntil(() => srv.closed() === 1, 'server side closed')

    const ws2 = await wsClient(srv.port)
    const closed2 = closeOf(ws2)
    srv.sockets[1]!.close(4404, 'é'.repeat(100)) // 200 bytes: cut to 122, on a character boundary
    const { code, reason } = await closed2
    assert.is(code, 4404)
    assert.is(reason, 'é'.repeat(61))
    await waitUntil(() => srv.closed() === 2, 'second closed')
  }))

test('a peer that ends its TCP side without a close frame is closed, and closing it then is safe', async () => {
  const srv = await echoServer()
  const { socket } = await rawUpgrade(srv.port)
  try {
    await waitUntil(() => srv.sockets.length === 1, 'accepted')
    socket.end()
    await waitUntil(() => srv.closed() === 1, 'server side closed')
    srv.sockets[0]!.close(1000) // after the fact: no write after end, no throw
    srv.sockets[0]!.send(new Uint8Array([1]))
    assert.equal(srv.errors, [])
  } finally {
    socket.destroy()
    await srv.stop()
  }
})

test('frames that break RFC 6455 close with 1002 / 1007 / 1009 and nothing is delivered', async () => {
  const srv = await echoServer()
  const cases: [string, Buffer, number][] = [
    ['unmasked', frame(0x82, Buffer.from('a'), { masked: false }), 1002],
    ['RSV1 set', frame(0xc2, Buffer.from('a')), 1002],
    ['unknown opcode', frame(0x83, Buffer.from('a')), 1002],
    ['unknown control opcode', frame(0x8b, Buffer.from('a')), 1002],
    ['fragmented ping', frame(0x09, Buffer.from('a')), 1002],
    ['long ping', frame(0x89, Buffer.alloc(126)), 1002],
    ['continuation first', frame(0x80, Buffer.from('a')), 1002],
    [
      'new message inside a fragmented one',
      Buffer.concat([frame(0x02, Buffer.from('a')), frame(0x82, Buffer.from('b'))]),
      1002,
    ],
    ['one-byte close', frame(0x88, Buffer.from([3])), 1002],
    ['close code 1005', frame(0x88, Buffer.from([0x03, 0xed])), 1002],
    ['text not UTF-8', frame(0x81, Buffer.from([0xff, 0xfe])), 1007],
    ['close reason not UTF-8', frame(0x88, Buffer.from([0x03, 0xe8, 0xff])), 1007],
    // Only the header: the limit is checked before any payload is waited for.
    [
      'over the limit',
      frame(0x82, Buffer.alloc(0), { len: MAX_PAYLOAD + 1 }).subarray(0, 14),
      1009,
    ],
    [
      'fragments over the limit',
      Buffer.concat([
        frame(0x02, Buffer.alloc(MAX_PAYLOAD / 2)),
        frame(0x00, Buffer.alloc(0), { len: MAX_PAYLOAD / 2 + 1 }).subarray(0, 14),
      ]),
      1009,
    ],
    [
      'a length with its top bit set',
      Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]),
      1002,
    ],
    [
      '2^63 bytes',
      Buffer.from([0x82, 0xff, 0x7f, 255, 255, 255, 255, 255, 255, 255, 1, 2, 3, 4]),
      1009,
    ],
  ]
  try {
    for (const [name, bytes, code] of cases) {
      const { socket, frames } = await rawUpgrade(srv.port)
      // A valid message after the bad frame must not be echoed.
      socket.write(Buffer.concat([bytes, frame(0x82, Buffer.from('after'))]))
      await waitUntil(() => closeCode(frames()) !== null, `${name}: close frame`)
      assert.is(closeCode(frames()), code, name)
      assert.not.ok(frames().includes('after'), `${name}: nothing after it delivered`)
      socket.destroy()
    }
    assert.is(srv.errors.length, cases.length)
  } finally {
    await srv.stop()
  }
})

test('upgrades that are not RFC 6455 get 400; a request with extensions gets none', async () => {
  const srv = await echoServer()
  try {
    for (const headers of [
      'Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short==',
    ]) {
      assert.match(await replyTo(srv.port, upgradeRequest(headers)), /^HTTP\/1\.1 400 /)
    }
    const http10 = await replyTo(srv.port, upgradeRequest(VALID_KEY, '1.0'))
    assert.match(http10, /^HTTP\/1\.1 400 [^]*HTTP\/1\.1 or later/)
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/`, { perMessageDeflate: true })
    await within(new Promise((r) => ws.once('open', r)), 3000, 'open')
    assert.is(ws.extensions, '')
    ws.terminate()
    assert.is(srv.sockets.length, 1)
  } finally {
    await srv.stop()
  }
})

test('a refused upgrade closes its socket even if the peer never closes its side', async () => {
  const srv = await echoServer()
  const peers: Socket[] = []
  try {
    for (let i = 0; i < 5; i++) {
      const s = netConnect({ port: srv.port, host: '127.0.0.1', allowHalfOpen: true })
      s.on('error', () => undefined)
      s.write(upgradeRequest('Sec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13'))
      peers.push(s)
    }
    await waitUntil(() => peers.every((p) => p.readableEnded || p.bytesRead > 0), 'answered')
    let open = -1
    const end = performance.now() + 3000
    while ((open = await srv.connections()) > 0 && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.is(open, 0, 'the server holds no socket of a refused upgrade')
  } finally {
    for (const p of peers) p.destroy()
    await within(srv.stop(), 3000, 'server stopped (nothing left open)')
  }
})

test('after a close frame either way, a peer that never ends its side is cut off in 2 s', async () => {
  const srv = await echoServer()
  const peers: Socket[] = []
  try {
    // (a) the peer sends a close frame, (b) the peer breaks the protocol: either way it then
    // keeps its side open and trickles bytes, and the server's socket still closes.
    for (const bytes of [
      frame(0x88, Buffer.from([0x03, 0xe8])),
      frame(0x82, Buffer.from('a'), { masked: false }),
    ]) {
      const socket = netConnect({ port: srv.port, host: '127.0.0.1', allowHalfOpen: true })
      peers.push(socket)
      socket.on('error', () => undefined)
      socket.write(upgradeRequest())
      await new Promise((r) => setTimeout(r, 50))
      socket.write(bytes)
    }
    const trickle = setInterval(() => {
      for (const p of peers) if (!p.destroyed && p.writable) p.write(Buffer.from([0]))
    }, 100)
    try {
      await waitUntil(() => srv.closed() === 2, 'both closed by the server', 3500)
    } finally {
      clearInterval(trickle)
    }
    assert.is(await srv.connections(), 0)
  } finally {
    for (const p of peers) p.destroy()
    await srv.stop()
  }
})

test('pause holds back messages already received, resume delivers them; terminate delivers none', async () => {
  const srv = await echoServer()
  const { socket } = await rawUpgrade(srv.port)
  try {
    await waitUntil(() => srv.sockets.length === 1, 'accepted')
    const ws = srv.sockets[0]!
    const got: number[] = []
    ws.handler = {
      onFrame: (data) => {
        got.push(data[0]!)
        if (got.length === 1) ws.pause()
      },
      onPing: () => undefined,
      onSocketError: () => undefined,
      onSocketClose: () => undefined,
    }
    // 50 messages in one write: one chunk, parsed at once unless the pause stops it.
    socket.write(numberedFrames(50))
    await waitUntil(() => got.length >= 1, 'first message')
    await new Promise((r) => setTimeout(r, 100))
    assert.is(got.length, 1, 'nothing delivered while paused')
    ws.resume() // no byte arrives after this: the held frames are parsed from what is buffered
    await waitUntil(() => got.length === 50, 'the rest after resume')
    assert.equal(
      got,
      Array.from({ length: 50 }, (_, i) => i),
    )
  } finally {
    socket.destroy()
  }
  const second = await rawUpgrade(srv.port)
  try {
    await waitUntil(() => srv.sockets.length === 2, 'accepted')
    const ws = srv.sockets[1]!
    let n = 0
    ws.handler = {
      onFrame: () => {
        n++
        ws.terminate()
      },
      onPing: () => undefined,
      onSocketError: () => undefined,
      onSocketClose: () => undefined,
    }
    second.socket.write(numberedFrames(50))
    await waitUntil(() => ws.readyState === 3, 'terminated')
    assert.is(n, 1)
  } finally {
    second.socket.destroy()
    await srv.stop()
  }
})

test('closing a paused socket completes as soon as the peer answers', () =>
  withClient(async (srv, ws) => {
    await waitUntil(() => srv.sockets.length === 1, 'accepted')
    const hub = srv.sockets[0]!
    hub.pause()
    const t0 = performance.now()
    const closed = closeOf(ws)
    hub.close(1001, 'going away')
    assert.equal(await closed, { code: 1001, reason: 'going away' })
    await waitUntil(() => srv.closed() === 1, 'server side closed')
    assert.ok(performance.now() - t0 < 1000, 'closed without waiting out the close timeout')
  }))

test.run()
