// Durability with real child processes, one data directory through the whole file:
// SIGKILL after acknowledgements loses nothing (E1); kills at random points while a client
// types, restart, the client resends and nothing acknowledged is lost (E1, E2); SIGTERM
// flushes, closes links with "going away" and exits 0 (E8), SIGINT too; the open-mode warning
// of `npm start` (B7). The server is server/main.ts itself. Each start costs ~1.5 s
// on a small machine, so the tests share the server between them.
import { rmSync } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/text-doc.ts'
import { SqliteStorage } from '../server/storage.ts'
import { FaultyStorage } from './support/server-faulty-storage.ts'
import {
  client,
  restText,
  spawnServer,
  startServer,
  tempDir,
  waitFor,
  within,
} from './support/server-harness.ts'
import type { ChildServer } from './support/server-harness.ts'
import type { Connection } from '../client/connection.ts'

const dir = tempDir()
let s: ChildServer
let port = 0
let c: Connection

function covers(a: Record<string, number>, b: Record<string, number>): boolean {
  for (const k in b) if ((a[k] ?? 0) < b[k]!) return false
  return true
}

test('B7: npm start without a secret says so loudly; with one it does not', async () => {
  await restart()
  assert.match(s.stdout(), /OPEN MODE/)
  assert.match(s.stderr(), /OPEN MODE/)
  s.proc.kill('SIGKILL')
  await s.exited
  // On stderr even when the log level hides warnings.
  s = await spawnServer(dir, { POLYPHONY_LOG_LEVEL: 'error' }, port)
  assert.not.match(s.stdout(), /OPEN MODE/)
  assert.match(s.stderr(), /OPEN MODE/)
  s.proc.kill('SIGKILL')
  await s.exited
  s = await spawnServer(dir, { POLYPHONY_SECRET: 'x' }, port)
  assert.not.match(s.stdout(), /OPEN MODE/)
  assert.not.match(s.stderr(), /OPEN MODE/)
  s.proc.kill('SIGKILL')
  await s.exited
})

async function restart(): Promise<void> {
  s = await spawnServer(dir, {}, port)
  port = s.port
}

test.after(() => {
  c?.close()
  s?.proc.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

test('E1: SIGKILL after acknowledgements, restart: nothing acknowledged is lost', async () => {
  await restart()
  c = client(s.wsUrl, 'k', { doc: new TextDoc('writer') })
  await within(c.synced, 10_000, 'synced')
  for (let i = 0; i < 300; i++) c.doc.insert(c.doc.length, `${i} `)
  await waitFor(() => c.allAcknowledged, 'all acknowledged', 10_000)
  const acked = c.doc.toString()
  s.proc.kill('SIGKILL')
  assert.is((await s.exited).signal, 'SIGKILL')
  await restart()
  assert.is(await restText(s.httpUrl, 'k'), acked)
})

test('E1/E2: kills at random points while typing; the client resends; nothing acked lost', async () => {
  let typing = true
  let n = 0
  const typer = (async () => {
    while (typing) {
      c.doc.insert(c.doc.length, `<${n++}>`)
      await new Promise((r) => setTimeout(r, 1))
    }
  })()
  try {
    await waitFor(() => c.status === 'synced', 'client back', 10_000)
    for (let round = 0; round < 2; round++) {
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200))
      const acked = { ...c.ackedVersion() }
      s.proc.kill('SIGKILL')
      await s.exited
      await restart()
      // Everything acknowledged before the kill is there at once (E1); the store loads (E2).
      const got = (await (await fetch(`${s.httpUrl}/api/docs/k`)).json()) as {
        version: Record<string, number>
      }
      assert.ok(covers(got.version, acked), `round ${round}: acknowledged events survive`)
    }
  } finally {
    typing = false
    await typer
  }
  await waitFor(() => c.allAcknowledged && c.status === 'synced', 'client resent all', 15_000)
  assert.ok(n > 20, `typed ${n} times`)
  assert.is(await restText(s.httpUrl, 'k'), c.doc.toString())
})

test('E8: SIGTERM flushes, closes links with going away, exits 0', async () => {
  const reasons: string[] = []
  c.on('status', (st, why) => {
    if (st === 'offline') reasons.push(why ?? '')
  })
  c.doc.insert(0, 'graceful ')
  await waitFor(() => c.allAcknowledged, 'acknowledged')
  const expected = c.doc.toString()
  c.close()
  const d = client(s.wsUrl, 'k', { doc: new TextDoc('watcher') })
  const dReasons: string[] = []
  d.on('status', (st, why) => {
    if (st === 'offline') dReasons.push(why ?? '')
  })
  await within(d.synced, 10_000, 'watcher synced')
  s.proc.kill('SIGTERM')
  const exit = await within(s.exited, 10_000, 'exit after SIGTERM')
  assert.is(exit.code, 0)
  await waitFor(() => dReasons.length > 0, 'watcher offline')
  assert.match(dReasons[0]!, /going away/)
  d.close()
  await restart()
  assert.is(await restText(s.httpUrl, 'k'), expected)
  // SIGINT (Ctrl-C) shuts down the same way.
  s.proc.kill('SIGINT')
  assert.is((await within(s.exited, 10_000, 'exit after SIGINT')).code, 0)
})

test('E8: shutdown ends while clients keep typing; everything acknowledged is stored', async () => {
  const dataDir = tempDir()
  const storage = new FaultyStorage(await SqliteStorage.open({ dataDir, commitIntervalMs: 0 }))
  const ts = await startServer({ storage, dataDir })
  const typists = ['carol', 'erin'].map((n) => client(ts.wsUrl, 'sd', { doc: new TextDoc(n) }))
  let typing = true
  try {
    await within(Promise.all(typists.map((t) => t.synced)), 5000, 'synced')
    // Slow writes: each link has a backlog when the server is told to stop.
    storage.faults.appendDelayMs = 50
    const typed = typists.map(async (t) => {
      for (let i = 0; typing && i < 2000; i++) {
        t.doc.insert(t.doc.length, 'x')
        await new Promise((r) => setTimeout(r, 5))
      }
    })
    await new Promise((r) => setTimeout(r, 1000))
    const t0 = performance.now()
    await within(ts.server.close(), 8000, 'server.close() while typing goes on')
    const took = performance.now() - t0
    assert.ok(typing, `closed while they typed (${took.toFixed(0)} ms)`)
    typing = false
    await Promise.all(typed)
    const acked = typists.map((t) => [t.doc.agent, t.ackedVersion()[t.doc.agent] ?? 0] as const)
    for (const t of typists) t.close()
    const reopened = await SqliteStorage.open({ dataDir })
    const stored = (await reopened.load('sd'))!
    await reopened.close()
    const doc = stored.snapshot === null ? new TextDoc('r') : TextDoc.load(stored.snapshot, 'r')
    for (const u of stored.updates) doc.applyUpdate(u)
    for (const [agent, n] of acked) {
      assert.ok(n > 0, `${agent}: something acknowledged`)
      assert.ok((doc.version()[agent] ?? 0) >= n, `${agent}: ${n} acknowledged, all stored`)
    }
  } finally {
    typing = false
    for (const t of typists) t.close()
    await ts.stop()
  }
})

test.run()
