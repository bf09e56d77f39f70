/**
 * RichDoc's API (API.md, "Core: RichDoc"): start state, every step type,
 * refused steps change nothing, 'change' and 'update' events, encodeUpdate /
 * applyUpdate with duplicates, reordering and missing parents, save/load,
 * malformed bytes, and replication over `link`.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Schema, Slice, Fragment, type Node } from 'prosemirror-model'
import { schema as basic } from 'prosemirror-schema-basic'
import {
  AddNodeMarkStep,
  DocAttrStep,
  RemoveNodeMarkStep,
  ReplaceStep,
  Step,
  Transform,
} from 'prosemirror-transform'
import { RichDoc, link, memoryPair } from '../shared/index.ts'
import { until } from './support/raw-peer.ts'

const schema = new Schema({
  nodes: basic.spec.nodes.update('doc', { content: 'block+', attrs: { title: { default: '' } } }),
  marks: basic.spec.marks,
})
const txt = (s: string) => schema.text(s)

function edit(d: RichDoc, f: (tr: Transform) => unknown): Transform {
  const tr = new Transform(d.doc)
  f(tr)
  d.applySteps(tr.steps)
  assert.ok(d.doc.eq(tr.doc), `${d.doc} vs ${tr.doc}`)
  return tr
}

function sync(...docs: RichDoc[]): Node {
  for (const a of docs)
    for (const b of docs) if (a !== b) b.applyUpdate(a.encodeUpdate(b.version()))
  for (const d of docs) assert.ok(d.doc.eq(docs[0].doc), `${d.doc} vs ${docs[0].doc}`)
  return docs[0].doc
}

test('a new RichDoc is the schema top node filled; agent given or random', () => {
  const d = new RichDoc(schema, 'alice')
  assert.is(d.agent, 'alice')
  assert.ok(d.doc.eq(schema.topNodeType.createAndFill()!))
  assert.type(new RichDoc(schema).agent, 'string')
  assert.is(d.pendingCount, 0)
  assert.throws(() => new RichDoc(schema, '~genesis'), TypeError)
})

test('a step that does not apply, reserved code units, or a split surrogate pair: RangeError, nothing changes', () => {
  const d = new RichDoc(schema, 'a')
  edit(d, (tr) => tr.insert(1, txt('hi😀')))
  const before = d.doc
  const vv = JSON.stringify(d.version())
  const good = new ReplaceStep(1, 1, new Slice(Fragment.from(txt('x')), 0, 0))
  const bad = new ReplaceStep(1, 99, Slice.empty)
  assert.throws(() => d.applySteps([good, bad]), RangeError)
  assert.throws(
    () => d.applySteps([new ReplaceStep(1, 1, new Slice(Fragment.from(txt('\uFDD0')), 0, 0))]),
    RangeError,
  )
  assert.throws(
    () => d.applySteps([new ReplaceStep(4, 4, new Slice(Fragment.from(txt('x')), 0, 0))]),
    /surrogate/,
  )
  assert.throws(() => d.applySteps([{} as Step]), TypeError)
  assert.ok(d.doc.eq(before))
  assert.is(JSON.stringify(d.version()), vv)
})

test("'change' gives the local steps, and for remote merges steps that turn the old doc into the new", () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  const seen: { steps: Step[]; origin: unknown }[] = []
  a.on('change', (steps, origin) => seen.push({ steps, origin }))
  const tr = edit(a, (t) => t.insert(1, txt('hello')).split(3))
  assert.is(seen.length, 1)
  assert.equal(
    seen[0].steps.map((s) => s.toJSON()),
    tr.steps.map((s) => s.toJSON()),
  )
  sync(a, b)
  edit(b, (t) => t.insert(2, txt('XY')).addMark(1, 3, schema.marks.em.create()))
  const old = a.doc
  seen.length = 0
  a.applyUpdate(b.encodeUpdate(a.version()), 'net')
  assert.is(seen.length, 1)
  assert.is(seen[0].origin, 'net')
  let doc = old
  for (const s of seen[0].steps) doc = s.apply(doc).doc!
  assert.ok(doc.eq(a.doc))
})

test("'update' fires once per local batch and per new remote events, never for duplicates", () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  const ua: Uint8Array[] = []
  const ub: unknown[] = []
  a.on('update', (u) => ua.push(u))
  b.on('update', (_u, origin) => ub.push(origin))
  edit(a, (t) => t.insert(1, txt('one')).split(2))
  edit(a, (t) => t.addMark(1, 3, schema.marks.strong.create()))
  assert.is(ua.length, 2)
  b.applyUpdate(ua[0], 'x')
  b.applyUpdate(ua[1], 'y')
  b.applyUpdate(ua[1], 'dup')
  assert.equal(ub, ['x', 'y'])
  assert.ok(b.doc.eq(a.doc))
})

test('updates out of order wait for their parents; duplicates and shuffles converge', () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  const ups: Uint8Array[] = []
  a.on('update', (u) => ups.push(u))
  edit(a, (t) => t.insert(1, txt('abc')))
  edit(a, (t) => t.split(2))
  edit(a, (t) => t.setBlockType(1, 1, schema.nodes.heading, { level: 2 }))
  b.applyUpdate(ups[2])
  assert.ok(b.pendingCount > 0)
  b.applyUpdate(ups[1])
  b.applyUpdate(ups[0])
  b.applyUpdate(ups[1])
  assert.is(b.pendingCount, 0)
  assert.ok(b.doc.eq(a.doc))
  b.checkInvariants()
})

test('save/load round trip; load keeps working and merging', () => {
  const a = new RichDoc(schema, 'a')
  edit(a, (t) => t.insert(1, txt('hello')).addMark(1, 3, schema.marks.strong.create()))
  const c = RichDoc.load(schema, a.save(), 'c')
  assert.ok(c.doc.eq(a.doc))
  assert.equal(c.version(), a.version())
  edit(c, (t) => t.insert(6, txt('!')))
  edit(a, (t) => t.insert(1, txt('>')))
  assert.ok(sync(a, c).textContent === '>hello!')
})

test('malformed bytes throw and change nothing', () => {
  const a = new RichDoc(schema, 'a')
  edit(a, (t) => t.insert(1, txt('abc')))
  const u = a.encodeUpdate({ '~genesis': 1 })
  const b = new RichDoc(schema, 'b')
  const before = b.doc
  assert.throws(() => b.applyUpdate(u.slice(0, u.length - 3)))
  assert.throws(() => b.applyUpdate(new Uint8Array([9, 9, 9])))
  assert.ok(b.doc.eq(before))
  b.applyUpdate(u)
  assert.ok(b.doc.eq(a.doc))
})

test('node marks, doc attrs: registers that converge by Lamport order', () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  edit(a, (t) => t.insert(1, [txt('x'), schema.nodes.image.create({ src: 'i.png' })]))
  sync(a, b)
  const strong = schema.marks.strong.create()
  a.applySteps([new AddNodeMarkStep(2, strong)])
  assert.ok(strong.isInSet(a.doc.nodeAt(2)!.marks))
  b.applySteps([new DocAttrStep('title', 'B')])
  a.applySteps([new DocAttrStep('title', 'A')])
  let d = sync(a, b)
  assert.is(d.attrs.title, 'A') // a's op is later (a made one op before)
  b.applySteps([new DocAttrStep('title', 'B2')])
  a.applySteps([new DocAttrStep('title', 'A2')])
  d = sync(a, b)
  assert.is(d.attrs.title, 'B2') // same Lamport time: the higher agent wins
  assert.ok(strong.isInSet(d.nodeAt(2)!.marks))
  b.applySteps([new RemoveNodeMarkStep(2, strong)])
  d = sync(a, b)
  assert.not.ok(strong.isInSet(d.nodeAt(2)!.marks))
  a.checkInvariants()
})

test('link replicates RichDocs over a channel both ways', async () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  edit(a, (t) => t.insert(1, txt('before link')))
  const [x, y] = memoryPair()
  const la = link(a, x)
  const lb = link(b, y)
  try {
    await until(() => b.doc.eq(a.doc), 3000, 'initial sync')
    edit(b, (t) => t.split(7))
    edit(a, (t) => t.insert(1, txt('>')))
    await until(() => b.doc.eq(a.doc) && a.doc.childCount === 2, 3000, 'live sync')
    assert.is(a.doc.textContent, '>before link')
  } finally {
    la.close()
    lb.close()
  }
})

test.run()
