/**
 * Channel adapters carry real links: in-memory pair, MessagePort (MessageChannel),
 * BroadcastChannel, WebSocket (`ws` on 127.0.0.1, both ends through fromWebSocket),
 * and the RTCDataChannel adapter over a stand-in (Node has no WebRTC). Closing one
 * end closes the other; nothing is delivered after close; a text frame is a bad message.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { WebSocketServer, WebSocket } from 'ws'
import {
  TextDoc,
  link,
  memoryPair,
  fromMessagePort,
  fromBroadcastChannel,
  fromWebSocket,
  fromDataChannel,
  closeCodeFor,
  SYNC_ERRORS,
  type Channel,
  type DataChannelLike,
  type WebSocketLike,
} from '../shared/index.ts'
import { until } from './support/raw-peer.ts'

/** Links two fresh docs over the two channels, edits both, waits for convergence, closes one side. */
async function roundTrip(x: Channel, y: Channel): Promise<void> {
  const a = new TextDoc('a')
  const b = new TextDoc('b')
  a.insert(0, 'from a. ')
  const la = link(a, x)
  const lb = link(b, y)
  await Promise.all([la.synced, lb.synced])
  b.insert(0, 'from b. ')
  await until(() => a.toString() === b.toString() && a.length === 16, 3000, 'convergence')
  la.close()
  await until(() => lb.closed, 3000, 'close to propagate')
}

test('memoryPair: ordered delivery, close propagates, nothing after close', async () => {
  const [x, y] = memoryPair()
  const got: number[] = []
  y.onMessage((m) => got.push(m[0]!))
  let closed = 0
  y.onClose(() => closed++)
  for (let i = 0; i < 50; i++) x.send(new Uint8Array([i]))
  x.close()
  x.send(new Uint8Array([99]))
  await until(() => closed === 1, 1000, 'close')
  assert.equal(
    got,
    Array.from({ length: 50 }, (_, i) => i),
  )
  await roundTrip(...memoryPair())
})

test('MessagePort (MessageChannel)', async () => {
  const { port1, port2 } = new MessageChannel()
  await roundTrip(fromMessagePort(port1), fromMessagePort(port2))
})

test('BroadcastChannel between two parties', async () => {
  const name = `polyphony-test-${Math.random()}`
  const a = new BroadcastChannel(name)
  const b = new BroadcastChannel(name)
  await roundTrip(fromBroadcastChannel(a), fromBroadcastChannel(b))
  a.close()
  b.close()
})

test('WebSocket (ws) both ends; a text frame closes the link with BAD_MESSAGE', async () => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise((r) => wss.once('listening', r))
  const port = (wss.address() as { port: number }).port
  try {
    const serverSide = new Promise<WebSocket>((r) => wss.once('connection', r))
    const client = new WebSocket(`ws://127.0.0.1:${port}`)
    // The client channel is made while CONNECTING: its HELLO is queued until open.
    const cx = fromWebSocket(client as unknown as WebSocketLike)
    const sx = fromWebSocket((await serverSide) as unknown as WebSocketLike)
    await roundTrip(cx, sx)

    const serverSide2 = new Promise<WebSocket>((r) => wss.once('connection', r))
    const raw = new WebSocket(`ws://127.0.0.1:${port}`)
    await new Promise((r) => raw.once('open', r))
    const doc = new TextDoc('s')
    const l = link(doc, fromWebSocket((await serverSide2) as unknown as WebSocketLike))
    const code = new Promise<number>((r) => raw.once('close', (c: number) => r(c)))
    raw.send('hello as text')
    assert.is(await code, closeCodeFor(SYNC_ERRORS.BAD_MESSAGE.code))
    assert.ok(l.closed)
  } finally {
    for (const c of wss.clients) c.terminate()
    await new Promise((r) => wss.close(r))
  }
})

/**
 * A stand-in for a browser RTCDataChannel (Node has no WebRTC): the DataChannelLike
 * surface over a MessagePort, starting 'connecting' and opening a little later.
 */
function fakeDataChannels(): [DataChannelLike, DataChannelLike] {
  const { port1, port2 } = new MessageChannel()
  const make = (port: MessagePort): DataChannelLike & { other?: { closeNow(): void } } => {
    const listeners: Record<string, ((ev: { data: unknown }) => void)[]> = {}
    const fire = (t: string, ev: { data: unknown }) => (listeners[t] ?? []).forEach((h) => h(ev))
    const dc = {
      readyState: 'connecting',
      binaryType: 'blob',
      send(data: Uint8Array) {
        if (dc.readyState !== 'open') throw new Error('InvalidStateError: not open')
        port.postMessage(data)
      },
      close() {
        port.postMessage('__close__')
        dc.closeNow()
      },
      closeNow() {
        if (dc.readyState === 'closed') return
        dc.readyState = 'closed'
        port.close()
        fire('close', { data: null })
      },
      addEventListener(t: string, h: (ev: { data: unknown }) => void) {
        ;(listeners[t] ??= []).push(h)
      },
    }
    port.addEventListener('message', (ev) => {
      const data: unknown = ev.data
      if (data === '__close__') dc.closeNow()
      else fire('message', { data: data instanceof Uint8Array ? data.slice().buffer : data })
    })
    port.start()
    setTimeout(() => {
      dc.readyState = 'open'
      fire('open', { data: null })
    }, 20)
    return dc as unknown as DataChannelLike
  }
  return [make(port1), make(port2)]
}

test('RTCDataChannel adapter: queues until open, carries a link, close propagates', async () => {
  const [a, b] = fakeDataChannels()
  await roundTrip(fromDataChannel(a), fromDataChannel(b))
  assert.is(a.binaryType, 'arraybuffer')
})

test.run()
