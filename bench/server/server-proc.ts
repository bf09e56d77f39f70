/**
 * One collaboration server in its own process for the load benchmark: `ours` (createServer with
 * SQLite in a temp dir), `hocuspocus` (@hocuspocus/server, in memory) or `ywebsocket`
 * (@y/websocket-server's setupWSConnection, in memory). Prints `PORT <n>` and answers IPC:
 * `{ cmd: 'stats', gc? }` -> `{ cpuUs, mainUs, heapUsed, rss }` (CPU of all threads, of the main
 * thread alone; heap after a full GC unless gc: false), `{ cmd: 'stop' }`.
 *
 * With SNAP_DIR set, each `stats` after a GC also writes a heap snapshot there (diff two to see
 * what a document or a connection holds).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer as createHttp } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeHeapSnapshot } from 'node:v8'
import { statCpuUs } from './proc-cpu.ts'

const kind = process.argv[2]
let port = 0
let stop: () => Promise<void> = async () => undefined

if (kind === 'ours') {
  const { pino } = await import('pino')
  const { createServer } = await import('../../server/create-server.ts')
  const dataDir = mkdtempSync(join(tmpdir(), 'polyphony-bench-'))
  const s = await createServer({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    logger: pino({ level: 'silent' }),
    // All load clients come from 127.0.0.1; the other limits stay at their defaults.
    limits: { maxConnectionsPerIp: 1_000_000, connectionBurstPerIp: 1_000_000 },
    // Experiments: BENCH_LINK_TUNING='{"batchDelayMs":2}' overrides SERVER_LINK_TUNING.
    linkTuning: JSON.parse(process.env.BENCH_LINK_TUNING ?? '{}'),
  })
  port = s.port
  stop = async () => {
    await s.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
} else if (kind === 'hocuspocus') {
  const { Server } = await import('@hocuspocus/server')
  const s = new Server({ port: 0, address: '127.0.0.1', quiet: true, stopOnSignals: false })
  await s.listen()
  port = s.address.port
  stop = () => s.destroy()
} else if (kind === 'ywebsocket') {
  const { WebSocketServer } = await import('ws')
  const { setupWSConnection } = await import('@y/websocket-server/utils')
  const wss = new WebSocketServer({ noServer: true })
  const http = createHttp((_req, res) => res.end('okay'))
  wss.on('connection', setupWSConnection)
  http.on('upgrade', (req, socket, head) =>
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)),
  )
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  port = (http.address() as AddressInfo).port
  stop = async () => {
    for (const c of wss.clients) c.terminate()
    http.close()
  }
} else {
  console.error(`unknown server kind ${kind}`)
  process.exit(2)
}

/**
 * CPU time of the main thread alone (Linux: /proc/self/task/PID/stat, 10 ms ticks), so the
 * SQLite worker thread can be told apart; NaN elsewhere.
 */
function mainThreadCpuUs(): number {
  try {
    return statCpuUs(`/proc/self/task/${process.pid}/stat`)
  } catch {
    return NaN
  }
}

process.stdout.write(`PORT ${port}\n`)
process.on('message', async (m: { cmd: string; gc?: boolean }) => {
  if (m.cmd === 'stats') {
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc && m.gc !== false) for (let i = 0; i < 3; i++) gc()
    const snapshots = process.env.SNAP_DIR
    if (snapshots && m.gc !== false) writeHeapSnapshot(`${snapshots}/s${Date.now()}.heapsnapshot`)
    const cpu = process.cpuUsage()
    const mem = process.memoryUsage()
    process.send!({
      cpuUs: cpu.user + cpu.system,
      mainUs: mainThreadCpuUs(),
      heapUsed: mem.heapUsed,
      rss: mem.rss,
    })
  } else if (m.cmd === 'stop') {
    await stop()
    process.exit(0)
  }
})
