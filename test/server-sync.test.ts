// Integration: real server on port 0 with real SQLite; clients over ws converge with the REST
// text; offline edits arrive after the server returns; REST, health, metrics and demo routes;
// a document's fan-out window follows its audience.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/text-doc.ts'
import { decodeUpdate } from '../shared/encoding.ts'
import { sortVV } from './support/netsim.ts'
import {
  client,
  restText,
  startServer,
  tempDir,
  waitFor,
  within,
} from './support/server-harness.ts'
import { rmSync } from 'node:fs'
import { SERVER_LINK_TUNING, fanoutWindowMs } from '../server/connection.ts'

test('12 clients typing concurrently converge with the REST text', async () => {
  const ts = await startServer()
  const clients = Array.from({ length: 12 }, () => client(ts.wsUrl, 'shared doc'))
  try {
    await within(Promise.all(clients.map((c) => c.synced)), 5000, 'all synced')
    let seed = 42
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n
    for (let round = 0; round < 30; round++) {
      for (const [i, c] of clients.entries()) {
        const d = c.doc
        if (d.length > 5 && rnd(4) === 0) d.delete(rnd(d.length - 2), 2)
        else d.insert(rnd(d.length + 1), String.fromCharCode(97 + i) + (round % 10))
      }
      if (round % 5 === 0) await new Promise((r) => setTimeout(r, 5))
    }
    const ref = clients[0]!.doc
    await waitFor(
      () => clients.every((c) => c.doc.toString() === ref.toString()),
      'clients converge',
      10_000,
    )
    const expected = ref.toString()
    assert.ok(expected.length > 100, `document has content (${expected.length})`)
    // The hub may still make a merge event (text unchanged) that reaches the clients a moment
    // later: wait for the versions to agree too.
    type DocJson = { id: string; text: string; version: Record<string, number> }
    const read = async () =>
      (await (await fetch(`${ts.httpUrl}/api/docs/shared%20doc`)).json()) as DocJson
    let json = await read()
    const same = (a: Record<string, number>, b: Record<string, number>) =>
      JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort())
    // (The client's version as of each read: a trailing merge event may reach it just after.)
    let refVersion = ref.version()
    const end = Date.now() + 5000
    while (!(json.text === expected && same(json.version, refVersion)) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20))
      json = await read()
      refVersion = ref.version()
    }
    assert.is(await restText(ts.httpUrl, 'shared doc'), ref.toString())
    assert.is(json.id, 'shared doc')
    assert.is(json.text, ref.toString())
    assert.equal(json.version, refVersion)
    assert.ok(
      clients.every((c) => c.doc.toString() === ref.toString()),
      'clients still agree',
    )
  } finally {
    for (const c of clients) c.close()
    await ts.stop()
  }
})

test('a new client catches up with the current state', async () => {
  const ts = await startServer()
  const a = client(ts.wsUrl, 'late')
  try {
    await a.synced
    for (let i = 0; i < 200; i++) a.doc.insert(a.doc.length, 'line ' + i + '\n')
    a.doc.delete(0, 100)
    await within(new Promise<void>((r) => a.on('ack', () => r())), 5000, 'ack')
    const b = client(ts.wsUrl, 'late')
    await within(b.synced, 5000, 'late joiner synced')
    assert.is(b.doc.toString(), a.doc.toString())
    b.close()
  } finally {
    a.close()
    await ts.stop()
  }
})

test('edits made while the server is down arrive after it returns', async () => {
  const dataDir = tempDir()
  let ts = await startServer({ dataDir })
  const port = ts.server.port
  const a = client(ts.wsUrl, 'offline')
  const statuses: string[] = []
  a.on('status', (s) => statuses.push(s))
  try {
    await a.synced
    a.doc.insert(0, 'before ')
    await waitFor(() => statuses.includes('synced'), 'synced')
    await new Promise((r) => setTimeout(r, 100))
    await ts.stop(true)
    await waitFor(() => a.status === 'offline' || a.status === 'connecting', 'client offline')
    a.doc.insert(a.doc.length, 'during')
    ts = await startServer({ dataDir, port })
    const fresh = client(ts.wsUrl, 'offline')
    await waitFor(() => fresh.doc.toString() === 'before during', 'offline edit arrives', 10_000)
    assert.is(await restText(ts.httpUrl, 'offline'), 'before during')
    assert.ok(statuses.includes('offline'), statuses.join(','))
    fresh.close()
  } finally {
    a.close()
    await ts.stop(true)
    rmSync(dataDir, { recursive: true, force: true })
  }
})

test('connect refuses a missing WebSocket implementation and an empty docId', () => {
  const g = globalThis as { WebSocket?: unknown }
  const saved = g.WebSocket
  g.WebSocket = undefined
  try {
    assert.throws(
      () => client('ws://127.0.0.1:1', 'x', { WebSocket: undefined as unknown as never }),
      /WebSocket/,
    )
  } finally {
    g.WebSocket = saved
  }
  assert.throws(() => client('ws://127.0.0.1:1', ''), RangeError)
})

test('health, metrics, demo page and bundle', async () => {
  const ts = await startServer()
  try {
    const h = await fetch(`${ts.httpUrl}/healthz`)
    assert.is(h.status, 200)
    assert.equal(await h.json(), { ok: true })
    const a = client(ts.wsUrl, 'm')
    await a.synced
    a.doc.insert(0, 'abc')
    await waitFor(() => a.status === 'synced', 'synced')
    await new Promise((r) => setTimeout(r, 100))
    const metrics = await (await fetch(`${ts.httpUrl}/metrics`)).text()
    for (const name of [
      'polyphony_connections 1',
      'polyphony_documents_loaded 1',
      'polyphony_events_received_total 3',
      'polyphony_fanout_seconds_bucket',
      'polyphony_storage_seconds_bucket{le="0.0005",op="append"}',
    ]) {
      assert.ok(metrics.includes(name), `metrics include ${name}`)
    }
    a.close()
    const page = await (await fetch(`${ts.httpUrl}/?doc=x`)).text()
    assert.match(page, /id="panes"/)
    assert.match(page, /src="\/demo.js"/)
    const css = await fetch(`${ts.httpUrl}/demo.css`)
    assert.is(css.status, 200)
    assert.match(css.headers.get('content-type') ?? '', /text\/css/)
    assert.match(await css.text(), /\.ProseMirror/)
    const js = await fetch(`${ts.httpUrl}/demo.js`)
    assert.is(js.status, 200)
    const body = await js.text()
    assert.ok(body.length > 1000, 'bundle has content')
    assert.match(body, /\/ws\//)
    const bad = await fetch(`${ts.httpUrl}/api/docs/${encodeURIComponent('a\u0001b')}`)
    assert.is(bad.status, 400)
  } finally {
    await ts.stop()
  }
})

test('REST and WebSocket name a document alike: ids with % and other escapes decode once', async () => {
  const ts = await startServer()
  const clients: ReturnType<typeof client>[] = []
  try {
    for (const id of ['a%41', '100%', 'ünï cödé/?#', 'a b']) {
      const c = client(ts.wsUrl, id)
      clients.push(c)
      await within(c.synced, 5000, `synced ${id}`)
      c.doc.insert(0, `text of ${id}`)
      await waitFor(() => c.allAcknowledged, `acked ${id}`)
      assert.is(await restText(ts.httpUrl, id), `text of ${id}`, id)
      const res = await fetch(`${ts.httpUrl}/api/docs/${encodeURIComponent(id)}`)
      assert.is(((await res.json()) as { id: string }).id, id)
    }
    // `a%41` and `aA` are two documents.
    assert.is(await restText(ts.httpUrl, 'aA'), '')
  } finally {
    for (const c of clients) c.close()
    await ts.stop()
  }
})

test('a document typed by a TextDoc and one by a client agree after save/load of the server', async () => {
  const dataDir = tempDir()
  let ts = await startServer({ dataDir, limits: { compactAfterUpdates: 5 } })
  const port = ts.server.port
  try {
    const a = client(ts.wsUrl, 'compact', { doc: new TextDoc('alice') })
    await a.synced
    for (let i = 0; i < 40; i++) {
      a.doc.insert(a.doc.length, `${i},`)
      await new Promise((r) => setTimeout(r, 2))
    }
    await waitFor(() => a.status === 'synced', 'synced')
    await new Promise<void>((r) => setTimeout(r, 100))
    const expected = a.doc.toString()
    a.close()
    await ts.stop(true)
    ts = await startServer({ dataDir, port })
    assert.is(await restText(ts.httpUrl, 'compact'), expected)
  } finally {
    await ts.stop(true)
    rmSync(dataDir, { recursive: true, force: true })
  }
})

test("a busy document's batches end with the server's merge event: edits name it, not all they saw", async () => {
  // 30 connections: batches 10 ms apart (fanoutWindowMs), a join before each. Joined only as
  // edits arrived (at most every 10 ms), a batch ended with the edits that came after the last
  // join, and every client's next edit named each of them as a parent: a mean of 5 parents
  // here, 186-193 of the 240 edits naming more than 3.
  const ts = await startServer()
  const clients = Array.from({ length: 30 }, () => client(ts.wsUrl, 'busy'))
  try {
    await within(Promise.all(clients.map((c) => c.synced)), 10_000, 'all synced')
    const parents: number[] = []
    for (const c of clients) {
      c.doc.on('update', (u: Uint8Array, origin: unknown) => {
        if (origin === undefined) parents.push(decodeUpdate(u).spans[0]!.parents.length)
      })
    }
    let seed = 7
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n
    for (let round = 0; round < 40; round++) {
      for (let k = 0; k < 6; k++) {
        const d = clients[rnd(clients.length)]!.doc
        d.insert(rnd(d.length + 1), 'x')
      }
      await new Promise((r) => setTimeout(r, 3 + rnd(10)))
    }
    const text = () => clients[0]!.doc.toString()
    await waitFor(() => clients.every((c) => c.doc.toString() === text()), 'converged', 10_000)
    const mean = parents.reduce((a, b) => a + b, 0) / parents.length
    const wide = parents.filter((n) => n > 3).length
    assert.ok(mean < 2.5, `mean parents of ${parents.length} edits: ${mean.toFixed(2)}`)
    assert.ok(
      wide < parents.length / 10,
      `edits naming more than 3 parents: ${wide} of ${parents.length}`,
    )
  } finally {
    for (const c of clients) c.close()
    await ts.stop(true)
    rmSync(ts.dataDir, { recursive: true, force: true })
  }
})

test('the server joins concurrent edits by a stored merge event; the next edit names one parent', async () => {
  const ts = await startServer()
  const clients = Array.from({ length: 6 }, () => client(ts.wsUrl, 'joined'))
  let restarted: Awaited<ReturnType<typeof startServer>> | null = null
  let stopped = false
  try {
    await within(Promise.all(clients.map((c) => c.synced)), 5000, 'all synced')
    // Every client types at once: their edits are concurrent, the server's heads many.
    for (const [i, c] of clients.entries()) c.doc.insert(0, `c${i}`)
    const hubAgent = () => Object.keys(clients[0]!.doc.version()).find((a) => a.startsWith('hub-'))
    await waitFor(
      () =>
        hubAgent() !== undefined &&
        clients.every(
          (c) =>
            JSON.stringify(sortVV(c.doc.version())) ===
            JSON.stringify(sortVV(clients[0]!.doc.version())),
        ),
      'clients hold the same events, a merge event among them',
      5000,
    )
    const text = clients[0]!.doc.toString()
    assert.ok(clients.every((c) => c.doc.toString() === text))
    // The next edit is made on the merge event alone.
    const sent: Uint8Array[] = []
    clients[0]!.doc.on('update', (u: Uint8Array) => void sent.push(u))
    clients[0]!.doc.insert(0, '!')
    assert.is(sent.length, 1)
    const parents = decodeUpdate(sent[0]!).spans[0]!.parents
    assert.equal(
      parents.map(([a]) => a.startsWith('hub-')),
      [true],
      `parents ${JSON.stringify(parents)}`,
    )
    await waitFor(() => clients.every((c) => c.doc.toString() === '!' + text), 'all see it', 5000)
    for (const c of clients) c.close()
    const version = clients[0]!.doc.version()
    await ts.stop(true)
    stopped = true
    // The merge event was stored like any edit: a restarted server loads it.
    restarted = await startServer({ dataDir: ts.dataDir })
    const json = (await (await fetch(`${restarted.httpUrl}/api/docs/joined`)).json()) as {
      text: string
      version: Record<string, number>
    }
    assert.is(json.text, '!' + text)
    assert.equal(json.version, version)
  } finally {
    for (const c of clients) c.close()
    if (restarted !== null) await restarted.stop()
    if (!stopped) await ts.stop(true)
    rmSync(ts.dataDir, { recursive: true, force: true })
  }
})

test('the fan-out window follows the audience: a budget of writes per second per document', async () => {
  // 1,500 writes/s by default: no window for one connection, 133 ms at 200.
  assert.equal(
    [1, 2, 3, 10, 50, 200].map((n) => fanoutWindowMs(n, SERVER_LINK_TUNING)),
    [0, 1, 2, 6, 33, 133],
  )
  assert.is(fanoutWindowMs(1, { batchDelayMs: 5, fanoutWritesPerSecond: 3000 }), 5)
  assert.is(fanoutWindowMs(200, { fanoutWritesPerSecond: Infinity }), 0)
  // One writer types 10 edits 15 ms apart with 8 listeners; each listener's replica counts the
  // updates it applies (one per relayed batch).
  const updatesSeen = async (fanoutWritesPerSecond: number) => {
    const ts = await startServer({ linkTuning: { fanoutWritesPerSecond } })
    const clients = Array.from({ length: 9 }, () => client(ts.wsUrl, 'audience'))
    try {
      await within(Promise.all(clients.map((c) => c.synced)), 5000, 'all synced')
      await new Promise((r) => setTimeout(r, 100))
      const seen = clients.slice(1).map(() => 0)
      clients.slice(1).forEach((c, i) =>
        c.doc.on('update', (_u: Uint8Array, origin: unknown) => {
          if (origin !== undefined) seen[i]!++
        }),
      )
      for (let i = 0; i < 10; i++) {
        clients[0]!.doc.insert(i, String(i))
        await new Promise((r) => setTimeout(r, 15))
      }
      await waitFor(
        () => clients.every((c) => c.doc.toString() === '0123456789'),
        'every listener has the 10 edits',
      )
      return Math.max(...seen)
    } finally {
      for (const c of clients) c.close()
      await ts.stop()
    }
  }
  // 9 connections at 30 writes/s: a 300 ms window. The typing takes 150 ms, and the writer's own
  // link batches too (its window grows while it sends), so its last edits may leave later: at
  // most three windows.
  const batched = await updatesSeen(30)
  assert.ok(batched <= 3, `${batched} updates per listener with a 300 ms window`)
  // With no budget every edit goes out on its own.
  const prompt = await updatesSeen(Infinity)
  assert.ok(prompt >= 8, `${prompt} updates per listener without a window`)
})

test.run()
