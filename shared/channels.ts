/**
 * Channel adapters: make a sync `Channel` (an ordered duplex byte-message pipe)
 * from a WebSocket (browser or the `ws` package), an RTCDataChannel, a
 * BroadcastChannel, a MessagePort, or an in-memory pair for tests.
 *
 * Invariants: handlers receive `Uint8Array`s only (a text frame arrives as an
 * empty message, which the protocol rejects as BAD_MESSAGE); `onClose` handlers
 * fire at most once, whichever side closed; after close nothing is delivered and
 * `send` is a no-op. No Node or DOM imports: the adapters use structural types.
 */

/** Any ordered duplex message channel (API.md). `close` may carry a WebSocket-style code. */
export interface Channel {
  send(message: Uint8Array): void
  onMessage(handler: (message: Uint8Array) => void): void
  onClose(handler: () => void): void
  close(code?: number, reason?: string): void
}

/** The receiving end a `DirectChannel` delivers to: the one link on it. */
export interface LinkEndpoint {
  receive(message: Uint8Array): void
  channelClosed(): void
  /** Sends a message that says only "this link is alive" (Link.keepAlive). */
  keepAlive(): void
}

/**
 * A channel that hands its messages and its close straight to the one link on it rather than
 * through handler closures: a hub holds a channel per client, and two closures each are memory
 * for nothing. `link` attaches itself through `attachLink` when the channel has it.
 */
export interface DirectChannel extends Channel {
  attachLink(link: LinkEndpoint): void
}

/** Shared plumbing: handler lists, once-only close, delivery only while open. */
class BaseChannel implements Channel {
  private msgHandlers: ((m: Uint8Array) => void)[] = []
  private closeHandlers: (() => void)[] = []
  closed = false
  constructor(
    private readonly doSend: (m: Uint8Array) => void,
    private readonly doClose: (code?: number, reason?: string) => void,
  ) {}
  send(message: Uint8Array): void {
    if (!this.closed) this.doSend(message)
  }
  onMessage(handler: (message: Uint8Array) => void): void {
    this.msgHandlers.push(handler)
  }
  onClose(handler: () => void): void {
    if (this.closed) queueMicrotask(handler)
    else this.closeHandlers.push(handler)
  }
  close(code?: number, reason?: string): void {
    if (this.closed) return
    this.doClose(code, reason)
    this.markClosed()
  }
  /** Delivers an incoming message (ignored after close: RELIABILITY A11). */
  deliver(data: unknown): void {
    if (this.closed) return
    const bytes = toBytes(data)
    for (const h of this.msgHandlers) h(bytes)
  }
  markClosed(): void {
    if (this.closed) return
    this.closed = true
    const hs = this.closeHandlers
    this.closeHandlers = []
    for (const h of hs) h()
  }
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (Array.isArray(data)) {
    // ws with binaryType 'fragments'
    const parts = data.map(toBytes)
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let o = 0
    for (const p of parts) (out.set(p, o), (o += p.length))
    return out
  }
  return new Uint8Array(0) // text frame or anything else: rejected by the protocol
}

/** Structural type of a WebSocket (browser `WebSocket`, or `ws`'s, which mirrors it). */
export interface WebSocketLike {
  readonly readyState: number
  binaryType: string
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
  addEventListener(type: 'message', h: (ev: { data: unknown }) => void): void
  addEventListener(type: 'open' | 'close' | 'error', h: (ev: unknown) => void): void
}

/**
 * A channel over a WebSocket (browser or `ws`). Messages sent before the socket
 * opens are queued and flushed on open. The socket closing (either side) closes
 * the channel; `close(code)` closes the socket with that code.
 */
export function fromWebSocket(ws: WebSocketLike): Channel {
  const queue: Uint8Array[] = []
  const ch = new BaseChannel(
    (m) => {
      if (ws.readyState === 1) ws.send(m)
      else if (ws.readyState === 0) queue.push(m)
    },
    (code, reason) => {
      try {
        if (ws.readyState <= 1) ws.close(validCloseCode(code), reason?.slice(0, 120))
      } catch {
        // closing an already failed socket: nothing to do
      }
    },
  )
  ws.binaryType = 'arraybuffer'
  ws.addEventListener('open', () => {
    for (const m of queue.splice(0)) ws.send(m)
  })
  ws.addEventListener('message', (ev) => ch.deliver(ev.data))
  ws.addEventListener('close', () => ch.markClosed())
  if (ws.readyState >= 2) ch.markClosed()
  return ch
}

function validCloseCode(code?: number): number | undefined {
  if (code === undefined) return undefined
  return code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000
}

/** Structural type of an RTCDataChannel. */
export interface DataChannelLike {
  readonly readyState: string
  binaryType: string
  send(data: Uint8Array): void
  close(): void
  addEventListener(type: 'message', h: (ev: { data: unknown }) => void): void
  addEventListener(type: 'open' | 'close', h: (ev: unknown) => void): void
}

/** A channel over an RTCDataChannel (ordered). Sends before `open` are queued. */
export function fromDataChannel(dc: DataChannelLike): Channel {
  const queue: Uint8Array[] = []
  const ch = new BaseChannel(
    (m) => {
      if (dc.readyState === 'open') dc.send(m)
      else if (dc.readyState === 'connecting') queue.push(m)
    },
    () => dc.close(),
  )
  dc.binaryType = 'arraybuffer'
  dc.addEventListener('open', () => {
    for (const m of queue.splice(0)) dc.send(m)
  })
  dc.addEventListener('message', (ev) => ch.deliver(ev.data))
  dc.addEventListener('close', () => ch.markClosed())
  if (dc.readyState === 'closing' || dc.readyState === 'closed') ch.markClosed()
  return ch
}

/** Structural type shared by MessagePort and BroadcastChannel. */
export interface PostLike {
  postMessage(data: unknown): void
  addEventListener(type: 'message', h: (ev: { data: unknown }) => void): void
  close(): void
  start?(): void
}

type Framed = { readonly t: 'm'; readonly d: Uint8Array } | { readonly t: 'c' }

function framed(port: PostLike): Channel {
  const ch = new BaseChannel(
    (m) => port.postMessage({ t: 'm', d: m } satisfies Framed),
    () => {
      port.postMessage({ t: 'c' } satisfies Framed)
      port.close()
    },
  )
  port.addEventListener('message', (ev) => {
    const f = ev.data as Framed | null
    if (f && typeof f === 'object' && f.t === 'c') {
      ch.markClosed()
      port.close()
    } else if (f && typeof f === 'object' && f.t === 'm') ch.deliver(f.d)
    else ch.deliver(undefined)
  })
  port.start?.()
  return ch
}

/**
 * A channel over a MessagePort (workers, iframes, `MessageChannel`). Closing one end
 * tells the other (a close frame is posted first).
 */
export function fromMessagePort(port: PostLike): Channel {
  return framed(port)
}

/**
 * A channel over a BroadcastChannel used by exactly two parties (e.g. two tabs
 * agreeing on a channel name per pair). With more listeners, use one name per pair.
 */
export function fromBroadcastChannel(bc: PostLike): Channel {
  return framed(bc)
}

/**
 * Two connected in-memory channels. Delivery is asynchronous (a macrotask per
 * message, in order), so a link never re-enters itself. `delayMs` adds latency.
 * Closing one end closes the other after the messages already sent arrive.
 */
export function memoryPair(opts: { delayMs?: number } = {}): [Channel, Channel] {
  const delay = opts.delayMs ?? 0
  let a!: BaseChannel
  let b!: BaseChannel
  const post = (to: () => BaseChannel, fn: (c: BaseChannel) => void) => {
    setTimeout(() => fn(to()), delay)
  }
  a = new BaseChannel(
    (m) =>
      post(
        () => b,
        (c) => c.deliver(m.slice()),
      ),
    () =>
      post(
        () => b,
        (c) => c.markClosed(),
      ),
  )
  b = new BaseChannel(
    (m) =>
      post(
        () => a,
        (c) => c.deliver(m.slice()),
      ),
    () =>
      post(
        () => a,
        (c) => c.markClosed(),
      ),
  )
  return [a, b]
}
