/**
 * RichDoc intent scenarios (issue 5): concurrent typing against split, join,
 * wrap, lift and delete of its paragraph; two Enters at one place; Peritext
 * formatting (inside, inclusive and non-inclusive ends, add vs remove);
 * attributes as last-writer-wins registers.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Schema, type Node } from 'prosemirror-model'
import { schema as basic } from 'prosemirror-schema-basic'
import { addListNodes } from 'prosemirror-schema-list'
import { Transform, findWrapping, liftTarget } from 'prosemirror-transform'
import { RichDoc } from '../shared/index.ts'

const schema = new Schema({
  nodes: addListNodes(basic.spec.nodes, 'paragraph block*', 'block'),
  marks: basic.spec.marks,
})
const { paragraph: p, blockquote, heading, bullet_list, list_item } = schema.nodes
const { strong, link } = schema.marks

/** Exchanges everything both ways, then checks convergence and validity. */
function sync(...docs: RichDoc[]): Node {
  for (const a of docs)
    for (const b of docs) if (a !== b) b.applyUpdate(a.encodeUpdate(b.version()))
  for (const d of docs) {
    assert.ok(d.doc.eq(docs[0].doc), `${d.agent}: ${d.doc} vs ${docs[0].doc}`)
    d.doc.check()
    d.checkInvariants()
  }
  return docs[0].doc
}

/** Two replicas sharing a document built by `a` from `content`. */
function pair(...content: Node[]): [RichDoc, RichDoc] {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  a.applySteps(new Transform(a.doc).replaceWith(0, a.doc.content.size, content).steps)
  sync(a, b)
  return [a, b]
}

const txt = (s: string, marks = [] as ReturnType<typeof strong.create>[]) => schema.text(s, marks)
const para = (...c: (string | Node)[]) =>
  p.create(
    null,
    c.map((x) => (typeof x === 'string' ? txt(x) : x)),
  )
const doc = (...c: Node[]) => schema.topNodeType.create(null, c)
const edit = (d: RichDoc, f: (tr: Transform) => unknown) => {
  const tr = new Transform(d.doc)
  f(tr)
  d.applySteps(tr.steps)
}

test('typing into a paragraph another replica splits stays where it was typed', () => {
  const [a, b] = pair(para('hello world'))
  edit(a, (tr) => tr.split(6)) // hello|_world
  edit(b, (tr) => tr.insert(9, txt('XYZ'))) // _wo|rld
  assert.ok(sync(a, b).eq(doc(para('hello'), para(' woXYZrld'))))
})

test('typing on both sides of a paragraph boundary another replica joins stays in place', () => {
  const [a, b] = pair(para('abc'), para('def'))
  edit(a, (tr) => tr.join(5))
  edit(b, (tr) => tr.insert(6, txt('Y')).insert(4, txt('X')))
  assert.ok(sync(a, b).eq(doc(para('abcXYdef'))))
})

test('typing into a paragraph another replica wraps in a blockquote stays inside it', () => {
  const [a, b] = pair(para('hello'), para('next'))
  edit(a, (tr) => {
    const range = tr.doc.resolve(1).blockRange()!
    tr.wrap(range, findWrapping(range, blockquote)!)
  })
  edit(b, (tr) => tr.insert(4, txt('X')))
  assert.ok(sync(a, b).eq(doc(blockquote.create(null, para('helXlo')), para('next'))))
})

test('typing into a paragraph another replica wraps in a list stays inside it', () => {
  const [a, b] = pair(para('hello'))
  edit(a, (tr) => {
    const range = tr.doc.resolve(1).blockRange()!
    tr.wrap(range, findWrapping(range, bullet_list)!)
  })
  edit(b, (tr) => tr.insert(6, txt('!')))
  const want = doc(bullet_list.create(null, list_item.create(null, para('hello!'))))
  assert.ok(sync(a, b).eq(want))
})

test('typing into a paragraph another replica lifts out of a blockquote stays in it', () => {
  const [a, b] = pair(blockquote.create(null, para('hello')))
  edit(a, (tr) => {
    const range = tr.doc.resolve(2).blockRange()!
    tr.lift(range, liftTarget(range)!)
  })
  edit(b, (tr) => tr.insert(3, txt('X')))
  assert.ok(sync(a, b).eq(doc(para('hXello'))))
})

test('typing inside a paragraph another replica deletes is kept, not dropped', () => {
  const [a, b] = pair(para('one'), para('two'), para('three'))
  edit(a, (tr) => tr.delete(5, 10)) // the whole second paragraph
  edit(b, (tr) => tr.insert(7, txt('KEEP'))) // t|wo
  const d = sync(a, b)
  assert.ok(d.textContent.includes('KEEP'), d.toString())
  assert.ok(!d.textContent.includes('two'), d.toString())
  assert.ok(d.eq(doc(para('one'), para('KEEP'), para('three'))), d.toString())
})

test('two replicas pressing Enter at the same place yield one empty paragraph between', () => {
  const [a, b] = pair(para('abcd'))
  edit(a, (tr) => tr.split(3))
  edit(b, (tr) => tr.split(3))
  assert.ok(sync(a, b).eq(doc(para('ab'), para(), para('cd'))))
})

test('a mark added over a range covers text inserted concurrently inside it', () => {
  const [a, b] = pair(para('hello world'))
  edit(a, (tr) => tr.addMark(1, 6, strong.create()))
  edit(b, (tr) => tr.insert(3, txt('XX')))
  const bold = [strong.create()]
  assert.ok(sync(a, b).eq(doc(para(txt('heXXllo', bold), ' world'))))
})

test('at the end of a range, bold (inclusive) expands over concurrent typing and a link does not', () => {
  const [a, b] = pair(para('hello world'))
  const href = link.create({ href: 'https://example.com' })
  edit(a, (tr) => tr.addMark(1, 6, strong.create()).addMark(7, 12, href))
  edit(b, (tr) => tr.insert(12, txt('!')).insert(6, txt('X')))
  const want = doc(para(txt('helloX', [strong.create()]), ' ', txt('world', [href]), '!'))
  assert.ok(sync(a, b).eq(want))
})

test('later structure edits do not change which text a mark covered', () => {
  const bold = [strong.create()]
  let [a, b] = pair(para('abc'), para('def'))
  edit(a, (tr) => tr.addMark(1, 4, strong.create()))
  edit(b, (tr) => tr.insert(4, txt('X')).insert(7, txt('Y'))) // abc|, |def
  let d = sync(a, b)
  assert.ok(d.eq(doc(para(txt('abcX', bold)), para('Ydef'))), d.toString())
  edit(a, (tr) => tr.split(4)) // abc|X: X stays bold
  edit(b, (tr) => tr.join(6)) // abcX + Ydef: Y stays plain
  d = sync(a, b)
  assert.ok(d.eq(doc(para(txt('abc', bold)), para(txt('X', bold), 'Ydef'))), d.toString())
})

test('text typed after seeing a mark keeps the marks it was typed with', () => {
  const [a, b] = pair(para('hello'))
  edit(a, (tr) => tr.addMark(1, 6, strong.create()))
  sync(a, b)
  edit(b, (tr) => tr.insert(6, txt(' plain')))
  assert.ok(sync(a, b).eq(doc(para(txt('hello', [strong.create()]), ' plain'))))
})

test('concurrent add and remove of one mark resolve by Lamport order', () => {
  const bold = [strong.create()]
  // b bolds and unbolds (Lamport 1, 2) while a bolds once (Lamport 1): b's removal is later.
  let [a, b] = pair(para('hello'))
  edit(a, (tr) => tr.addMark(1, 6, strong.create()))
  edit(b, (tr) => tr.addMark(1, 6, strong.create()))
  edit(b, (tr) => tr.removeMark(1, 6, strong))
  let d = sync(a, b)
  assert.ok(d.eq(doc(para('hello'))), d.toString())
  // Now a's add comes after two other ops (Lamport 3): it is later than b's removal.
  ;[a, b] = pair(para('hello'))
  const href = link.create({ href: 'y' })
  edit(a, (tr) => tr.addMark(1, 2, href))
  edit(a, (tr) => tr.removeMark(1, 2, href))
  edit(a, (tr) => tr.addMark(1, 6, strong.create()))
  edit(b, (tr) => tr.addMark(1, 6, strong.create()))
  edit(b, (tr) => tr.removeMark(1, 6, strong))
  d = sync(a, b)
  assert.ok(d.eq(doc(para(txt('hello', bold)))), d.toString())
})

test('equal Lamport times: the op of the higher agent id wins', () => {
  const [a, b] = pair(para('hello'))
  edit(a, (tr) => tr.addMark(1, 6, link.create({ href: 'from-a' })))
  edit(b, (tr) => tr.addMark(1, 6, link.create({ href: 'from-b' })))
  const d = sync(a, b)
  assert.ok(d.eq(doc(para(txt('hello', [link.create({ href: 'from-b' })])))), d.toString())
})

test('attributes are registers: last writer by Lamport order wins, typing inside survives', () => {
  const [a, b] = pair(heading.create({ level: 1 }, txt('title')))
  edit(a, (tr) => tr.setNodeAttribute(0, 'level', 2))
  edit(b, (tr) => tr.setNodeAttribute(0, 'level', 3).insert(3, txt('-')))
  assert.ok(sync(a, b).eq(doc(heading.create({ level: 3 }, txt('ti-tle')))))
  edit(a, (tr) => tr.setNodeAttribute(0, 'level', 4)) // later than everything: wins
  edit(b, (tr) => tr.insert(1, txt('>')))
  assert.ok(sync(a, b).eq(doc(heading.create({ level: 4 }, txt('>ti-tle')))))
})

test('changing a block type while another replica types into it keeps the text', () => {
  const [a, b] = pair(para('hello'))
  edit(a, (tr) => tr.setBlockType(1, 1, heading, { level: 2 }))
  edit(b, (tr) => tr.insert(6, txt(' there')))
  {
    const d1 = sync(a, b)
    assert.ok(d1.eq(doc(heading.create({ level: 2 }, txt('hello there')))), d1.toString())
  }
})

test.run()
