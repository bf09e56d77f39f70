/**
 * Undo and redo of one's own changes only (client/undo.ts), headless: two RichDocs, two
 * editors (EditorState with the collab and undo plugins), edits exchanged at once.
 * Grouping, redo, a new change clearing redo; undoing an own insert while someone typed
 * inside or around it keeps their text; undoing an own delete restores it in place;
 * splits, marks, partial remote deletes, delete-then-restore inside one event, many
 * remote changes (compaction); and a randomized session where one user undoes
 * everything and none of the other's text is lost.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Node } from 'prosemirror-model'
import { TextSelection, type Transaction } from 'prosemirror-state'
import { RichDoc } from '../shared/rich-doc.ts'
import { richSchema as schema } from '../shared/rich-schema.ts'
import { collab } from '../client/collab.ts'
import { closeHistory, redo, redoDepth, undo, undoDepth, undoHistory } from '../client/undo.ts'
import { MAX_MAP_ITEMS } from '../client/undo-branch.ts'
import { headlessEditor, type HeadlessEditor } from './support/headless-editor.ts'
import { Rng } from './support/rng.ts'
import { findText } from './support/find-text.ts'

const M = schema.marks

interface Side {
  rich: RichDoc
  ed: HeadlessEditor
}

/** Two users whose edits reach each other at once (unless `hold` is set). */
function pair(text = '') {
  const mk = (agent: string): Side => {
    const rich = new RichDoc(schema, agent)
    const ed = headlessEditor(rich.doc, [collab(rich), undoHistory()], (state) =>
      assert.ok(state.doc.eq(rich.doc), `${agent}: view ${state.doc} vs rich ${rich.doc}`),
    )
    return { rich, ed }
  }
  const a = mk('a')
  const b = mk('b')
  const held: [RichDoc, Uint8Array][] = []
  const net = { hold: false }
  for (const [from, to] of [
    [a.rich, b.rich],
    [b.rich, a.rich],
  ])
    from.on('update', (u, origin) => {
      if (origin !== undefined) return
      if (net.hold) held.push([to, u])
      else to.applyUpdate(u, 'net')
    })
  const release = () => {
    net.hold = false
    for (const [to, u] of held.splice(0)) to.applyUpdate(u, 'net')
  }
  if (text) {
    b.ed.dispatch(b.ed.state.tr.insertText(text, 1).setMeta('addToHistory', false))
  }
  return { a: a.ed, b: b.ed, net, release }
}

let clock = 1_000_000
/** Dispatches `tr` as a change made well after the previous one (a new undo event). */
function later(e: HeadlessEditor, tr: Transaction): void {
  clock += 10_000
  e.dispatch(tr.setTime(clock))
}

function type(e: HeadlessEditor, pos: number, text: string): void {
  later(e, e.state.tr.insertText(text, pos))
}

const texts = (e: HeadlessEditor) => {
  const out: string[] = []
  e.state.doc.forEach((n) => out.push(n.textContent))
  return out
}

function same(a: HeadlessEditor, b: HeadlessEditor, want: string[]): void {
  assert.equal(texts(a), want)
  assert.ok(a.state.doc.eq(b.state.doc), `${a.state.doc} vs ${b.state.doc}`)
}

test('one user: grouped typing undoes at once, redo, a new change clears redo', () => {
  const { a, b } = pair()
  assert.is(undo(a.state, a.dispatch), false)
  const t = clock
  a.dispatch(a.state.tr.insertText('hel', 1).setTime(t))
  a.dispatch(a.state.tr.insertText('lo', 4).setTime(t + 100)) // adjacent, soon: same event
  type(a, 6, ' world') // later: a new event
  assert.is(undoDepth(a.state), 2)
  assert.ok(undo(a.state, a.dispatch))
  same(a, b, ['hello'])
  assert.ok(undo(a.state, a.dispatch))
  same(a, b, [''])
  assert.is(redoDepth(a.state), 2)
  assert.ok(redo(a.state, a.dispatch))
  same(a, b, ['hello'])
  type(a, 1, '>')
  assert.is(redoDepth(a.state), 0)
  assert.is(redo(a.state, a.dispatch), false)
  same(a, b, ['>hello'])
  // closeHistory starts a new event even for an adjacent change at the same time.
  const t2 = clock
  a.dispatch(closeHistory(a.state.tr.insertText('!', 7).setTime(t2)))
  a.dispatch(closeHistory(a.state.tr.insertText('?', 8).setTime(t2)))
  undo(a.state, a.dispatch)
  same(a, b, ['>hello!'])
})

test('undoing an own insert keeps what the other typed inside and around it', () => {
  const { a, b } = pair()
  type(a, 1, 'hello')
  type(b, findText(b.state.doc, 'llo'), 'XY') // inside
  type(b, 1, '[') // before
  type(b, b.state.doc.content.size - 1, ']') // after
  same(a, b, ['[heXYllo]'])
  undo(a.state, a.dispatch)
  same(a, b, ['[XY]'])
  redo(a.state, a.dispatch)
  same(a, b, ['[heXYllo]'])
})

test("undo reverts only one's own change, not the other's later one", () => {
  const { a, b } = pair('one')
  later(b, b.state.tr.split(4))
  type(a, 1, 'aaa ')
  type(b, b.state.doc.content.size - 1, ' bbb')
  same(a, b, ['aaa one', ' bbb'])
  undo(a.state, a.dispatch)
  same(a, b, ['one', ' bbb'])
  assert.is(undoDepth(a.state), 0)
  undo(b.state, b.dispatch) // b's own: its last change
  same(a, b, ['one', ''])
})

test('undoing an own delete restores the text where it was, around concurrent edits', () => {
  const { a, b } = pair('abcdef')
  later(a, a.state.tr.delete(findText(a.state.doc, 'cd'), findText(a.state.doc, 'cd') + 2))
  type(b, 1, 'Z')
  type(b, b.state.doc.content.size - 1, 'W')
  later(b, b.state.tr.split(findText(b.state.doc, 'b')))
  same(a, b, ['Za', 'befW'])
  undo(a.state, a.dispatch)
  same(a, b, ['Za', 'bcdefW'])
  redo(a.state, a.dispatch)
  same(a, b, ['Za', 'befW'])
})

test('undoing a split joins the halves and keeps text typed into both', () => {
  const { a, b } = pair('hello world')
  later(a, a.state.tr.split(findText(a.state.doc, ' world')))
  type(b, findText(b.state.doc, 'hello') + 5, 'X')
  type(b, findText(b.state.doc, ' world'), 'Y')
  same(a, b, ['helloX', 'Y world'])
  undo(a.state, a.dispatch)
  same(a, b, ['helloXY world'])
})

test('undoing bold removes it, text typed inside meanwhile included; redo brings it back', () => {
  const { a, b } = pair('plain text')
  const from = findText(a.state.doc, 'plain')
  later(a, a.state.tr.addMark(from, from + 5, M.strong.create()))
  type(b, from + 2, 'zz')
  assert.ok(b.state.doc.rangeHasMark(from, from + 7, M.strong))
  undo(a.state, a.dispatch)
  same(a, b, ['plzzain text'])
  assert.not.ok(b.state.doc.rangeHasMark(1, b.state.doc.content.size - 1, M.strong))
  redo(a.state, a.dispatch)
  assert.ok(b.state.doc.rangeHasMark(from, from + 7, M.strong))
})

test('an own insert partly deleted by the other: undo removes what is left of it', () => {
  const { a, b } = pair('[]')
  type(a, 2, 'hello')
  const e = findText(b.state.doc, 'ell')
  later(b, b.state.tr.delete(e, e + 3))
  same(a, b, ['[ho]'])
  undo(a.state, a.dispatch)
  same(a, b, ['[]'])
})

test('an event that inserts then deletes part of it, with a concurrent edit between', () => {
  const { a, b } = pair('..')
  const t = (clock += 10_000)
  a.dispatch(a.state.tr.insertText('abc', 2).setTime(t))
  a.dispatch(a.state.tr.delete(3, 4).setTime(t + 1)) // deletes 'b', same event
  type(b, 1, 'Z')
  same(a, b, ['Z.ac.'])
  undo(a.state, a.dispatch)
  same(a, b, ['Z..'])
  redo(a.state, a.dispatch)
  same(a, b, ['Z.ac.'])
})

test('edits received while offline, then undo; the selection comes back with the undo', () => {
  const { a, b, net, release } = pair('x')
  net.hold = true
  type(a, 2, 'mine')
  type(b, 1, 'theirs ')
  release()
  same(a, b, ['theirs xmine'])
  a.dispatch(a.state.tr.setSelection(TextSelection.create(a.state.doc, 1)))
  undo(a.state, a.dispatch)
  same(a, b, ['theirs x'])
  assert.is(a.state.selection.head, a.state.doc.content.size - 1)
})

test(`more than ${MAX_MAP_ITEMS} remote changes (history compaction): undo still reverts exactly one's own`, () => {
  const { a, b } = pair('|')
  type(a, 1, 'first ')
  type(a, a.state.doc.content.size - 2, ' second')
  const end = () => b.state.doc.content.size - 1
  for (let i = 0; i < MAX_MAP_ITEMS + 100; i++) {
    if (i % 50 === 0) later(b, b.state.tr.split(end()))
    else later(b, b.state.tr.insertText(String(i % 10), end()))
  }
  const other = texts(b).slice(1)
  undo(a.state, a.dispatch)
  same(a, b, ['first |', ...other])
  undo(a.state, a.dispatch)
  same(a, b, ['|', ...other])
  redo(a.state, a.dispatch)
  redo(a.state, a.dispatch)
  same(a, b, ['first  second|', ...other])
})

test('history depth: old events are dropped in batches; the kept ones still undo exactly', () => {
  const rich = new RichDoc(schema, 'solo')
  const e = headlessEditor(rich.doc, [collab(rich), undoHistory({ depth: 5 })])
  for (let i = 0; i < 40; i++) type(e, e.state.doc.content.size - 1, String(i % 10))
  const depth = undoDepth(e.state)
  assert.ok(depth >= 5 && depth <= 26, `depth ${depth}`)
  const before = e.state.doc.textContent
  while (undo(e.state, e.dispatch));
  assert.is(e.state.doc.textContent, before.slice(0, before.length - depth))
  assert.ok(e.state.doc.eq(rich.doc))
})

/** A random own edit: lowercase text for `a`, uppercase for `b`, deletes, splits. */
function randomEdit(rng: Rng, e: HeadlessEditor, upper: boolean): void {
  const doc = e.state.doc
  const size = doc.content.size
  const p = rng.int(1, size - 1)
  const $p = doc.resolve(p)
  const tr = e.state.tr
  const r = rng.int(0, 9)
  if (r < 5) {
    if (!$p.parent.inlineContent) return
    const s = rng.pick(['x', 'yz', 'hello', 'q'])
    tr.insertText(upper ? s.toUpperCase() : s, p)
  } else if (r < 8) {
    const q = Math.min(size - 1, p + rng.int(1, 6))
    if (!$p.parent.inlineContent || !doc.resolve(q).parent.inlineContent) return
    tr.delete(p, q)
  } else {
    if (!$p.parent.inlineContent) return
    tr.split(p)
  }
  if (!tr.docChanged) return
  if (process.env.UNDO_DEBUG)
    console.log(upper ? 'B' : 'A', JSON.stringify(tr.steps.map((x) => x.toJSON())))
  // Sometimes quick and adjacent (one event), sometimes a new event.
  clock += rng.chance(0.5) ? 50 : 10_000
  e.dispatch(tr.setTime(clock))
}

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length

test("randomized: after concurrent edits, one user undoes everything; the other's text is all there", () => {
  const seeds = Number(process.env.UNDO_FUZZ_ROUNDS ?? 30)
  const fixed = process.env.FUZZ_SEED
  const base = fixed !== undefined ? Number(fixed) : Date.now() % 100000
  for (let s = 0; s < (fixed !== undefined ? 1 : seeds); s++) {
    const seed = base + s
    const where = `seed ${seed} (replay: FUZZ_SEED=${seed} npx tsx test/client-undo.test.ts)`
    const rng = new Rng(seed)
    const { a, b, net, release } = pair('start')
    try {
      for (let step = 0; step < 40; step++) {
        net.hold = rng.chance(0.5)
        if (rng.chance(0.7)) randomEdit(rng, a, false)
        if (rng.chance(0.7)) randomEdit(rng, b, true)
        if (rng.chance(0.5)) release()
        if (rng.chance(0.1)) undo(a.state, a.dispatch)
        if (rng.chance(0.05)) redo(a.state, a.dispatch)
        if (process.env.UNDO_DEBUG)
          console.log(step, net.hold, String(a.state.doc), String(b.state.doc))
      }
      release()
      const text = () => a.state.doc.textContent
      const upperBefore = count(text(), /[A-Z]/g)
      while (undo(a.state, a.dispatch)) {
        release()
        if (process.env.UNDO_DEBUG)
          console.log(
            'undo',
            String(a.state.doc),
            JSON.stringify(a.log[a.log.length - 1].steps.map((x) => x.toJSON())),
          )
      }
      assert.ok(a.state.doc.eq(b.state.doc), `${where}: ${a.state.doc} vs ${b.state.doc}`)
      a.state.doc.check()
      // a's own typing is gone; b's, which a may have deleted, is back or still there.
      assert.is(
        count(text(), /[a-z]/g) - count('start', /[a-z]/g) <= 0,
        true,
        `${where}: ${a.state.doc}`,
      )
      assert.ok(count(text(), /[A-Z]/g) >= upperBefore, `${where}: b's text lost: ${a.state.doc}`)
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`)
    }
  }
})

test.run()
