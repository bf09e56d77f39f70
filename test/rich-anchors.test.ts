/**
 * RichDoc anchors (`anchorAt` / `positionOf`): positions anchored to token ids, as
 * presence uses them for cursors and selections. Round trips, concurrent edits before
 * and around the anchor (text, splits, wraps), deleted tokens, unknown events, bad input;
 * and the mapping a remote change reports, which must agree with the anchors.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Node } from 'prosemirror-model'
import { type Mappable, Transform, canSplit, findWrapping, liftTarget } from 'prosemirror-transform'
import { RichDoc } from '../shared/rich-doc.ts'
import { richSchema as schema } from '../shared/rich-schema.ts'
import { Rng } from './support/rng.ts'
import { findText } from './support/find-text.ts'

const N = schema.nodes
const txt = (s: string) => schema.text(s)

function edit(d: RichDoc, f: (tr: Transform) => unknown): void {
  const tr = new Transform(d.doc)
  f(tr)
  d.applySteps(tr.steps)
}

function sync(...docs: RichDoc[]): Node {
  for (const a of docs)
    for (const b of docs) if (a !== b) b.applyUpdate(a.encodeUpdate(b.version()))
  for (const d of docs) assert.ok(d.doc.eq(docs[0].doc))
  return docs[0].doc
}

test('every position round-trips; the end anchors to null', () => {
  const d = new RichDoc(schema, 'a')
  edit(d, (tr) => tr.insert(1, txt('hello')).split(4).insert(0, N.horizontal_rule.create()))
  const size = d.doc.content.size
  for (let p = 0; p <= size; p++) assert.is(d.positionOf(d.anchorAt(p)), p, `position ${p}`)
  assert.is(d.anchorAt(size), null)
  assert.is(d.positionOf(null), size)
})

test('an anchor follows its character through concurrent text and structure edits', () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  edit(a, (tr) => tr.insert(1, txt('hello world')))
  sync(a, b)
  const w = a.anchorAt(findText(a.doc, 'world'))
  // b edits before the anchor: text, a split, a wrap in a blockquote.
  edit(b, (tr) => tr.insert(1, txt('>> ')))
  edit(b, (tr) => tr.split(findText(tr.doc, 'hello') + 2))
  edit(b, (tr) => {
    const range = tr.doc.resolve(1).blockRange(tr.doc.resolve(tr.doc.content.size - 1))!
    tr.wrap(range, findWrapping(range, N.blockquote)!)
  })
  // a types right at the anchor, concurrently.
  edit(a, (tr) => tr.insert(findText(tr.doc, 'world'), txt('big ')))
  const doc = sync(a, b)
  for (const d of [a, b]) {
    const at = d.positionOf(w)!
    assert.is(doc.textBetween(at, at + 5), 'world', `${doc} at ${at}`)
  }
})

test('a deleted token resolves to where it was, the same on every replica', () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  edit(a, (tr) => tr.insert(1, txt('abcdef')))
  sync(a, b)
  const d = a.anchorAt(findText(a.doc, 'd'))
  edit(b, (tr) => tr.delete(findText(tr.doc, 'c'), findText(tr.doc, 'e')))
  edit(a, (tr) => tr.insert(1, txt('X')))
  const doc = sync(a, b)
  assert.is(doc.textContent, 'Xabef')
  assert.is(a.positionOf(d), findText(doc, 'e'))
  assert.is(b.positionOf(d), findText(doc, 'e'))
})

test('an anchor from an event this replica lacks resolves to null; bad positions throw', () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  edit(a, (tr) => tr.insert(1, txt('abc')))
  const anchor = a.anchorAt(2)
  assert.is(b.positionOf(anchor), null)
  assert.is(b.positionOf({ agent: 'nobody', seq: 3 }), null)
  sync(a, b)
  assert.is(b.positionOf(anchor), 2)
  for (const bad of [-1, a.doc.content.size + 1, 1.5, NaN])
    assert.throws(() => a.anchorAt(bad), RangeError, `anchorAt(${bad})`)
})

test('ids of the separator and records are not positions', () => {
  const a = new RichDoc(schema, 'a')
  edit(a, (tr) => tr.insert(1, txt('ab')).addMark(1, 3, schema.marks.strong.create()))
  const seen = new Set<number>()
  for (let p = 0; p < a.doc.content.size; p++) seen.add(a.anchorAt(p)!.seq)
  const events = a.version()['a']
  const size = a.doc.content.size
  for (let seq = 0; seq < events; seq++) {
    const at = a.positionOf({ agent: 'a', seq })
    if (seen.has(seq)) assert.ok(at !== null && at <= size)
    else assert.ok(at === null || (at >= 0 && at <= size), `seq ${seq} -> ${at}`)
  }
  assert.is(a.positionOf({ agent: '~genesis', seq: 2 }), null) // the genesis separator
})

test("a remote change's mapping follows tokens: surviving positions map where their anchors resolve", () => {
  const base = Date.now() % 100000
  let checked = 0
  for (let seed = base; seed < base + 40; seed++) {
    const rng = new Rng(seed)
    const reps = ['a', 'b', 'c'].map((x) => new RichDoc(schema, x))
    const inbox: Uint8Array[][] = reps.map(() => [])
    reps.forEach((r, i) =>
      r.on('update', (u, o) => {
        if (o === undefined) reps.forEach((_, j) => j !== i && inbox[j].push(u))
      }),
    )
    for (let step = 0; step < 50; step++) {
      const i = rng.int(0, 2)
      const d = reps[i]
      const doc = d.doc
      const size = doc.content.size
      const a = rng.int(0, size)
      const b = Math.min(size, a + rng.int(0, 8))
      const tr = new Transform(doc)
      try {
        const k = rng.int(0, 5)
        if (k <= 1 && doc.resolve(a).parent.inlineContent) tr.insert(a, txt('xy'))
        else if (k === 2) tr.delete(a, b)
        else if (k === 3 && canSplit(doc, a)) tr.split(a)
        else if (k >= 4) {
          const range = doc.resolve(a).blockRange(doc.resolve(b))
          const target = range && liftTarget(range)
          const wrap = range && findWrapping(range, N.blockquote)
          if (k === 4 && range && wrap) tr.wrap(range, wrap)
          if (k === 5 && range && target !== null && target !== undefined) tr.lift(range, target)
        }
        if (tr.steps.length > 0) d.applySteps(tr.steps)
      } catch {
        // a transform this document refuses
      }
      if (inbox[i].length === 0 || !rng.chance(0.5)) continue
      const old = d.doc
      const anchors = Array.from({ length: old.content.size + 1 }, (_, p) => d.anchorAt(p))
      let mapping: Mappable | null = null
      const off = d.on('change', (_steps, _origin, m) => (mapping = m))
      d.applyUpdate(inbox[i].splice(rng.int(0, inbox[i].length - 1), 1)[0], 'net')
      off()
      if (mapping === null) continue
      const m: Mappable = mapping
      for (let p = 0; p <= old.content.size; p++) {
        const r = m.mapResult(p, 1)
        if (r.deletedAfter) continue // a deleted token: "where it was" has several answers
        assert.is(
          r.pos,
          d.positionOf(anchors[p]),
          `seed ${seed}: position ${p} of ${old} in ${d.doc}`,
        )
        checked++
      }
    }
  }
  assert.ok(checked > 1000, `only ${checked} positions checked`)
})

test.run()
