/**
 * A load-client process for the server benchmark. Commands over IPC (each answered once):
 * - `open { kind, url, docs: string[][] }`: one client per entry of each inner list (the doc id);
 *   answers when all are synced.
 * - `type { t0, warmupMs, windowMs, drainMs, intervalMs }`: every client inserts a marker (its
 *   send time, base 36 tenths of a ms since `t0`, then `|`) every `intervalMs` (staggered) until
 *   the window ends; receivers turn each marker of an edit sent inside the window into a latency.
 *   Answers `{ latencies, delivered, sent, cpuUs, received }`: this process's CPU inside the window
 *   and the remote edits its clients received inside it (client cost per received edit).
 * - `seed { chars }`: the first client of each document inserts `chars` characters.
 * - `trace { name }`: the first client replays a sequential trace, answers once acknowledged.
 * - `join { kind, url, docId }`: a fresh client joins; answers `{ ms, bytes, length }`.
 * - `close`; `exit` (ends the process at once, no answer: a CPU profile gets written).
 */
import { loadSequential } from '../../test/support/traces.ts'
import { openClient, type BenchClient, type ServerKind } from './adapters.ts'

const now = () => performance.timeOrigin + performance.now()
let clients: BenchClient[] = []
let firstOfDoc: BenchClient[] = []

type Msg =
  | { cmd: 'open'; kind: ServerKind; url: string; docs: string[] }
  | {
      cmd: 'type'
      t0: number
      warmupMs: number
      windowMs: number
      drainMs: number
      intervalMs: number
    }
  | { cmd: 'seed'; chars: number }
  | { cmd: 'trace'; kind: ServerKind; url: string; docId: string; name: string }
  | { cmd: 'join'; kind: ServerKind; url: string; docId: string }
  | { cmd: 'close' }
  | { cmd: 'exit' }

async function handle(m: Msg): Promise<unknown> {
  switch (m.cmd) {
    case 'open': {
      const seen = new Set<string>()
      const opened = await Promise.all(m.docs.map((d) => openClient(m.kind, m.url, d)))
      m.docs.forEach((d, i) => {
        if (!seen.has(d)) {
          seen.add(d)
          firstOfDoc.push(opened[i]!)
        }
      })
      clients.push(...opened)
      await Promise.all(opened.map((c) => c.synced))
      return { opened: opened.length }
    }
    case 'seed': {
      for (const c of firstOfDoc) c.insert(0, 'x'.repeat(m.chars))
      await new Promise((r) => setTimeout(r, 500))
      return {}
    }
    case 'type':
      return typeLoad(m)
    case 'trace': {
      const trace = loadSequential(m.name)
      const c = await openClient(m.kind, m.url, m.docId, (edit) => {
        for (const [pos, del, ins] of trace.patches) {
          if (del > 0) edit.del(pos, del)
          if (ins.length > 0) edit.ins(pos, ins)
        }
      })
      await c.synced
      await new Promise((r) => setTimeout(r, 1000))
      clients.push(c)
      return { length: c.length(), expected: trace.endContent.length, events: trace.patches.length }
    }
    case 'join': {
      const t = performance.now()
      const c = await openClient(m.kind, m.url, m.docId)
      await c.synced
      const ms = performance.now() - t
      const out = { ms, bytes: c.bytesReceived(), length: c.length() }
      c.close()
      return out
    }
    case 'close':
      for (const c of clients) c.close()
      clients = []
      firstOfDoc = []
      return {}
  }
}

async function typeLoad(m: Extract<Msg, { cmd: 'type' }>) {
  const start = m.t0 + m.warmupMs
  const end = start + m.windowMs
  const latencies: number[] = []
  let delivered = 0
  let sent = 0
  let received = 0
  let cpu0: NodeJS.CpuUsage | null = null
  let cpuUs = 0
  for (const c of clients) {
    c.onRemoteInsert((text) => {
      const at = now()
      for (const mk of text.matchAll(/([0-9a-z]+)\|/g)) {
        if (cpu0 !== null && at < end) received++
        const sentAt = m.t0 + parseInt(mk[1]!, 36) / 10
        if (sentAt >= start && sentAt < end) {
          latencies.push(at - sentAt)
          delivered++
        }
      }
    })
  }
  const next = clients.map(() => m.t0 + Math.random() * m.intervalMs)
  await new Promise<void>((resolve) => {
    const tick = () => {
      const t = now()
      if (t >= start && cpu0 === null) cpu0 = process.cpuUsage()
      if (t >= end) {
        const d = process.cpuUsage(cpu0 ?? undefined)
        cpuUs = d.user + d.system
        return resolve()
      }
      for (let i = 0; i < clients.length; i++) {
        if (t >= next[i]!) {
          const c = clients[i]!
          const mark = Math.round((t - m.t0) * 10).toString(36) + '|'
          c.insert(Math.random(), mark)
          if (t >= start) sent++
          next[i]! += m.intervalMs
          if (next[i]! < t - m.intervalMs) next[i] = t // fell behind: do not burst to catch up
        }
      }
      setTimeout(tick, 1)
    }
    tick()
  })
  await new Promise((r) => setTimeout(r, m.drainMs))
  return { latencies, delivered, sent, cpuUs, received }
}

process.on('message', (m: Msg) => {
  if (m.cmd === 'exit') process.exit(0)
  handle(m).then(
    (res) => process.send!({ ok: true, res }),
    (err: Error) => process.send!({ ok: false, error: String(err?.stack ?? err) }),
  )
})
process.send!({ ready: true })
