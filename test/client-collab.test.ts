/**
 * The collab plugin, headless (state level, no DOM): local transactions become RichDoc
 * events (one batch each), remote changes arrive as one transaction that maps the
 * selection and stays out of the history, the editor's doc is `eq` to `rich.doc` after
 * every transaction (also under a randomized multi-editor session), refused batches and
 * mismatching steps fall back to the RichDoc's document, and presence: the local
 * selection published as anchors, remote carets and selections drawn as decorations
 * that follow concurrent edits, names, colours, leaving.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Fragment, Slice, type Node } from 'prosemirror-model'
import { EditorState, TextSelection } from 'prosemirror-state'
import { findWrapping, liftTarget, ReplaceStep } from 'prosemirror-transform'
import { RichDoc } from '../shared/rich-doc.ts'
import { richSchema as schema } from '../shared/rich-schema.ts'
import { Presence } from '../shared/presence.ts'
import { link } from '../shared/sync.ts'
import {
  collab,
  collabKey,
  isRemoteTransaction,
  remoteCursors,
  remoteTransaction,
} from '../client/collab.ts'
import { headlessEditor, type HeadlessEditor } from './support/headless-editor.ts'
import { VirtualClock, simPair } from './support/netsim.ts'
import { Rng } from './support/rng.ts'
import { findText } from './support/find-text.ts'

const N = schema.nodes
const M = schema.marks

/** An editor on `rich` that asserts the view's doc equals `rich.doc` after every transaction. */
function editorOn(rich: RichDoc, presence?: Presence, onError?: (e: Error) => void) {
  return headlessEditor(rich.doc, [collab(rich, { presence, onError })], (state, tr) =>
    assert.ok(
      state.doc.eq(rich.doc),
      `after ${JSON.stringify(tr.steps.map((s) => s.toJSON()))}: view ${state.doc} vs rich ${rich.doc}`,
    ),
  )
}

/** Passes every local update of each doc to the others at once. */
function wire(...docs: RichDoc[]): void {
  for (const d of docs)
    d.on('update', (u, origin) => {
      if (origin === undefined) for (const o of docs) if (o !== d) o.applyUpdate(u, 'net')
    })
}

const tick = () => new Promise<void>((r) => setTimeout(r, 0))

test('local transactions become RichDoc events, one batch each; the other editor shows them', () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  wire(a, b)
  const ea = editorOn(a)
  const eb = editorOn(b)
  let updates = 0
  a.on('update', (_u, origin) => origin === undefined && updates++)
  ea.dispatch(ea.state.tr.insertText('hello world', 1))
  ea.dispatch(ea.state.tr.split(6).addMark(1, 6, M.strong.create()))
  const range = ea.state.doc.resolve(1).blockRange(ea.state.doc.resolve(8))!
  ea.dispatch(ea.state.tr.wrap(range, findWrapping(range, N.bullet_list)!))
  ea.dispatch(ea.state.tr.setSelection(TextSelection.create(ea.state.doc, 3))) // no doc change
  assert.is(updates, 3)
  assert.ok(a.doc.eq(ea.state.doc))
  assert.ok(eb.state.doc.eq(ea.state.doc), `${eb.state.doc} vs ${ea.state.doc}`)
  assert.is(ea.state.doc.child(0).type, N.bullet_list)
})

test('a remote change is one transaction, out of the history, that maps the selection', () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  wire(a, b)
  const ea = editorOn(a)
  const eb = editorOn(b)
  ea.dispatch(ea.state.tr.insertText('hello world', 1))
  const w = findText(eb.state.doc, 'world')
  eb.dispatch(eb.state.tr.setSelection(TextSelection.create(eb.state.doc, w, w + 5)))
  const before = eb.log.length
  ea.dispatch(ea.state.tr.insertText('big ', 1).split(3))
  assert.is(eb.log.length, before + 1, 'one transaction per remote change')
  const tr = eb.log[eb.log.length - 1]
  assert.ok(isRemoteTransaction(tr))
  assert.is(tr.getMeta('addToHistory'), false)
  assert.is((tr.getMeta(collabKey) as { origin: unknown }).origin, 'net')
  const { from, to } = eb.state.selection
  assert.is(eb.state.doc.textBetween(from, to), 'world')
  assert.not.ok(isRemoteTransaction(ea.log[ea.log.length - 1]))
})

test('remote steps that do not fit the editor fall back to the RichDoc document', () => {
  const rich = new RichDoc(schema, 'a')
  const other = EditorState.create({
    doc: N.doc.create(null, [N.heading.create({ level: 1 }, schema.text('x'))]),
  })
  const target = N.doc.create(null, [N.paragraph.create(null, schema.text('abc'))])
  const step = new ReplaceStep(50, 60, target.slice(1, 3)) // does not apply to `other`
  const tr = remoteTransaction(other, [step], target, 'net')
  assert.ok(tr.doc.eq(target))
  assert.ok(isRemoteTransaction(tr))
  // A view mounted on another document is brought to the RichDoc's when it starts.
  rich.applySteps([new ReplaceStep(1, 1, target.slice(1, 4))])
  const e = headlessEditor(other.doc, [collab(rich)])
  return tick().then(() => {
    assert.ok(e.state.doc.eq(rich.doc), `${e.state.doc}`)
    e.destroy()
  })
})

test('a batch the RichDoc refuses leaves the editor showing the RichDoc, with an error', () => {
  const a = new RichDoc(schema, 'a')
  const errors: Error[] = []
  const e = editorOn(a, undefined, (err) => errors.push(err))
  e.dispatch(e.state.tr.insertText('ok', 1))
  e.dispatch(e.state.tr.insertText('bad\uFDD0', 3)) // reserved code unit: refused
  assert.is(errors.length, 1)
  assert.instance(errors[0], RangeError)
  assert.is(e.state.doc.textContent, 'ok')
  e.dispatch(e.state.tr.insertText('!', 3))
  assert.is(a.doc.textContent, 'ok!')
})

/** Gives `e` a DOM observer whose next flush dispatches `pending` (what the DOM held unread). */
function pendingDom(e: HeadlessEditor, pending: () => void): { flushes: number } {
  const seen = { flushes: 0 }
  let todo: (() => void) | null = pending
  ;(e as unknown as { domObserver: { flush(): void } }).domObserver = {
    flush() {
      seen.flushes++
      const run = todo
      todo = null
      run?.()
    },
  }
  return seen
}

test('a caret the view has not read from the DOM yet is read before a remote change, then mapped', () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  wire(a, b)
  const ea = editorOn(a)
  const eb = editorOn(b)
  ea.dispatch(ea.state.tr.insertText('hello world', 1))
  eb.dispatch(eb.state.tr.setSelection(TextSelection.create(eb.state.doc, 3)))
  // B pressed End: the DOM caret is at 12, the view has not read it yet.
  const seen = pendingDom(eb, () =>
    eb.dispatch(eb.state.tr.setSelection(TextSelection.create(eb.state.doc, 12))),
  )
  ea.dispatch(ea.state.tr.insertText('>> ', 1))
  assert.is(seen.flushes, 1)
  assert.is(eb.state.selection.head, 15, 'the caret read from the DOM, mapped')
})

test('text typed but not read yet when a remote change arrives is rebased over it', () => {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  // a -> b at once; b -> a later, as a network would (not from inside a's own edit).
  a.on('update', (u, origin) => origin === undefined && b.applyUpdate(u, 'net'))
  const toA: Uint8Array[] = []
  b.on('update', (u, origin) => origin === undefined && toA.push(u))
  const errors: Error[] = []
  const ea = editorOn(a, undefined, (e) => errors.push(e))
  const eb = editorOn(b, undefined, (e) => errors.push(e))
  ea.dispatch(ea.state.tr.insertText('hello world', 1))
  const end = eb.state.doc.content.size - 1
  pendingDom(eb, () => eb.dispatch(eb.state.tr.insertText('!', end)))
  ea.dispatch(ea.state.tr.insertText('>> ', 1).split(9))
  for (const u of toA.splice(0)) a.applyUpdate(u, 'net')
  assert.equal(errors, [])
  assert.ok(eb.state.doc.eq(b.doc))
  assert.ok(ea.state.doc.eq(eb.state.doc), `${ea.state.doc} vs ${eb.state.doc}`)
  assert.is(ea.state.doc.textContent, '>> hello world!')
  assert.is(ea.state.doc.childCount, 2)
})

/** Two editors with presence over a simulated link, on virtual time. */
function presencePair() {
  const clock = new VirtualClock()
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  const pa = new Presence({ id: 'pa', clock })
  const pb = new Presence({ id: 'pb', clock })
  const [x, y] = simPair(clock, 5)
  link(a, x, { presence: pa, clock })
  link(b, y, { presence: pb, clock })
  pa.setLocal({ name: 'Ann', color: '#e11d48' })
  pb.setLocal({ name: 'Bob', color: 'red; background: url(x)' })
  const flush = () => clock.advance(500)
  return { clock, a, b, pa, pb, flush }
}

async function mount(rich: RichDoc, presence: Presence): Promise<HeadlessEditor> {
  const e = editorOn(rich, presence)
  await tick() // the binding starts right after the view is constructed
  return e
}

test('presence: the local selection goes out as anchors; the other editor draws caret and range', async () => {
  const { a, b, pa, pb, flush } = presencePair()
  const ea = await mount(a, pa)
  const eb = await mount(b, pb)
  ea.dispatch(ea.state.tr.insertText('hello world', 1))
  flush()
  const w = findText(ea.state.doc, 'world')
  ea.dispatch(ea.state.tr.setSelection(TextSelection.create(ea.state.doc, w, w + 5)))
  const sel = pa.getLocal()!.selection!
  assert.equal(sel.anchor, a.anchorAt(w))
  assert.is(pa.getLocal()!.name, 'Ann', 'the name is kept beside the selection')
  flush()
  let cursors = remoteCursors(eb.state)
  assert.is(cursors.length, 1)
  assert.is(cursors[0].name, 'Ann')
  assert.is(cursors[0].color, '#e11d48')
  assert.is(eb.state.doc.textBetween(cursors[0].anchor, cursors[0].head), 'world')
  const decos = collabKey.getState(eb.state)!.decorations.find()
  const caret = decos.find((d) => d.from === d.to)!
  const range = decos.find((d) => d.from < d.to)!
  assert.is(caret.from, cursors[0].head)
  assert.equal([range.from, range.to], [cursors[0].anchor, cursors[0].head])
  // B edits before and inside-adjacent: the drawn range still covers 'world'.
  eb.dispatch(eb.state.tr.insertText('>> ', 1))
  eb.dispatch(eb.state.tr.split(findText(eb.state.doc, 'world') - 1))
  const mapped = collabKey
    .getState(eb.state)!
    .decorations.find()
    .find((d) => d.from < d.to)!
  assert.is(eb.state.doc.textBetween(mapped.from, mapped.to), 'world')
  flush()
  // A sees B's caret with a safe colour (B's was an injection attempt), after A's own edits.
  cursors = remoteCursors(ea.state)
  assert.is(cursors.length, 1)
  assert.is(cursors[0].name, 'Bob')
  assert.match(cursors[0].color, /^hsl\(\d+, 65%, 45%\)$/)
  const bsel = eb.state.selection
  assert.is(cursors[0].head, bsel.head)
  // A concurrent edit on A's side before B's caret: after the exchange it is still there.
  ea.dispatch(ea.state.tr.insertText('xyz', 1))
  flush()
  const c2 = remoteCursors(ea.state)[0]
  assert.is(c2.head, eb.state.selection.head)
  ea.destroy()
  eb.destroy()
})

test('presence: renaming keeps the caret; leaving removes it', async () => {
  const { a, b, pa, pb, flush } = presencePair()
  const ea = await mount(a, pa)
  const eb = await mount(b, pb)
  ea.dispatch(ea.state.tr.insertText('abc', 1))
  flush()
  pa.setLocal({ ...pa.getLocal(), name: 'Annie' })
  flush()
  assert.is(remoteCursors(eb.state)[0].name, 'Annie')
  assert.is(remoteCursors(eb.state)[0].head, 4)
  ea.destroy() // the editor goes: its selection is withdrawn, the user stays listed
  flush()
  assert.is(remoteCursors(eb.state).length, 0)
  assert.is(pb.getStates().get('pa')?.name, 'Annie')
  ea.dispatch(ea.state.tr.insertText('d', 4)) // a destroyed binding no longer publishes
  pa.destroy()
  flush()
  assert.is(pb.getStates().has('pa'), false)
  eb.destroy()
})

test('presence: a caret whose events have not arrived yet is drawn once they do', async () => {
  const { b, pa, pb, flush } = presencePair()
  const eb = await mount(b, pb)
  // A edits outside any editor and announces a caret in the new text, but B only gets
  // the presence first: the document update is held back.
  const held: Uint8Array[] = []
  const c = new RichDoc(schema, 'c')
  c.on('update', (u, o) => o === undefined && held.push(u))
  c.applySteps([new ReplaceStep(1, 1, N.paragraph.create(null, schema.text('new')).slice(0, 3))])
  pa.setLocal({ name: 'Cy', selection: { anchor: c.anchorAt(2), head: c.anchorAt(2) } })
  flush()
  assert.is(remoteCursors(eb.state).length, 0)
  for (const u of held) b.applyUpdate(u, 'late')
  assert.is(remoteCursors(eb.state).length, 1)
  assert.is(remoteCursors(eb.state)[0].head, 2)
  // A caret at the end of the paragraph anchors to its closing token, which B has: drawn
  // at once, then moved when the text typed before it arrives (not left where it was).
  pa.setLocal({ name: 'Cy', selection: { anchor: c.anchorAt(4), head: c.anchorAt(4) } })
  flush()
  assert.is(remoteCursors(eb.state)[0].head, 4)
  held.length = 0
  c.applySteps([new ReplaceStep(4, 4, new Slice(Fragment.from(schema.text(' more')), 0, 0))])
  for (const u of held) b.applyUpdate(u, 'late')
  assert.is(b.doc.textContent, 'new more')
  assert.is(remoteCursors(eb.state)[0].head, 9)
  const caret = collabKey.getState(eb.state)!.decorations.find()[0]
  assert.is(caret.from, 9)
  eb.destroy()
})

/** One random transaction on `e`; false when none applied. */
function randomEdit(rng: Rng, e: HeadlessEditor): boolean {
  const state = e.state
  const doc = state.doc
  const size = doc.content.size
  const a = rng.int(0, size)
  const b = Math.min(size, a + rng.int(0, 10))
  const tr = state.tr
  try {
    switch (rng.int(0, 7)) {
      case 0:
      case 1: {
        const $a = doc.resolve(a)
        if (!$a.parent.inlineContent) return false
        tr.insertText(rng.pick(['x', 'yz', 'hello ']), a)
        break
      }
      case 2:
        tr.delete(a, b)
        break
      case 3:
        if (!doc.resolve(a).parent.inlineContent) return false
        tr.split(a)
        break
      case 4:
        tr.addMark(a, b, rng.pick([M.strong.create(), M.em.create()]))
        break
      case 5: {
        const range = doc.resolve(a).blockRange(doc.resolve(b))
        const wrap = range && findWrapping(range, rng.pick([N.blockquote, N.bullet_list]))
        if (!range || !wrap) return false
        tr.wrap(range, wrap)
        break
      }
      case 6: {
        const range = doc.resolve(a).blockRange(doc.resolve(b))
        const target = range && liftTarget(range)
        if (!range || target === null || target === undefined) return false
        tr.lift(range, target)
        break
      }
      default:
        tr.setBlockType(a, b, N.heading, { level: rng.int(1, 3) })
    }
  } catch {
    return false
  }
  if (!tr.docChanged) return false
  e.dispatch(tr)
  return true
}

test('randomized: 3 editors, random edits and delivery; every editor equals its RichDoc throughout, all converge', () => {
  const seeds = Number(process.env.COLLAB_FUZZ_ROUNDS ?? 10)
  const base =
    process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Date.now() % 100000
  for (let s = 0; s < (process.env.FUZZ_SEED !== undefined ? 1 : seeds); s++) {
    const seed = base + s
    const where = `seed ${seed} (replay: FUZZ_SEED=${seed} npx tsx test/client-collab.test.ts)`
    const rng = new Rng(seed)
    const docs = ['a', 'b', 'c'].map((agent) => new RichDoc(schema, agent))
    const inbox: Uint8Array[][] = docs.map(() => [])
    docs.forEach((d, i) =>
      d.on('update', (u, origin) => {
        if (origin === undefined) docs.forEach((_, j) => j !== i && inbox[j].push(u))
      }),
    )
    const errors: Error[] = []
    const editors = docs.map((d) => editorOn(d, undefined, (e) => errors.push(e)))
    try {
      for (let step = 0; step < 80; step++) {
        const i = rng.int(0, 2)
        if (rng.chance(0.6)) randomEdit(rng, editors[i])
        if (rng.chance(0.5) && inbox[i].length > 0) {
          const k = rng.int(0, inbox[i].length - 1)
          docs[i].applyUpdate(inbox[i].splice(k, 1)[0], 'net')
        }
      }
      for (let i = 0; i < 3; i++)
        for (const u of rng.shuffle(inbox[i])) docs[i].applyUpdate(u, 'net')
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).stack}`)
    }
    assert.equal(errors.map(String), [], `${where}: the binding reported errors`)
    for (const e of editors) {
      assert.ok(
        e.state.doc.eq(editors[0].state.doc),
        `${where}: ${e.state.doc} vs ${editors[0].state.doc}`,
      )
      e.state.doc.check()
    }
  }
})

test.run()
