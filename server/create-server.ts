/**
 * `createServer`: storage, documents registry, HTTP routes and the WebSocket endpoint on one
 * port, and their orderly shutdown.
 *
 * Shutdown order (E8): stop accepting (HTTP and upgrades), let in-flight writes settle and store
 * snapshots, close every link with 1001 "going away", close storage. Clients reconnect and
 * resend anything not acknowledged.
 */
import { createServer as createHttpServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Schema } from 'prosemirror-model'
import { richSchema } from '../shared/rich-schema.ts'
import { SERVER_LINK_TUNING, type LinkTuning } from './connection.ts'
import { DocumentRegistry } from './documents.ts'
import { createHttpApp } from './http.ts'
import { resolveLimits, type Limits } from './limits.ts'
import { createLogger, type Logger } from './log.ts'
import { createMetrics } from './metrics.ts'
import { SqliteStorage, type Storage } from './storage.ts'
import { WsEndpoint } from './ws-endpoint.ts'
import { answerAndClose } from './websocket.ts'

/** Options of `createServer` (API.md "Server", plus operator and test hooks). */
export interface ServerOptions {
  /** TCP port; 0 picks a free one. Default 8787. */
  port?: number
  /** Interface to listen on. Default all (`::` / `0.0.0.0`). */
  host?: string
  /** Directory of the embedded SQLite database. Default `./data`. */
  dataDir?: string
  /** When set, every WebSocket connection and REST read needs a valid token. */
  secret?: string
  /** Overrides of `DEFAULT_LIMITS` (server/limits.ts). */
  limits?: Partial<Limits>
  /** A storage backend instead of SQLite in `dataDir` (tests inject faults with it). */
  storage?: Storage
  /** Logger; default pino JSON on stdout at `POLYPHONY_LOG_LEVEL`. */
  logger?: Logger
  /** Batching of the server's sync links; default `SERVER_LINK_TUNING` (server/connection.ts). */
  linkTuning?: LinkTuning
  /** Schema of rich documents for REST reads (ProseMirror JSON and text). Default `richSchema`. */
  schema?: Schema
  /** Add prom-client's process metrics (CPU, heap, event loop) to `/metrics`. */
  processMetrics?: boolean
}

/** A running server. */
export interface PolyphonyServer {
  /** `http://HOST:PORT`; the WebSocket base is the same with `ws://`. */
  readonly url: string
  readonly port: number
  /** Stops accepting, flushes, closes links with "going away", closes storage. */
  close(): Promise<void>
  /** The effective limits. */
  readonly limits: Limits
  /** Open WebSocket connections and loaded documents (tests, benchmarks). */
  stats(): { connections: number; documents: number }
}

/** Starts a server (API.md "Server"). Resolves once it listens and storage is open. */
export async function createServer(opts: ServerOptions = {}): Promise<PolyphonyServer> {
  const limits = resolveLimits(opts.limits)
  const log = opts.logger ?? createLogger()
  const metrics = createMetrics(opts.processMetrics ?? false)
  const storage = opts.storage ?? (await SqliteStorage.open({ dataDir: opts.dataDir ?? './data' }))
  const secret = opts.secret === '' ? undefined : opts.secret
  if (secret === undefined) {
    log.warn(
      'OPEN MODE: no secret set (POLYPHONY_SECRET). Anyone who can reach this server can read ' +
        'and write every document. Set a secret for anything but local testing.',
    )
  }
  const registry = new DocumentRegistry(storage, limits, log, metrics)
  const linkTuning = { ...SERVER_LINK_TUNING, ...opts.linkTuning }
  const endpoint = new WsEndpoint({ registry, limits, secret, log, metrics, linkTuning })
  const app = createHttpApp({ registry, secret, log, metrics, schema: opts.schema ?? richSchema })
  const http: Server = createHttpServer({ maxHeaderSize: 16 * 1024 }, app)
  http.headersTimeout = 10_000
  http.requestTimeout = 30_000
  http.on('upgrade', (req, socket, head) => endpoint.handleUpgrade(req, socket, head))
  http.on('clientError', (_err, socket) => {
    if (socket.writable)
      answerAndClose(socket, 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
    else socket.destroy()
  })

  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject)
      http.listen(opts.port ?? 8787, opts.host, () => {
        http.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    // Nothing is served: release what was opened (the data directory's lock above all), so a
    // retry in this process can take it.
    await registry.close()
    await endpoint.close()
    if (opts.storage === undefined) await storage.close()
    throw err
  }
  const port = (http.address() as AddressInfo).port
  const host = opts.host === undefined || opts.host === '::' || opts.host === '0.0.0.0'
  const url = `http://${host ? '127.0.0.1' : opts.host}:${port}`
  log.info({ port, limits }, 'polyphony server listening')

  let closing: Promise<void> | null = null
  const close = () =>
    (closing ??= (async () => {
      endpoint.stopAccepting()
      // Nothing more comes in, so the snapshots stored next hold everything, however fast
      // clients were typing (the flush that came before waited for them to stop).
      endpoint.stopReading()
      const httpClosed = new Promise<void>((r) => http.close(() => r()))
      http.closeIdleConnections()
      await registry.close()
      await endpoint.close()
      http.closeAllConnections()
      await httpClosed
      await storage.close()
      log.info('polyphony server closed')
    })())

  return {
    url,
    port,
    limits,
    close,
    stats: () => ({ connections: endpoint.size, documents: registry.loadedCount }),
  }
}
