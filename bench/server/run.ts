/**
 * `npm run bench:server`: server load benchmark, ours against Hocuspocus and the y-websocket
 * server, in one run, printing the figures side by side and as ratios.
 *
 * Each server runs in its own process (with --expose-gc); load clients run in two other worker
 * processes. Scenarios:
 * 1. fan-out: N clients on one document, R edits/s in total; latency from an edit's send to its
 *    receipt at every other client (p50/p95/p99), and server CPU per delivered edit (one edit
 *    reaching one client): of the whole process (ours includes its SQLite worker thread, which
 *    stores every edit durably; the peers keep documents in memory) and of the main thread alone.
 * 2. memory: 1,000 documents x 2 clients; server heap (after GC) per loaded document and per
 *    extra connection.
 * 3. cold join: a document built from the automerge-paper trace (~260k edits) is uploaded, then
 *    a fresh client joins: time to synced and bytes received.
 *
 * Flags: `--quick` (fewer and shorter runs), `--servers=ours,hocuspocus,ywebsocket`,
 * `--only=fanout,memory,join`, `--sizes=10,50`, `--rates=100,500` (fan-out grid), `--warmup=MS`
 * (typing before the measured window), `--server-warmup=MS` (a session on another document
 * first), `--profile=DIR` (CPU profiles of every process).
 * Environment: SERVER_FLAGS, extra Node/V8 flags for the server processes (experiments, e.g.
 * `--no-concurrent-recompilation`); SNAP_DIR, see server-proc.ts; RECORD_DIR, see record.ts.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ServerKind } from './adapters.ts'
import { statCpuUs } from './proc-cpu.ts'

const args = process.argv.slice(2)
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1]
const quick = args.includes('--quick')
const servers = (flag('servers')?.split(',') ?? [
  'ours',
  'hocuspocus',
  'ywebsocket',
]) as ServerKind[]
const only = new Set(flag('only')?.split(',') ?? ['fanout', 'memory', 'join'])
/**
 * `--warmup=MS`: typing before the measured window (default 5 s; 1 s before 2026-11-27 18:00
 * UTC). In their first seconds the load processes and servers run code V8 has not optimised
 * yet, several times slower: with 1 s, ours at 50 clients x 100 edits/s had a p99 of 230-400 ms
 * (load-process stalls), with 5-8 s 12-17 ms (Hocuspocus 72 -> 18-23). Where the load processes
 * saturate (200 clients; 50 at 500 edits/s and up), a longer warm-up lets them fall further
 * behind before the window, and ours then fare worse against the peers: an Eg-walker replica's
 * cost per received edit grows with its lag (server/README.md has both runs).
 */
const warmupFlag = flag('warmup') === undefined ? undefined : Number(flag('warmup'))
if (warmupFlag !== undefined && !(warmupFlag >= 0))
  throw new Error(`--warmup=${flag('warmup')}: not a number of ms`)
/**
 * `--server-warmup=MS`: before a fan-out scenario, the new server process serves a session on
 * another document (10 clients, 500 edits/s, both load processes) for this long, default 6 s
 * (1 s with --quick; 0: none), the same for every server, so that the measured window sees less
 * of V8 compiling: in a process 10 s old, V8's compiler threads were a quarter of our server's
 * CPU at 200 x 100. Less, not none: code the small session never ran (or ran with other types)
 * is compiled, or compiled again, during the measured session, and at 100 incoming edits a
 * second our integration path gets hot only 12-17 s into the process (server/README.md, stops
 * 21 and 28). Warm-ups shaped like the measured session did not change the figures measurably.
 */
const serverWarmupMs = Number(flag('server-warmup') ?? (quick ? 1000 : 6000))
if (!(serverWarmupMs >= 0))
  throw new Error(`--server-warmup=${flag('server-warmup')}: not a number of ms`)
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url))
/**
 * `--profile=DIR`: CPU profiles of the server and worker processes, one folder each in DIR (the
 * main thread's profile is the largest file of a folder).
 */
const profileDir = flag('profile')
const profArgs = (what: string) =>
  profileDir
    ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/${what}-${Date.now()}-${profileNo++}`]
    : []
let profileNo = 0
const TIMEOUT_MS = 120_000

/** A child process answering IPC requests one at a time. */
class Proc {
  private waiting: ((m: unknown) => void) | null = null
  private exited: string | null = null
  constructor(readonly child: ChildProcess) {
    child.on('message', (m) => {
      const w = this.waiting
      this.waiting = null
      w?.(m)
    })
    child.once('exit', (code, signal) => {
      this.exited = `process exited (${code ?? signal})`
      const w = this.waiting
      this.waiting = null
      w?.({ ok: false, error: this.exited })
    })
  }
  request<T>(msg: object): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.exited !== null) return reject(new Error(this.exited))
      const timer = setTimeout(
        () => reject(new Error(`no answer to ${JSON.stringify(msg).slice(0, 80)}`)),
        TIMEOUT_MS,
      )
      this.waiting = (m) => {
        clearTimeout(timer)
        const r = m as { ok?: boolean; res?: T; error?: string }
        if (r.ok === false) reject(new Error(r.error))
        else resolve((r.ok === true ? r.res : m) as T)
      }
      this.child.send(msg)
    })
  }
  kill(): void {
    this.child.kill('SIGKILL')
  }
  /** Asks a worker to exit (so a CPU profile gets written), SIGKILL after 5 s. */
  async exit(): Promise<void> {
    if (this.exited !== null) return
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()))
    this.child.send({ cmd: 'exit' })
    const timer = setTimeout(() => this.kill(), 5000)
    await gone
    clearTimeout(timer)
  }
}

const serverFlags = process.env.SERVER_FLAGS?.split(' ').filter(Boolean) ?? []

async function startServer(kind: ServerKind): Promise<{ proc: Proc; url: string }> {
  const child = fork(here('./server-proc.ts'), [kind], {
    execArgv: [...profArgs(`server-${kind}`), ...serverFlags, '--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += String(d)
      const m = /PORT (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (code) => reject(new Error(`${kind} server exited ${code}`)))
  })
  return { proc: new Proc(child), url: `ws://127.0.0.1:${port}` }
}

async function startWorker(): Promise<Proc> {
  const child = fork(here('./load-worker.ts'), [], {
    execArgv: [...profArgs('worker'), '--max-old-space-size=4096', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  await new Promise<void>((r) => child.once('message', () => r()))
  return new Proc(child)
}

type Stats = { cpuUs: number; mainUs: number; heapUsed: number; rss: number }
const stats = (s: Proc, gc = true) => s.request<Stats>({ cmd: 'stats', gc })

/**
 * CPU time (µs) of process `pid`, all threads and the main thread alone, read from /proc at the
 * moment of the call (Linux, 10 ms ticks). A saturated server answers a stats request late, so
 * the CPU it reports itself would cover another interval than the window's; this does not wait
 * for it. Elsewhere, the server's own answer.
 */
async function cpuOf(proc: Proc): Promise<{ cpuUs: number; mainUs: number }> {
  const pid = proc.child.pid!
  try {
    return {
      cpuUs: statCpuUs(`/proc/${pid}/stat`),
      mainUs: statCpuUs(`/proc/${pid}/task/${pid}/stat`),
    }
  } catch {
    return stats(proc, false)
  }
}

const sleepUntil = (t: number) =>
  new Promise((r) => setTimeout(r, Math.max(0, t - (performance.timeOrigin + performance.now()))))

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

interface FanoutRow {
  p50: number
  p95: number
  p99: number
  cpuPerDelivered: number
  /** Main-thread CPU per delivered edit, µs. */
  mainPerDelivered: number
  /** Load-client CPU per received edit, µs (both worker processes). */
  clientPerReceived: number
  delivered: number
  expected: number
  /**
   * Edits the load clients sent per second in the window: below the nominal rate when their
   * processes are saturated (a client that falls behind its schedule skips, never bursts).
   */
  sentPerSecond: number
}

async function fanout(kind: ServerKind, n: number, rate: number): Promise<FanoutRow> {
  const { proc, url } = await startServer(kind)
  const workers = await Promise.all([startWorker(), startWorker()])
  try {
    if (serverWarmupMs > 0) {
      // A session on another document first (--server-warmup).
      await Promise.all(
        workers.map((w) => w.request({ cmd: 'open', kind, url, docs: Array(5).fill('warm') })),
      )
      const t = performance.timeOrigin + performance.now() + 100
      await Promise.all(
        workers.map((w) =>
          w.request({
            cmd: 'type',
            t0: t,
            warmupMs: serverWarmupMs,
            windowMs: 1,
            drainMs: 300,
            intervalMs: 20,
          }),
        ),
      )
      await Promise.all(workers.map((w) => w.request({ cmd: 'close' })))
    }
    const docId = `fan-${n}-${rate}`
    const half = n / 2
    await Promise.all(
      workers.map((w, i) =>
        w.request({
          cmd: 'open',
          kind,
          url,
          docs: Array(i === 0 ? Math.ceil(half) : Math.floor(half)).fill(docId),
        }),
      ),
    )
    const warmupMs = warmupFlag ?? (quick ? 500 : 5000)
    const windowMs = quick ? 1500 : 4000
    const drainMs = 1500
    const t0 = performance.timeOrigin + performance.now() + 200
    const intervalMs = (n * 1000) / rate
    const runs = workers.map((w) =>
      w.request<{
        latencies: number[]
        delivered: number
        sent: number
        cpuUs: number
        received: number
      }>({
        cmd: 'type',
        t0,
        warmupMs,
        windowMs,
        drainMs,
        intervalMs,
      }),
    )
    await sleepUntil(t0 + warmupMs)
    const s0 = await cpuOf(proc)
    await sleepUntil(t0 + warmupMs + windowMs)
    const s1 = await cpuOf(proc)
    const results = await Promise.all(runs)
    const lat = results.flatMap((r) => r.latencies).sort((a, b) => a - b)
    const delivered = results.reduce((s, r) => s + r.delivered, 0)
    const sent = results.reduce((s, r) => s + r.sent, 0)
    return {
      p50: pct(lat, 50),
      p95: pct(lat, 95),
      p99: pct(lat, 99),
      cpuPerDelivered: (s1.cpuUs - s0.cpuUs) / Math.max(1, delivered),
      mainPerDelivered: (s1.mainUs - s0.mainUs) / Math.max(1, delivered),
      clientPerReceived:
        results.reduce((s, r) => s + r.cpuUs, 0) /
        Math.max(
          1,
          results.reduce((s, r) => s + r.received, 0),
        ),
      delivered,
      expected: sent * (n - 1),
      sentPerSecond: sent / (windowMs / 1000),
    }
  } finally {
    await Promise.all(workers.map((w) => w.exit()))
    await proc.request({ cmd: 'stop' }).catch(() => undefined)
    proc.kill()
  }
}

async function memory(kind: ServerKind, docs: number) {
  const { proc, url } = await startServer(kind)
  const workers = await Promise.all([startWorker(), startWorker()])
  try {
    const ids = Array.from({ length: docs }, (_, i) => `mem-${i}`)
    const h0 = await stats(proc)
    const halves = [ids.slice(0, docs / 2), ids.slice(docs / 2)]
    await Promise.all(workers.map((w, i) => w.request({ cmd: 'open', kind, url, docs: halves[i] })))
    await Promise.all(workers.map((w) => w.request({ cmd: 'seed', chars: 20 })))
    const h1 = await stats(proc)
    await Promise.all(
      workers.map((w, i) => w.request({ cmd: 'open', kind, url, docs: halves[1 - i] })),
    )
    await new Promise((r) => setTimeout(r, 500))
    const h2 = await stats(proc)
    const perConn = (h2.heapUsed - h1.heapUsed) / docs
    return {
      perDocWithConn: (h1.heapUsed - h0.heapUsed) / docs,
      perDoc: (h1.heapUsed - h0.heapUsed) / docs - perConn,
      perConn,
    }
  } finally {
    await Promise.all(workers.map((w) => w.exit()))
    await proc.request({ cmd: 'stop' }).catch(() => undefined)
    proc.kill()
  }
}

async function coldJoin(kind: ServerKind) {
  const { proc, url } = await startServer(kind)
  const workers = await Promise.all([startWorker(), startWorker()])
  try {
    const up = await workers[0]!.request<{ length: number; expected: number; events: number }>({
      cmd: 'trace',
      kind,
      url,
      docId: 'big',
      name: 'automerge-paper',
    })
    if (up.length !== up.expected)
      throw new Error(`${kind}: uploaded ${up.length} chars, expected ${up.expected}`)
    const joins: { ms: number; bytes: number; length: number }[] = []
    for (let i = 0; i < (quick ? 2 : 5); i++) {
      const j = await workers[1]!.request<{ ms: number; bytes: number; length: number }>({
        cmd: 'join',
        kind,
        url,
        docId: 'big',
      })
      if (j.length !== up.expected)
        throw new Error(`${kind}: joined with ${j.length} chars, expected ${up.expected}`)
      joins.push(j)
    }
    joins.sort((a, b) => a.ms - b.ms)
    const med = joins[Math.floor(joins.length / 2)]!
    return { ms: med.ms, bytes: med.bytes, chars: up.expected, events: up.events }
  } finally {
    await Promise.all(workers.map((w) => w.exit()))
    await proc.request({ cmd: 'stop' }).catch(() => undefined)
    proc.kill()
  }
}

/** `f()`, or `null` (with the error printed) when it fails: one failed run does not end the benchmark. */
async function attempt<T>(what: string, f: () => Promise<T>): Promise<T | null> {
  try {
    return await f()
  } catch (err) {
    console.log(`(${what} failed: ${String((err as Error).message).split('\n')[0]})`)
    return null
  }
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a')
const ratio = (ours: number, peer: number) =>
  Number.isFinite(ours) && Number.isFinite(peer) && peer > 0 ? (ours / peer).toFixed(2) : 'n/a'

const FAILED: FanoutRow = {
  p50: NaN,
  p95: NaN,
  p99: NaN,
  cpuPerDelivered: NaN,
  mainPerDelivered: NaN,
  clientPerReceived: NaN,
  delivered: 0,
  expected: 1,
  sentPerSecond: NaN,
}

async function main() {
  console.log(
    `# Server load benchmark (${quick ? 'quick' : 'full'}): ${servers.join(', ')}; each server in its own process, clients in 2 worker processes`,
  )
  if (only.has('join')) {
    console.log('\n## Cold join of the automerge-paper document (~260k edits)\n')
    console.log(
      '| server | chars | time to synced (ms, median) | bytes received | bytes per char |',
    )
    console.log('| --- | --- | --- | --- | --- |')
    const join: Record<string, { ms: number; bytes: number; chars: number } | null> = {}
    for (const s of servers) {
      const j = (join[s] = await attempt(`${s} cold join`, () => coldJoin(s)))
      if (j)
        console.log(
          `| ${s} | ${j.chars} | ${f1(j.ms)} | ${j.bytes} | ${(j.bytes / j.chars).toFixed(2)} |`,
        )
    }
    const o = join[servers[0]!]
    for (const s of servers.slice(1)) {
      const p = join[s]
      if (o && p)
        console.log(
          `${s} time / ours time: ${(p.ms / o.ms).toFixed(1)}x; bytes ours/${s}: ${ratio(o.bytes, p.bytes)}`,
        )
    }
  }
  if (only.has('memory')) {
    const docs = quick ? 200 : 1000
    console.log(`\n## Memory: ${docs} documents x 2 clients (server heap after GC)\n`)
    console.log(
      '| server | KB per document (+ first connection) | KB per document alone | KB per extra connection |',
    )
    console.log('| --- | --- | --- | --- |')
    const mem: Record<string, { perDocWithConn: number; perDoc: number; perConn: number } | null> =
      {}
    for (const s of servers) {
      const m = (mem[s] = await attempt(`${s} memory`, () => memory(s, docs)))
      if (m)
        console.log(
          `| ${s} | ${f1(m.perDocWithConn / 1024)} | ${f1(m.perDoc / 1024)} | ${f1(m.perConn / 1024)} |`,
        )
    }
    const o = mem[servers[0]!]
    for (const s of servers.slice(1)) {
      const p = mem[s]
      if (o && p)
        console.log(
          `ratio ours/${s}: per document ${ratio(o.perDoc, p.perDoc)}, per extra connection ${ratio(o.perConn, p.perConn)}`,
        )
    }
  }
  if (only.has('fanout')) {
    const sizes = flag('sizes')?.split(',').map(Number) ?? (quick ? [10, 50] : [10, 50, 200])
    const rates = flag('rates')?.split(',').map(Number) ?? (quick ? [100, 500] : [100, 500, 2000])
    console.log(
      '\n## Fan-out latency (ms, send -> receipt at every other client); edits sent per second in the window (the nominal rate unless the load processes are saturated); server CPU per delivered edit (µs: all threads, and the main thread alone); load-client CPU per received edit (µs)\n',
    )
    const columns = [
      'clients',
      'edits/s',
      ...servers.flatMap((s) => [
        `${s} p50 / p95 / p99`,
        `${s} sent/s`,
        `${s} server CPU µs`,
        `${s} client µs`,
      ]),
      ...servers.slice(1).flatMap((s) => [`p99 ours/${s}`, `CPU ours/${s}`]),
    ]
    console.log(`| ${columns.join(' | ')} |`)
    console.log('|' + ' --- |'.repeat(columns.length))
    for (const n of sizes) {
      for (const r of rates) {
        const rows: Record<string, FanoutRow> = {}
        for (const s of servers)
          rows[s] = (await attempt(`${s} ${n}x${r}`, () => fanout(s, n, r))) ?? FAILED
        const cells = servers.map((s) => {
          const x = rows[s]!
          const lost =
            x.delivered < x.expected * 0.99
              ? ` (${((100 * x.delivered) / Math.max(1, x.expected)).toFixed(0)}% delivered)`
              : ''
          const cpu =
            x.delivered > 0 ? `${f1(x.cpuPerDelivered)} (main ${f1(x.mainPerDelivered)})` : 'n/a'
          const sent = Math.round(x.sentPerSecond)
          return `${f1(x.p50)} / ${f1(x.p95)} / ${f1(x.p99)}${lost} | ${sent} | ${cpu} | ${f1(x.clientPerReceived)}`
        })
        const ours = rows[servers[0]!]!
        const ratios = servers
          .slice(1)
          .map(
            (s) =>
              `${ratio(ours.p99, rows[s]!.p99)} | ${ours.delivered > 0 ? ratio(ours.cpuPerDelivered, rows[s]!.cpuPerDelivered) : 'n/a'}`,
          )
        console.log(`| ${[n, r, ...cells, ...ratios].join(' | ')} |`)
      }
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
