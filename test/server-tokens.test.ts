// Integration: tokens on the WebSocket and REST (B1, B2, B5, B6, B7).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import WebSocket from 'ws'
import { signToken } from '../server/auth.ts'
import { CLOSE } from '../server/close-codes.ts'
import { Presence } from '../shared/presence.ts'
import { PROTOCOL_VERSION, WireState, decodeMessage, encodeMessage } from '../shared/protocol.ts'
import { TextDoc } from '../shared/text-doc.ts'
import {
  client,
  closeOf,
  rawSocket,
  restText,
  startServer,
  waitFor,
  within,
} from './support/server-harness.ts'

const secret = 'test-secret'

test('B1/B2: no, malformed, expired, badly signed and wrong-document tokens are refused', async () => {
  const ts = await startServer({ secret })
  try {
    const cases: [string | undefined, number, string][] = [
      [undefined, CLOSE.UNAUTHORIZED, 'missing'],
      ['not-a-token', CLOSE.UNAUTHORIZED, 'malformed'],
      [signToken(secret, { doc: 'd', role: 'write' }, -5), CLOSE.UNAUTHORIZED, 'expired'],
      [signToken('wrong', { doc: 'd', role: 'write' }), CLOSE.UNAUTHORIZED, 'bad-signature'],
      [signToken(secret, { doc: 'other', role: 'write' }), CLOSE.FORBIDDEN, 'wrong-document'],
    ]
    for (const [token, code, problem] of cases) {
      const c = client(ts.wsUrl, 'd', token === undefined ? {} : { token })
      if (token === undefined) {
        // No token at all: the server waits for one as the first frame; the client sends HELLO.
      }
      const statuses: string[] = []
      const reason = await within(
        new Promise<string>((r) =>
          c.on('status', (s, why) => {
            statuses.push(s)
            if (s === 'refused') r(why ?? '')
          }),
        ),
        5000,
        `refusal of ${problem}`,
      )
      assert.match(reason, problem, `${problem}: ${reason}`)
      // Never reported connected: the socket opened, the server refused the token.
      assert.equal(statuses, ['refused'], problem)
      assert.is(c.status, 'refused')
      const err = await c.synced.then(
        () => 'resolved',
        (e: Error) => e.message,
      )
      assert.match(err, /refused/)
      c.close()
      // The raw close code, via the query-token path.
      const ws = await rawSocket(ts.wsUrl, 'd', token === undefined ? '' : `?token=${token}`)
      if (token === undefined) ws.send(Buffer.from([PROTOCOL_VERSION, 1, 0, 0, 0, 0]))
      assert.is((await closeOf(ws)).code, code, problem)
    }
    // Refused before any document is loaded.
    assert.is(ts.server.stats().documents, 0)
  } finally {
    await ts.stop()
  }
})

test('a valid token works in the first frame and as ?token=; REST needs one too', async () => {
  const ts = await startServer({ secret })
  try {
    const token = signToken(secret, { doc: 'd', role: 'write', user: 'ann' })
    const c = client(ts.wsUrl, 'd', { token })
    await within(c.synced, 5000, 'synced with token')
    c.doc.insert(0, 'secret text')
    await waitFor(() => c.status === 'synced', 'synced')
    await new Promise((r) => setTimeout(r, 80))
    const ws = await rawSocket(ts.wsUrl, 'd', `?token=${encodeURIComponent(token)}`)
    await waitFor(() => ws.received.length > 0, 'server HELLO on query-token socket')
    const first = ws.received[0]!
    assert.is(first[0], PROTOCOL_VERSION)
    assert.is(first[1], 1) // HELLO
    ws.close()
    const url = `${ts.httpUrl}/api/docs/d/text`
    assert.is((await fetch(url)).status, 401)
    const other = signToken(secret, { doc: 'x', role: 'read' })
    const wrongDoc = await fetch(url, { headers: { authorization: `Bearer ${other}` } })
    assert.is(wrongDoc.status, 401)
    assert.equal(await wrongDoc.json(), { error: 'token wrong-document' })
    const expired = signToken(secret, { doc: 'd', role: 'read' }, -1)
    assert.is((await fetch(`${url}?token=${expired}`)).status, 401)
    const read = signToken(secret, { doc: 'd', role: 'read' })
    await waitFor(() => true, '')
    assert.is(await restText(ts.httpUrl, 'd', read), 'secret text')
    assert.is((await fetch(`${ts.httpUrl}/api/docs/d?token=${read}`)).status, 200)
    // The scheme name is case-insensitive.
    const lower = await fetch(url, { headers: { authorization: `bearer ${read}` } })
    assert.is(await lower.text(), 'secret text')
    c.close()
  } finally {
    await ts.stop()
  }
})

test('B5: a read-only connection reads, its edits are refused, not applied, not stored', async () => {
  const ts = await startServer({ secret })
  try {
    const writer = client(ts.wsUrl, 'ro', {
      token: signToken(secret, { doc: 'ro', role: 'write' }),
    })
    await writer.synced
    writer.doc.insert(0, 'original')
    const reader = client(ts.wsUrl, 'ro', { token: signToken(secret, { doc: 'ro', role: 'read' }) })
    const errors: string[] = []
    reader.on('error', (e) => errors.push(e.codeName))
    await waitFor(() => reader.doc.toString() === 'original', 'reader receives')
    await waitFor(() => reader.readOnly, 'client told it is read-only')
    reader.doc.insert(0, 'EVIL ')
    // A hostile read-only client that sends its edits anyway is answered READ_ONLY.
    const roToken = signToken(secret, { doc: 'ro', role: 'read' })
    const ws = await rawSocket(ts.wsUrl, 'ro', `?token=${roToken}`)
    const out = new WireState()
    const evil = new TextDoc('evil')
    evil.insert(0, 'EVIL ')
    const v = evil.version()
    ws.send(encodeMessage({ type: 'hello', readOnly: false, id: 'e', have: v, durable: v }, out))
    ws.send(encodeMessage({ type: 'events', have: v, updates: [evil.encodeUpdate()] }, out))
    const inn = new WireState()
    const seen: string[] = []
    await waitFor(() => {
      while (ws.received.length > 0) {
        const m = decodeMessage(ws.received.shift()!, inn)
        seen.push(m.type === 'error' ? `error ${m.code}` : m.type)
      }
      return seen.includes('error 8')
    }, 'READ_ONLY error to the hostile client')
    ws.close()
    assert.ok(errors.includes('READ_ONLY'), errors.join())
    writer.doc.insert(writer.doc.length, '!')
    await waitFor(() => reader.doc.toString().endsWith('original!'), 'reads still flow')
    await new Promise((r) => setTimeout(r, 100))
    assert.is(writer.doc.toString(), 'original!')
    const read = signToken(secret, { doc: 'ro', role: 'read' })
    assert.is(await restText(ts.httpUrl, 'ro', read), 'original!')
    writer.close()
    reader.close()
    // Nothing of the refused edits was stored: a fresh server on the same data agrees.
    await ts.stop(true)
    const again = await startServer({ secret, dataDir: ts.dataDir })
    assert.is(await restText(again.httpUrl, 'ro', read), 'original!')
    await again.stop()
  } finally {
    await ts.stop()
  }
})

test('synced on a read-only connection: resolves with nothing of ours to store, else rejects', async () => {
  const ts = await startServer({ secret })
  try {
    const writer = client(ts.wsUrl, 'ro2', {
      token: signToken(secret, { doc: 'ro2', role: 'write' }),
    })
    await writer.synced
    writer.doc.insert(0, 'shared')
    await waitFor(() => writer.allAcknowledged, 'writer acked')
    const read = signToken(secret, { doc: 'ro2', role: 'read' })
    const viewer = client(ts.wsUrl, 'ro2', { token: read })
    await within(viewer.synced, 5000, 'viewer synced')
    assert.is(viewer.doc.toString(), 'shared')
    assert.is(viewer.status, 'synced')
    // Edits made offline, then a read-only connection: they cannot be stored, so not synced.
    const offline = new TextDoc('offline-reader')
    offline.insert(0, 'mine ')
    const reader = client(ts.wsUrl, 'ro2', { token: read, doc: offline })
    const outcome = await within(
      reader.synced.then(
        () => 'resolved',
        (e: Error) => e.message,
      ),
      5000,
      'reader synced settles',
    )
    assert.is(outcome, 'read-only connection: 5 local events will not be stored')
    assert.is(reader.status, 'connected')
    await waitFor(() => reader.doc.toString().includes('shared'), 'reads still flow')
    assert.is(await restText(ts.httpUrl, 'ro2', read), 'shared')
    for (const c of [writer, viewer, reader]) c.close()
  } finally {
    await ts.stop()
  }
})

test('expiry: a live connection outlives its token; a reconnect after it is refused; a new token carries the edits on', async () => {
  const ts = await startServer({ secret })
  const port = Number(new URL(ts.httpUrl).port)
  let again: Awaited<ReturnType<typeof startServer>> | null = null
  const doc = new TextDoc('expiring')
  const first = client(ts.wsUrl, 'exp', {
    token: signToken(secret, { doc: 'exp', role: 'write' }, 1),
    doc,
  })
  let second: ReturnType<typeof client> | null = null
  try {
    await within(first.synced, 5000, 'synced')
    await new Promise((r) => setTimeout(r, 2100)) // the token expires (whole seconds)
    doc.insert(0, 'after expiry ')
    await waitFor(() => first.allAcknowledged, 'still accepted on the live connection')
    // The server restarts: the reconnect presents the expired token.
    await ts.stop(true)
    again = await startServer({ secret, dataDir: ts.dataDir, port })
    doc.insert(doc.length, 'while away')
    await waitFor(() => first.status === 'refused', 'reconnect refused', 5000)
    assert.match(first.refusedReason ?? '', /expired/)
    // A fresh token and the same document: the edit made meanwhile is sent and stored.
    second = client(again.wsUrl, 'exp', {
      token: signToken(secret, { doc: 'exp', role: 'write' }),
      doc,
    })
    await within(second.synced, 5000, 'synced with a fresh token')
    const read = signToken(secret, { doc: 'exp', role: 'read' })
    assert.is(await restText(again.httpUrl, 'exp', read), 'after expiry while away')
  } finally {
    first.close()
    second?.close()
    await again?.stop()
    await ts.stop()
  }
})

test('open mode: a token sent anyway is ignored, not taken for a protocol message', async () => {
  const ts = await startServer()
  try {
    const token = signToken('any-secret', { doc: 'open', role: 'read' })
    const c = client(ts.wsUrl, 'open', { token })
    await within(c.synced, 5000, 'synced with an unneeded token')
    c.doc.insert(0, 'typed')
    await waitFor(() => c.allAcknowledged, 'acked')
    assert.is(await restText(ts.httpUrl, 'open'), 'typed')
    // As ?token= and as a text frame too.
    const q = client(ts.wsUrl, 'open', {})
    await within(q.synced, 5000, 'synced without a token')
    const ws = await rawSocket(ts.wsUrl, 'open', `?token=${token}`)
    ws.send(token)
    await waitFor(() => ws.received.length > 0, 'server HELLO after a text token frame')
    await new Promise((r) => setTimeout(r, 50))
    assert.is(ws.readyState, WebSocket.OPEN)
    ws.close()
    c.close()
    q.close()
  } finally {
    await ts.stop()
  }
})

test('B6: presence identity comes from the token, not from what the client claims', async () => {
  const ts = await startServer({ secret })
  try {
    const pa = new Presence()
    const pb = new Presence()
    const a = client(ts.wsUrl, 'p', {
      token: signToken(secret, { doc: 'p', role: 'write', user: 'alice' }),
      presence: pa,
    })
    const b = client(ts.wsUrl, 'p', {
      token: signToken(secret, { doc: 'p', role: 'write', user: 'bob' }),
      presence: pb,
    })
    await Promise.all([a.synced, b.synced])
    pa.setLocal({ user: 'bob', name: 'Mallory', selection: undefined })
    await waitFor(() => pb.getStates().has(pa.id), 'b sees a', 5000)
    const seen = pb.getStates().get(pa.id)!
    assert.is(seen.user, 'alice')
    a.close()
    b.close()
  } finally {
    await ts.stop()
  }
})

test('B7: open mode works and says so loudly at start', async () => {
  const ts = await startServer()
  try {
    const warn = ts.logs.find((l) => l.level === 40 && /OPEN MODE/.test(String(l.msg)))
    assert.ok(warn, 'a warning about open mode is logged')
    const c = client(ts.wsUrl, 'open')
    await within(c.synced, 5000, 'synced without token')
    c.close()
  } finally {
    await ts.stop()
  }
})

test.run()
