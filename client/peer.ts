/**
 * Direct Node peer links over `ws`: `listenPeers` accepts links, `connectPeer`
 * dials one and keeps it up, so processes edit one document with no server
 * between them (any topology: each process may listen and dial several peers).
 *
 * Invariants: every socket gets exactly one `link`; `connectPeer` reconnects
 * with exponential backoff and full jitter after any close that is not a
 * non-retryable protocol error, and a reconnect resyncs only what is missing
 * (the HELLO exchange of version vectors). `close()` stops everything it started.
 */

import { WebSocketServer, WebSocket } from 'ws'
import { timingSafeEqual } from 'node:crypto'
import { fromWebSocket, type WebSocketLike } from '../shared/channels.ts'
import { link, type Link, type LinkOptions } from '../shared/sync.ts'
import type { SyncError } from '../shared/protocol.ts'
import type { Replica } from '../shared/replica.ts'

export interface ListenPeersOptions {
  /** 0 picks a free port. */
  port: number
  doc: Replica
  /** When set, a peer must present it as `?token=`; others are refused with HTTP 401. */
  token?: string
  /** Interface to bind; default all interfaces. */
  host?: string
  /** Options for every accepted link. */
  link?: LinkOptions
  /** Called with each new link (e.g. to watch its stats or errors). */
  onLink?: (link: Link) => void
  /** Largest incoming WebSocket frame; default 16 MiB. */
  maxPayload?: number
}

export interface PeerListener {
  readonly port: number
  /** The live links, one per connected peer. */
  readonly links: ReadonlySet<Link>
  /** Closes every link and the listening socket. */
  close(): Promise<void>
}

function tokenMatches(expected: string, given: string | null): boolean {
  if (given === null) return false
  const a = Buffer.from(expected)
  const b = Buffer.from(given)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Accepts peer links to `doc` on `port` (API.md). */
export function listenPeers(opts: ListenPeersOptions): Promise<PeerListener> {
  const links = new Set<Link>()
  const wss = new WebSocketServer({
    port: opts.port,
    host: opts.host,
    maxPayload: opts.maxPayload ?? 16 << 20,
    verifyClient: opts.token
      ? (info: { req: { url?: string } }) => {
          const url = new URL(info.req.url ?? '/', 'ws://x')
          return tokenMatches(opts.token!, url.searchParams.get('token'))
        }
      : undefined,
  })
  wss.on('connection', (ws) => {
    const l = link(opts.doc, fromWebSocket(ws as unknown as WebSocketLike), opts.link)
    links.add(l)
    l.on('close', () => links.delete(l))
    opts.onLink?.(l)
  })
  return new Promise((resolve, reject) => {
    wss.once('error', reject)
    wss.once('listening', () => {
      wss.off('error', reject)
      const addr = wss.address()
      const port = typeof addr === 'object' && addr ? addr.port : opts.port
      resolve({
        port,
        links,
        close: () =>
          new Promise<void>((res) => {
            for (const l of links) l.close()
            for (const c of wss.clients) c.terminate()
            wss.close(() => res())
          }),
      })
    })
  })
}

export interface ConnectPeerOptions {
  /** `ws://HOST:PORT`. */
  url: string
  doc: Replica
  token?: string
  link?: LinkOptions
  /** First reconnect delay; doubles per failed attempt. Default 100 ms. */
  minDelayMs?: number
  /** Cap of the reconnect delay. Default 5000 ms. */
  maxDelayMs?: number
  /** Called with each new link (one per connection attempt). */
  onLink?: (link: Link) => void
}

export interface PeerConnection {
  /** Stops the link and reconnecting. */
  close(): void
  /** Resolves at the first completed sync. */
  readonly synced: Promise<void>
  /** The current link, if connected. */
  readonly link: Link | null
  /** Connection attempts so far. */
  readonly attempts: number
  /** Set when reconnecting stopped because of a non-retryable protocol error. */
  readonly fatalError: SyncError | null
}

/** Dials a peer and keeps the link up, reconnecting with backoff and jitter (API.md). */
export function connectPeer(opts: ConnectPeerOptions): PeerConnection {
  const minDelay = opts.minDelayMs ?? 100
  const maxDelay = opts.maxDelayMs ?? 5000
  let stopped = false
  let current: Link | null = null
  let socket: WebSocket | null = null
  let failures = 0
  let attempts = 0
  let timer: ReturnType<typeof setTimeout> | null = null
  let fatalError: SyncError | null = null
  let resolveSynced!: () => void
  const synced = new Promise<void>((r) => (resolveSynced = r))

  const url = new URL(opts.url)
  if (opts.token) url.searchParams.set('token', opts.token)

  const retry = () => {
    if (stopped || timer) return
    // Full jitter: uniform in [delay/2, delay], delay doubling per failure up to the cap.
    const delay = Math.min(maxDelay, minDelay * 2 ** Math.min(failures, 20))
    failures++
    timer = setTimeout(
      () => {
        timer = null
        dial()
      },
      delay / 2 + (Math.random() * delay) / 2,
    )
  }

  const dial = () => {
    if (stopped) return
    attempts++
    const ws = new WebSocket(url)
    socket = ws
    ws.on('error', () => {}) // 'close' follows and schedules the retry
    const l = link(opts.doc, fromWebSocket(ws as unknown as WebSocketLike), opts.link)
    current = l
    l.on('synced', () => {
      failures = 0
      resolveSynced()
    })
    l.on('error', (err) => {
      if (err.fatal && !err.retryable) fatalError = err
    })
    opts.onLink?.(l)
    l.on('close', () => {
      if (current === l) current = null
      if (socket === ws) socket = null
      if (!fatalError) retry()
    })
  }

  dial()
  return {
    close() {
      stopped = true
      if (timer) clearTimeout(timer)
      current?.close()
      socket?.terminate()
    },
    synced,
    get link() {
      return current
    },
    get attempts() {
      return attempts
    },
    get fatalError() {
      return fatalError
    },
  }
}
