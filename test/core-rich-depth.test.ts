/**
 * RELIABILITY.md C4, deeply nested rich content: a token sequence nested 1e5 levels deep goes
 * through every path that builds a tree from tokens (RichDoc.load, applyUpdate with its remote
 * fast path, the server's REST projection) without a stack overflow: nodes deeper than
 * MAX_RICH_DEPTH give way to their content, alike on every replica. Local steps that would nest
 * deeper throw RichDepthError and change nothing; documents at the limit are untouched. Attribute
 * values nested too deep: refused locally, their records ignored remotely. Wide content (no
 * argument spreads) too.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Fragment, Node, Schema, Slice } from 'prosemirror-model'
import { AddMarkStep, AttrStep, DocAttrStep, ReplaceStep, Transform } from 'prosemirror-transform'
import { RichDoc } from '../shared/rich-doc.ts'
import { richSchema } from '../shared/rich-schema.ts'
import { TextDoc } from '../shared/text-doc.ts'
import { CLOSE, MAX_RICH_DEPTH, OPEN, REC, RichDepthError } from '../shared/rich-tokens.ts'
import { documentView, richText } from '../server/rich-projection.ts'

const s = richSchema
const { paragraph, blockquote } = s.nodes
const DEEP = 100_000

/**
 * A rich document's events whose tokens nest `n` blockquotes around a paragraph holding "x",
 * written by a raw (foreign) replica: one token insert, then its init record.
 */
function deepTokens(n: number, updates: Uint8Array[] = []): TextDoc {
  const t = TextDoc.load(new RichDoc(s, 'r').save(), 'evil')
  t.on('update', (u) => void updates.push(u))
  t.insert(0, OPEN.repeat(n + 1) + 'x' + CLOSE.repeat(n + 1))
  const it: unknown[] = []
  for (let k = 0; k < n; k++) it.push([k, 1, { t: 'blockquote', at: {}, m: [] }])
  it.push([n, 1, { t: 'paragraph', at: {}, m: [] }])
  t.insert(t.length, REC + JSON.stringify({ k: 'i', a: 'evil', s: 0, it }))
  return t
}

/** The depth of the deepest position in `node` (iterative, independent of the code under test). */
function depthOf(node: Node): number {
  let max = 0
  const stack: [Node, number][] = [[node, 0]]
  while (stack.length > 0) {
    const [n, d] = stack.pop()!
    max = Math.max(max, d)
    n.forEach((c) => {
      if (!c.isLeaf) stack.push([c, d + 1])
    })
  }
  return max
}

/** `n` blockquotes around `inner`, built without recursion. */
function nest(n: number, inner: Node): Node {
  let node = inner
  for (let k = 0; k < n; k++) node = blockquote.create(null, node)
  return node
}

/** How many blockquotes wrap the first textblock, and that textblock. */
function chain(doc: Node): { quotes: number; block: Node } {
  let quotes = 0
  let n = doc.firstChild!
  while (n.type === blockquote) {
    quotes++
    n = n.firstChild!
  }
  return { quotes, block: n }
}

/** A RichDoc whose paragraph "x" sits exactly MAX_RICH_DEPTH deep (199 blockquotes around it). */
function atLimit(agent: string): RichDoc {
  const d = new RichDoc(s, agent)
  const content = nest(MAX_RICH_DEPTH - 1, paragraph.create(null, s.text('x')))
  d.applySteps([new ReplaceStep(0, d.doc.content.size, new Slice(Fragment.from(content), 0, 0))])
  return d
}

function assertRefused(d: RichDoc, steps: ReplaceStep[] | Transform['steps'], what = 'nodes') {
  const before = d.doc
  const vv = JSON.stringify(d.version())
  let events = 0
  const off = d.on('update', () => void events++)
  try {
    d.applySteps(steps)
    assert.unreachable('applySteps should refuse')
  } catch (e) {
    assert.instance(e, RichDepthError)
    assert.instance(e, RangeError)
    assert.is((e as Error).name, 'RichDepthError')
    assert.is(
      (e as Error).message,
      `${what} would nest deeper than MAX_RICH_DEPTH (${MAX_RICH_DEPTH} levels)`,
    )
  } finally {
    off()
  }
  assert.ok(d.doc === before, 'document unchanged')
  assert.is(JSON.stringify(d.version()), vv, 'no event made')
  assert.is(events, 0)
}

test('the limit and its error', () => {
  assert.is(MAX_RICH_DEPTH, 200)
  const e = new RichDepthError()
  assert.instance(e, RangeError)
  assert.is(e.name, 'RichDepthError')
  assert.match(e.message, /deeper than MAX_RICH_DEPTH \(200 levels\)/)
})

const deepUpdates: Uint8Array[] = []
const deep = deepTokens(DEEP, deepUpdates)
let deepLoaded: RichDoc

test('RichDoc.load of 1e5 nested tokens: excess nesting flattened, content kept', () => {
  deepLoaded = RichDoc.load(s, deep.save(), 'b')
  const doc = deepLoaded.doc
  doc.check()
  const { quotes, block } = chain(doc)
  // 200 token blockquotes; the deeper ones and the paragraph gave way, "x" got a made-up paragraph.
  assert.is(quotes, MAX_RICH_DEPTH)
  assert.is(block.type, paragraph)
  assert.is(block.textContent, 'x')
  assert.is(depthOf(doc), MAX_RICH_DEPTH + 1)
  assert.is(doc.textContent, 'x')
  assert.ok(Node.fromJSON(s, JSON.parse(JSON.stringify(doc.toJSON()))).eq(doc))
})

test('applyUpdate of 1e5 nested tokens (remote fast path, then full projection) gives the same', () => {
  const live = new RichDoc(s, 'live')
  live.applyUpdate(deep.encodeUpdate())
  assert.ok(live.doc.eq(deepLoaded.doc))
  live.checkInvariants()
  // The token insert alone (types unknown yet: every node gives way), then its record.
  assert.is(deepUpdates.length, 2)
  const step = new RichDoc(s, 'step')
  step.applyUpdate(deepUpdates[0])
  assert.is(step.doc.textContent, 'x')
  step.checkInvariants()
  step.applyUpdate(deepUpdates[1])
  assert.ok(step.doc.eq(deepLoaded.doc))
  step.checkInvariants()
})

test('server REST projection (documentView) of 1e5 nested tokens', () => {
  const view = documentView(deep, s)
  assert.is(view.text, richText(deepLoaded.doc))
  assert.ok(view.text.startsWith('x'))
  const json = JSON.stringify(view.doc)
  assert.ok(Node.fromJSON(s, JSON.parse(json)).eq(deepLoaded.doc))
})

test('documents at the limit are projected unchanged', () => {
  const d = atLimit('a')
  assert.is(depthOf(d.doc), MAX_RICH_DEPTH)
  assert.is(chain(d.doc).quotes, MAX_RICH_DEPTH - 1)
  d.checkInvariants()
  assert.ok(RichDoc.load(s, d.save()).doc.eq(d.doc))
  // The same nesting from raw tokens (before the genesis' empty paragraph): exactly that node.
  const raw = RichDoc.load(s, deepTokens(MAX_RICH_DEPTH - 1).save())
  assert.ok(raw.doc.firstChild!.eq(d.doc.firstChild!))
  assert.is(raw.positionOf(raw.anchorAt(MAX_RICH_DEPTH)), MAX_RICH_DEPTH) // identity: exact tokens
  // One level more: the paragraph gives way, its text gets a made-up one.
  const over = RichDoc.load(s, deepTokens(MAX_RICH_DEPTH).save())
  assert.is(chain(over.doc).quotes, MAX_RICH_DEPTH)
  assert.is(depthOf(over.doc), MAX_RICH_DEPTH + 1)
  assert.is(over.doc.textContent, 'x')
})

test('local steps nesting deeper than the limit are refused; at the limit they work', () => {
  const d = atLimit('a')
  const inner = MAX_RICH_DEPTH // "x" starts here
  // Wrapping the deepest paragraph (ReplaceAroundStep).
  const tr = new Transform(d.doc)
  const $x = d.doc.resolve(inner)
  tr.wrap($x.blockRange()!, [{ type: blockquote }])
  assertRefused(d, tr.steps)
  // Inserting a quoted paragraph into the deepest blockquote (ReplaceStep).
  const quoted = blockquote.create(null, paragraph.create(null, s.text('y')))
  assertRefused(d, [new ReplaceStep(inner + 2, inner + 2, new Slice(Fragment.from(quoted), 0, 0))])
  // A 1e5-deep slice: refused before ProseMirror walks it.
  const huge = nest(DEEP, paragraph.create(null, s.text('z')))
  assertRefused(d, [new ReplaceStep(0, 0, new Slice(Fragment.from(huge), 0, 0))])
  // Within the limit: typing, Enter, a paragraph next to the deepest one.
  const ok = new Transform(d.doc)
  ok.insert(inner + 1, s.text('ab'))
  ok.split(inner + 2)
  ok.insert(ok.doc.resolve(inner + 2).after(), paragraph.create(null, s.text('w')))
  d.applySteps(ok.steps)
  assert.ok(d.doc.eq(ok.doc))
  assert.is(depthOf(d.doc), MAX_RICH_DEPTH)
  d.checkInvariants()
})

test('editing a flattened document keeps replicas converged', () => {
  const b = RichDoc.load(s, deep.save(), 'b')
  const c = RichDoc.load(s, deep.save(), 'c')
  const at = MAX_RICH_DEPTH + 1 // inside the made-up paragraph, before "x"
  b.applySteps([new ReplaceStep(at, at, new Slice(Fragment.from(s.text('hi ')), 0, 0))])
  assert.is(b.doc.textContent, 'hi x')
  const tr = new Transform(c.doc)
  tr.insert(at + 1, s.text('!'))
  c.applySteps(tr.steps)
  b.applyUpdate(c.encodeUpdate(b.version()))
  c.applyUpdate(b.encodeUpdate(c.version()))
  assert.ok(b.doc.eq(c.doc), `${b.doc.textContent} vs ${c.doc.textContent}`)
  assert.is(b.doc.textContent, 'hi x!')
  assert.ok(depthOf(b.doc) <= MAX_RICH_DEPTH + 1)
  b.checkInvariants()
  c.checkInvariants()
})

// Attribute values: JSON in records, compared and serialized recursively by ProseMirror.
const attrSchema = new Schema({
  nodes: {
    doc: { content: 'block+', attrs: { meta: { default: null } } },
    p: { group: 'block', content: 'text*', attrs: { data: { default: null } } },
    text: {},
  },
})

function nestedValue(depth: number): unknown {
  let v: unknown = 1
  for (let k = 0; k < depth; k++) v = [v]
  return v
}

test('attribute values nested too deep: refused locally, ignored from a remote record', () => {
  const d = new RichDoc(attrSchema, 'a')
  assertRefused(d, [new DocAttrStep('meta', nestedValue(DEEP))], 'attribute values')
  assertRefused(d, [new AttrStep(0, 'data', nestedValue(MAX_RICH_DEPTH + 1))], 'attribute values')
  // At the limit: recorded, and every replica (a reload) keeps it.
  d.applySteps([new AttrStep(0, 'data', nestedValue(MAX_RICH_DEPTH))])
  d.applySteps([new DocAttrStep('meta', nestedValue(MAX_RICH_DEPTH))])
  assert.equal(d.doc.firstChild!.attrs.data, nestedValue(MAX_RICH_DEPTH))
  d.checkInvariants()
  // A foreign replica's init record with a 1e5-deep value: ignored (the node has no known type).
  const t = TextDoc.load(new RichDoc(attrSchema, 'r').save(), 'evil')
  t.insert(0, OPEN + 'x' + CLOSE)
  const value = '['.repeat(DEEP) + '1' + ']'.repeat(DEEP)
  t.insert(
    t.length,
    REC + `{"k":"i","a":"evil","s":0,"it":[[0,1,{"t":"p","at":{"data":${value}},"m":[]}]]}`,
  )
  const loaded = RichDoc.load(attrSchema, t.save())
  assert.is(loaded.doc.textContent, 'x')
  JSON.stringify(loaded.doc.toJSON())
  loaded.checkInvariants()
})

test('wide content: a 3e5-character paragraph and formatting over 3e5 concurrent characters', () => {
  const n = 300_000
  const a = new RichDoc(s, 'a')
  const b = new RichDoc(s, 'b')
  a.applySteps([new ReplaceStep(1, 1, new Slice(Fragment.from(s.text('ab')), 0, 0))])
  b.applyUpdate(a.encodeUpdate())
  // b types n characters between "a" and "b" while a makes "ab" bold, unaware of them.
  b.applySteps([new ReplaceStep(2, 2, new Slice(Fragment.from(s.text('y'.repeat(n))), 0, 0))])
  a.applySteps([new AddMarkStep(1, 3, s.marks.strong.create())])
  a.applyUpdate(b.encodeUpdate(a.version()))
  b.applyUpdate(a.encodeUpdate(b.version()))
  assert.ok(a.doc.eq(b.doc))
  assert.is(a.doc.textContent.length, n + 2)
  const reloaded = RichDoc.load(s, a.save())
  assert.ok(reloaded.doc.eq(a.doc))
})

test.run()
