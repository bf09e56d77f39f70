/**
 * The WebSocket endpoint `ws://HOST:PORT/ws/:docId`: upgrade routing, per-address connection
 * caps and connection rates, the heartbeat that frees half-open sockets, and closing every
 * connection on shutdown.
 *
 * Invariants: an upgrade is refused with a plain HTTP status (404, 429, 503) before any
 * WebSocket state exists; the WebSocket (websocket.ts) enforces `maxMessageBytes` itself
 * (close 1009 before buffering a larger frame) and declines permessage-deflate, so no frame
 * inflates past the limit (A5).
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { Presence } from '../shared/presence.ts'
import { CLOSE } from './close-codes.ts'
import { ServerConnection, type ConnectionContext, type FanoutClock } from './connection.ts'
import { Bucket } from './token-bucket.ts'
import type { LoadedDoc } from './documents.ts'
import { acceptWebSocket, answerAndClose } from './websocket.ts'

const MAX_DOC_ID_LENGTH = 256

/** A document id from a raw (percent-encoded) URL path segment, or null if unacceptable. */
export function parseDocId(segment: string): string | null {
  let id: string
  try {
    id = decodeURIComponent(segment)
  } catch {
    return null
  }
  return checkDocId(id)
}

/**
 * `id` (already decoded) if acceptable as a document id, else null: empty, too long, control
 * characters or lone surrogates.
 */
export function checkDocId(id: string): string | null {
  if (id.length === 0 || id.length > MAX_DOC_ID_LENGTH) return null
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(id)) return null
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(id)) return null
  return id
}

function reject(socket: Duplex, status: number, text: string): void {
  answerAndClose(
    socket,
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
  )
}

// Socket handlers shared by every connection (`this` is the socket), as in connection.ts: a
// closure (and a `once` wrapper) per connection is memory for nothing.
function destroyOnError(this: Duplex): void {
  this.destroy()
}

/** Accepts WebSocket upgrades and owns every live connection. */
export class WsEndpoint {
  private readonly connections = new Set<ServerConnection>()
  private readonly perAddress = new Map<string, number>()
  /** New-connection budgets by address; a refilled one is dropped at the next heartbeat. */
  private readonly rates = new Map<string, Bucket>()
  private readonly presences = new WeakMap<LoadedDoc, Presence>()
  private readonly fanouts = new WeakMap<LoadedDoc, FanoutClock>()
  private readonly heartbeat: ReturnType<typeof setInterval>
  private accepting = true
  private readonly ctx: ConnectionContext
  /** A counted socket's close handler (`this` is the socket), one for every socket. */
  private readonly uncountOnClose: (this: Duplex) => void
  /**
   * Sockets counted against their address while their upgrade is under way (a map, not a
   * property on the socket: that would give every socket a property array for good).
   */
  private readonly upgrading = new Map<Duplex, string>()
  /** Resolves `close`'s wait when the last connection has closed. */
  private allClosed: (() => void) | null = null

  constructor(ctx: Omit<ConnectionContext, 'presenceFor' | 'fanoutFor' | 'closed'>) {
    this.ctx = {
      ...ctx,
      presenceFor: (entry) => {
        let p = this.presences.get(entry)
        if (p === undefined) {
          p = new Presence({ maxEntriesPerSecond: ctx.limits.presencePerSecond })
          this.presences.set(entry, p)
        }
        return p
      },
      fanoutFor: (entry) => {
        let f = this.fanouts.get(entry)
        if (f === undefined) {
          f = { receivedAt: null, from: null }
          this.fanouts.set(entry, f)
        }
        return f
      },
      closed: (conn) => {
        this.connections.delete(conn)
        this.uncount(conn.remote)
        if (this.connections.size === 0) this.allClosed?.()
      },
    }
    const endpoint = this
    this.uncountOnClose = function (this: Duplex) {
      const address = endpoint.upgrading.get(this)
      if (address === undefined) return
      endpoint.upgrading.delete(this)
      endpoint.uncount(address)
    }
    this.heartbeat = setInterval(() => this.beat(), ctx.limits.heartbeatMs)
    this.heartbeat.unref?.()
  }

  /** Open connections. */
  get size(): number {
    return this.connections.size
  }

  /** The http server's `upgrade` handler. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroyOnError)
    if (!this.accepting) return reject(socket, 503, 'Service Unavailable')
    const url = new URL(req.url ?? '/', 'http://localhost')
    const m = /^\/ws\/([^/]+)$/.exec(url.pathname)
    if (m === null) return reject(socket, 404, 'Not Found')
    const address = req.socket.remoteAddress ?? 'unknown'
    const limits = this.ctx.limits
    const count = this.perAddress.get(address) ?? 0
    if (count >= limits.maxConnectionsPerIp) {
      this.ctx.metrics.refusals.inc({ reason: 'connections-per-ip' })
      return reject(socket, 429, 'Too Many Requests')
    }
    let rate = this.rates.get(address)
    if (rate === undefined) {
      rate = new Bucket(limits.connectionsPerIpPerSecond, limits.connectionBurstPerIp)
      this.rates.set(address, rate)
    }
    if (!rate.tryTake(1)) {
      this.ctx.metrics.refusals.inc({ reason: 'connection-rate-per-ip' })
      return reject(socket, 429, 'Too Many Requests')
    }
    this.perAddress.set(address, count + 1)
    // Uncounted when the socket closes, whether or not the upgrade completes.
    this.upgrading.set(socket, address)
    socket.on('close', this.uncountOnClose)
    const ws = acceptWebSocket(req, socket, head, limits.maxMessageBytes)
    if (ws === null) return
    const docId = parseDocId(m[1]!)
    if (docId === null) {
      this.ctx.metrics.refusals.inc({ reason: 'bad-document-id' })
      ws.close(CLOSE.BAD_DOCUMENT_ID, 'bad document id')
      return
    }
    // The WebSocket handles the socket's errors now, and the connection's close uncounts it:
    // a second listener on each event would cost the socket a listener array per event.
    socket.off('error', destroyOnError)
    socket.off('close', this.uncountOnClose)
    this.upgrading.delete(socket)
    const token = url.searchParams.get('token')
    this.connections.add(new ServerConnection(ws, docId, address, token, this.ctx))
  }

  /** A counted socket of `address` closed. */
  private uncount(address: string): void {
    const n = (this.perAddress.get(address) ?? 1) - 1
    if (n <= 0) this.perAddress.delete(address)
    else this.perAddress.set(address, n)
  }

  private beat(): void {
    for (const [address, rate] of this.rates) if (rate.full) this.rates.delete(address)
    for (const c of this.connections) {
      const read = c.ws.socket.bytesRead
      if (read === c.readAtPing) {
        c.ws.terminate() // nothing since the last ping, no pong either
        continue
      }
      c.readAtPing = read
      try {
        c.ws.ping()
        c.keepAlive()
      } catch {
        c.ws.terminate()
      }
    }
  }

  /** Stops accepting upgrades (new ones get 503). */
  stopAccepting(): void {
    this.accepting = false
  }

  /** Stops reading every connection (shutdown, before the flush: see create-server.ts). */
  stopReading(): void {
    for (const c of this.connections) c.stopReading()
  }

  /** Closes every connection with 1001 "going away" and waits (bounded) for the sockets. */
  async close(timeoutMs = 3000): Promise<void> {
    this.accepting = false
    clearInterval(this.heartbeat)
    const closed = new Promise<void>((resolve) => {
      if (this.connections.size === 0) resolve()
      else this.allClosed = resolve
    })
    for (const c of this.connections) c.close(CLOSE.GOING_AWAY, 'server going away')
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, timeoutMs)))])
    clearTimeout(timer)
    this.allClosed = null
    for (const c of this.connections) c.ws.terminate()
  }
}
