/**
 * Helpers for server integration tests: a real server on 127.0.0.1 port 0 with SQLite in a fresh
 * temp directory and a captured (silent) log, Node clients over `ws`, bounded waits, and a server
 * in a child process (for SIGKILL / SIGTERM tests).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import WebSocket from 'ws'
import { connect, type Connection, type ConnectOptions } from '../../client/connection.ts'
import {
  createServer,
  type ServerOptions,
  type PolyphonyServer,
} from '../../server/create-server.ts'

/** A fresh temporary directory; remove it with `rmSync(dir, { recursive: true })`. */
export function tempDir(prefix = 'polyphony-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** A running test server with its data directory and captured log lines. */
export interface TestServer {
  readonly server: PolyphonyServer
  readonly wsUrl: string
  readonly httpUrl: string
  readonly dataDir: string
  readonly logs: Record<string, unknown>[]
  /** Closes the server and removes the data directory (unless `keepData`). */
  stop(keepData?: boolean): Promise<void>
}

/** Starts a server on 127.0.0.1:0 with SQLite in a temp dir (or `opts.dataDir`). */
export async function startServer(opts: ServerOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? tempDir()
  const logs: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line))
      cb()
    },
  })
  const server = await createServer({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    logger: pino({ level: 'info' }, sink),
    ...opts,
  })
  return {
    server,
    wsUrl: server.url.replace('http://', 'ws://'),
    httpUrl: server.url,
    dataDir,
    logs,
    async stop(keepData = false) {
      await server.close()
      if (!keepData && opts.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** A Node client of `ts` for `docId` (fast backoff for tests). */
export function client(
  wsUrl: string,
  docId: string,
  opts: Partial<ConnectOptions> = {},
): Connection {
  return connect({ url: wsUrl, docId, WebSocket, backoff: { minMs: 20, maxMs: 200 }, ...opts })
}

/** Polls `pred` every 5 ms until true; throws after `timeoutMs` with `what`. */
export async function waitFor(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** Rejects after `ms` unless `p` settles first. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout>
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)
    }),
  ])
}

/** The REST text of a document (with an optional token). */
export async function restText(httpUrl: string, docId: string, token?: string): Promise<string> {
  const res = await fetch(`${httpUrl}/api/docs/${encodeURIComponent(docId)}/text`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
  if (res.status !== 200) throw new Error(`REST read of ${docId}: HTTP ${res.status}`)
  return res.text()
}

/** A raw `ws` socket whose incoming binary messages are collected from the start. */
export type RawSocket = WebSocket & { readonly received: Uint8Array[] }

/** A raw `ws` socket to the server's endpoint for `docId`, resolved once open. */
export function rawSocket(wsUrl: string, docId: string, query = ''): Promise<RawSocket> {
  const ws = new WebSocket(`${wsUrl}/ws/${encodeURIComponent(docId)}${query}`) as RawSocket
  const received: Uint8Array[] = []
  Object.defineProperty(ws, 'received', { value: received })
  ws.on('message', (m: Buffer) => received.push(new Uint8Array(m)))
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
}

/** Resolves with the close code and reason of `ws` (bounded by `ms`). */
export function closeOf(ws: WebSocket, ms = 5000): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: -1, reason: 'already' })
  return within(
    new Promise((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    ),
    ms,
    'socket close',
  )
}

const childScript = fileURLToPath(new URL('../../server/main.ts', import.meta.url))
let childBundle: Promise<string> | null = null

/**
 * server/main.ts (what `npm start` runs) bundled once per test process with esbuild
 * (node_modules stay external): starting it with plain node saves tsx's ~2 s per start.
 */
function bundledChild(): Promise<string> {
  childBundle ??= (async () => {
    const esbuild = await import('esbuild')
    // Inside the repo (test/output/ is git-ignored) so node resolves node_modules from it.
    const out = fileURLToPath(new URL(`../output/server-main-${process.pid}.mjs`, import.meta.url))
    await esbuild.build({
      entryPoints: [childScript],
      outfile: out,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      absWorkingDir: fileURLToPath(new URL('../..', import.meta.url)),
      logLevel: 'silent',
    })
    process.once('exit', () => rmSync(out, { force: true }))
    return out
  })()
  return childBundle
}

/** `npm start`'s server (server/main.ts) in its own process, for kill and signal tests. */
export interface ChildServer {
  readonly proc: ChildProcess
  readonly port: number
  readonly wsUrl: string
  readonly httpUrl: string
  /** Resolves with the exit code / signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly stderr: () => string
  /** Its log (pino JSON lines on stdout). */
  readonly stdout: () => string
}

/** Spawns server/main.ts on `dataDir`, port 0 (or `port`); resolves once listening. */
export async function spawnServer(
  dataDir: string,
  env: Record<string, string> = {},
  port = 0,
): Promise<ChildServer> {
  const script = await bundledChild()
  const proc = spawn(process.execPath, [script], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    env: {
      ...process.env,
      POLYPHONY_DATA: dataDir,
      PORT: String(port),
      POLYPHONY_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  let out = ''
  proc.stdout!.on('data', (d) => (out += String(d)))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  )
  const listening = await within(
    new Promise<number>((resolve, reject) => {
      proc.stderr!.on('data', (d) => {
        err += String(d)
        const m = /serving http:\/\/localhost:(\d+)/.exec(err)
        if (m) resolve(Number(m[1]))
      })
      proc.once('exit', () => reject(new Error('server exited early: ' + err + out)))
    }),
    20_000,
    'server start',
  )
  return {
    proc,
    port: listening,
    wsUrl: `ws://127.0.0.1:${listening}`,
    httpUrl: `http://127.0.0.1:${listening}`,
    exited,
    stderr: () => err,
    stdout: () => out,
  }
}
