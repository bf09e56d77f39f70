// Rich documents on a real server (port 0, SQLite): the server keeps a plain TextDoc replica of a
// RichDoc's events and REST projects it with the default schema: `doc` is the ProseMirror JSON
// (equal to every client's document), `text` the blocks joined by newlines. Text documents keep
// answering raw text; a rich document of another schema answers 422 with the reason; the
// projection survives a restart and follows new edits; the offline switch works for RichDocs.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Node, Schema } from 'prosemirror-model'
import { schema as basic } from 'prosemirror-schema-basic'
import { Transform } from 'prosemirror-transform'
import { RichDoc } from '../shared/rich-doc.ts'
import { richSchema } from '../shared/rich-schema.ts'
import { TextDoc } from '../shared/text-doc.ts'
import WebSocket from 'ws'
import { connect, type Connection } from '../client/connection.ts'
import {
  client as textClient,
  startServer,
  tempDir,
  waitFor,
  within,
} from './support/server-harness.ts'
import { rmSync } from 'node:fs'

const s = richSchema

function richClient(wsUrl: string, docId: string, agent: string, schema = s): Connection<RichDoc> {
  const doc = new RichDoc(schema, agent)
  return connect({ url: wsUrl, docId, doc, WebSocket, backoff: { minMs: 20, maxMs: 200 } })
}

/** Applies `edit` to a Transform on `rich.doc` and hands its steps to `rich`. */
function edit(rich: RichDoc, make: (tr: Transform) => void): void {
  const tr = new Transform(rich.doc)
  make(tr)
  rich.applySteps(tr.steps)
}

interface DocJson {
  id: string
  version: Record<string, number>
  text: string
  doc?: unknown
  error?: string
}

async function rest(httpUrl: string, id: string): Promise<{ status: number; body: DocJson }> {
  const res = await fetch(`${httpUrl}/api/docs/${encodeURIComponent(id)}`)
  return { status: res.status, body: (await res.json()) as DocJson }
}

async function restText(httpUrl: string, id: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${httpUrl}/api/docs/${encodeURIComponent(id)}/text`)
  return { status: res.status, text: await res.text() }
}

/** Polls the REST read until its `doc` equals `expected` (bounded). */
async function serverDocEquals(httpUrl: string, id: string, expected: Node): Promise<DocJson> {
  const end = Date.now() + 5000
  for (;;) {
    const { status, body } = await rest(httpUrl, id)
    if (status === 200 && body.doc !== undefined && Node.fromJSON(s, body.doc).eq(expected))
      return body
    if (Date.now() > end) {
      throw new Error(`server doc never equal: ${status} ${JSON.stringify(body).slice(0, 400)}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('rich: two RichDoc clients converge; REST doc is their ProseMirror JSON, text by blocks', async () => {
  const ts = await startServer()
  const a = richClient(ts.wsUrl, 'rich-1', 'ann')
  const b = richClient(ts.wsUrl, 'rich-1', 'bob')
  try {
    await within(Promise.all([a.synced, b.synced]), 5000, 'synced')
    edit(a.doc, (tr) => tr.insert(1, s.text('Hello world')))
    await waitFor(() => b.doc.doc.eq(a.doc.doc), 'b has the text')
    // Concurrently: ann splits the paragraph and bolds "Hello"; bob types at the end and adds a
    // bullet list after the paragraph.
    edit(a.doc, (tr) => {
      tr.split(6)
      tr.addMark(1, 6, s.marks.strong!.create())
    })
    edit(b.doc, (tr) => {
      tr.insert(12, s.text('!'))
      const item = s.nodes.list_item!.create(null, s.nodes.paragraph!.create(null, s.text('item')))
      tr.insert(tr.doc.content.size, s.nodes.bullet_list!.create(null, item))
    })
    await waitFor(() => a.doc.doc.eq(b.doc.doc), 'clients converge')
    await waitFor(() => a.allAcknowledged && b.allAcknowledged, 'stored')
    const body = await serverDocEquals(ts.httpUrl, 'rich-1', a.doc.doc)
    assert.is(body.id, 'rich-1')
    assert.equal(body.version, a.doc.version())
    assert.is(body.text, 'Hello\n world!\nitem')
    assert.equal(body.doc, a.doc.doc.toJSON())
    Node.fromJSON(s, body.doc).check()
    const plain = await restText(ts.httpUrl, 'rich-1')
    assert.is(plain.status, 200)
    assert.is(plain.text, 'Hello\n world!\nitem')
    // The projection follows new edits (the memo is per version).
    edit(b.doc, (tr) => tr.insert(1, s.text('>')))
    await waitFor(() => b.allAcknowledged, 'stored')
    const next = await serverDocEquals(ts.httpUrl, 'rich-1', b.doc.doc)
    assert.is(next.text, '>Hello\n world!\nitem')
  } finally {
    a.close()
    b.close()
    await ts.stop()
  }
})

test('rich: empty paragraphs and hard breaks are lines of the text', async () => {
  const ts = await startServer()
  const a = richClient(ts.wsUrl, 'rich-lines', 'ann')
  try {
    await within(a.synced, 5000, 'synced')
    edit(a.doc, (tr) => {
      tr.insert(1, [s.text('one'), s.nodes.hard_break!.create(), s.text('two')])
      tr.insert(tr.doc.content.size, s.nodes.paragraph!.create())
      tr.insert(tr.doc.content.size, s.nodes.paragraph!.create(null, s.text('four')))
    })
    await waitFor(() => a.allAcknowledged, 'stored')
    const body = await serverDocEquals(ts.httpUrl, 'rich-lines', a.doc.doc)
    assert.is(body.text, 'one\ntwo\n\nfour')
  } finally {
    a.close()
    await ts.stop()
  }
})

test('rich: a text document still answers raw text and no doc', async () => {
  const ts = await startServer()
  const t = textClient(ts.wsUrl, 'plain', { doc: new TextDoc('tom') })
  try {
    await within(t.synced, 5000, 'synced')
    t.doc.insert(0, 'line one\nline two')
    await waitFor(() => t.allAcknowledged, 'stored')
    const { status, body } = await rest(ts.httpUrl, 'plain')
    assert.is(status, 200)
    assert.is(body.text, 'line one\nline two')
    assert.is('doc' in body, false)
    assert.is((await restText(ts.httpUrl, 'plain')).text, 'line one\nline two')
  } finally {
    t.close()
    await ts.stop()
  }
})

test('rich: another schema is replicated, but REST says clearly it cannot project it', async () => {
  const ts = await startServer()
  // Headings only as the top node's content: a different genesis than the default schema's.
  const other = new Schema({
    nodes: {
      doc: { content: 'heading+' },
      heading: basic.spec.nodes.get('heading')!,
      text: basic.spec.nodes.get('text')!,
    },
  })
  const a = richClient(ts.wsUrl, 'rich-other', 'ann', other)
  const b = richClient(ts.wsUrl, 'rich-other', 'bob', other)
  try {
    await within(Promise.all([a.synced, b.synced]), 5000, 'synced')
    edit(a.doc, (tr) => tr.insert(1, other.text('Title')))
    await waitFor(() => b.doc.doc.eq(a.doc.doc) && a.allAcknowledged, 'replicated')
    const { status, body } = await rest(ts.httpUrl, 'rich-other')
    assert.is(status, 422)
    assert.match(body.error ?? '', /does not load with the server's schema/)
    const plain = await restText(ts.httpUrl, 'rich-other')
    assert.is(plain.status, 422)
    assert.match(plain.text, /server's schema/)
    // The server process is fine and keeps serving the other documents.
    assert.is((await fetch(`${ts.httpUrl}/healthz`)).status, 200)
  } finally {
    a.close()
    b.close()
    await ts.stop()
  }
})

test('rich: the projection survives a restart (snapshot + updates from SQLite)', async () => {
  const dataDir = tempDir()
  let ts = await startServer({ dataDir })
  const a = richClient(ts.wsUrl, 'rich-restart', 'ann')
  let expected: Node
  try {
    await within(a.synced, 5000, 'synced')
    edit(a.doc, (tr) => {
      tr.insert(1, s.text('kept across restarts'))
      tr.setBlockType(1, 1, s.nodes.heading!, { level: 2 })
    })
    await waitFor(() => a.allAcknowledged, 'stored')
    expected = a.doc.doc
  } finally {
    a.close()
    await ts.stop(true)
  }
  ts = await startServer({ dataDir })
  try {
    const body = await serverDocEquals(ts.httpUrl, 'rich-restart', expected)
    assert.is(body.text, 'kept across restarts')
    assert.is((body.doc as { content: { type: string }[] }).content[0]!.type, 'heading')
  } finally {
    await ts.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
})

test('rich: offline switch with RichDocs; edits on both sides, return, equal with the server', async () => {
  const ts = await startServer()
  const a = richClient(ts.wsUrl, 'rich-offline', 'ann')
  const b = richClient(ts.wsUrl, 'rich-offline', 'bob')
  try {
    await within(Promise.all([a.synced, b.synced]), 5000, 'synced')
    edit(a.doc, (tr) => tr.insert(1, s.text('first second')))
    await waitFor(() => b.doc.doc.eq(a.doc.doc), 'b has it')
    a.setOnline(false)
    edit(a.doc, (tr) => tr.split(6)) // "first" | " second"
    edit(b.doc, (tr) => tr.insert(13, s.text(' third')))
    edit(b.doc, (tr) => tr.addMark(1, 6, s.marks.em!.create()))
    await waitFor(() => b.allAcknowledged, 'b stored')
    await new Promise((r) => setTimeout(r, 200))
    assert.is(a.doc.doc.childCount, 2)
    assert.is(b.doc.doc.childCount, 1)
    a.setOnline(true)
    await waitFor(() => a.status === 'synced' && a.allAcknowledged, 'a back and stored')
    await waitFor(() => a.doc.doc.eq(b.doc.doc), 'equal')
    const body = await serverDocEquals(ts.httpUrl, 'rich-offline', a.doc.doc)
    assert.is(body.text, 'first\n second third')
  } finally {
    a.close()
    b.close()
    await ts.stop()
  }
})

test.run()
