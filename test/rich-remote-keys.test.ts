/**
 * Remote keystrokes on a RichDoc (the remote fast path: an edit made on exactly what the
 * receiver holds): typing with marks, Enter in paragraphs, headings, list items and
 * quotes, hard breaks, Backspace joins, pasted blocks. After every delivery the receiver's
 * document must equal the full projection and the sender's (`checkInvariants`), and a
 * remote Enter on a large document must not cost a full projection.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Slice, type Node } from 'prosemirror-model'
import { EditorState, TextSelection, type Command } from 'prosemirror-state'
import { splitBlock, toggleMark, joinBackward, deleteSelection } from 'prosemirror-commands'
import { splitListItem, wrapInList } from 'prosemirror-schema-list'
import { ReplaceStep } from 'prosemirror-transform'
import { RichDoc } from '../shared/rich-doc.ts'
import { richSchema as schema } from '../shared/rich-schema.ts'
import { Rng } from './support/rng.ts'

const N = schema.nodes
const M = schema.marks

/** A sender and a receiver that gets each update as soon as it is made. */
function pair() {
  const a = new RichDoc(schema, 'a')
  const b = new RichDoc(schema, 'b')
  a.on('update', (u, origin) => {
    if (origin !== undefined) return
    b.applyUpdate(u, 'net')
    assert.ok(b.doc.eq(a.doc), `receiver ${b.doc}\n sender ${a.doc}`)
    b.checkInvariants()
  })
  let state = EditorState.create({ doc: a.doc })
  const run = (cmd: Command) => {
    cmd(state, (tr) => {
      a.applySteps(tr.steps)
      state = state.apply(tr)
      assert.ok(a.doc.eq(state.doc))
    })
  }
  const at = (pos: number) => {
    state = state.apply(state.tr.setSelection(TextSelection.create(state.doc, pos)))
  }
  const type =
    (text: string): Command =>
    (s, dispatch) => {
      dispatch?.(s.tr.insertText(text))
      return true
    }
  return {
    a,
    b,
    run,
    at,
    type,
    get doc(): Node {
      return state.doc
    },
  }
}

test('typing, Enter, marks, hard breaks, Backspace joins: the receiver equals the full projection', () => {
  const p = pair()
  p.at(1)
  for (const ch of 'hello') p.run(p.type(ch))
  p.run(toggleMark(M.strong))
  for (const ch of ' bold') p.run(p.type(ch))
  p.run(splitBlock)
  p.run(p.type('second'))
  p.run((s, d) => (d?.(s.tr.replaceSelectionWith(N.hard_break.create())), true))
  p.run(p.type('after break'))
  p.at(3)
  p.run(splitBlock) // Enter inside a word
  p.run(joinBackward) // Backspace joins it again
  p.run(wrapInList(N.bullet_list))
  p.run(p.type(' item'))
  p.run(splitListItem(N.list_item)) // Enter in a list item
  p.run(p.type('next item'))
  assert.is(p.b.doc.child(0).type, N.bullet_list)
  assert.ok(p.b.doc.eq(p.a.doc))
})

test('Enter in a heading and in a quote; a pasted run of blocks', () => {
  const p = pair()
  p.at(1)
  p.run(p.type('Title'))
  p.run((s, d) => (d?.(s.tr.setBlockType(1, 6, N.heading, { level: 2 })), true))
  p.at(4)
  p.run(splitBlock)
  const quote = N.blockquote.create(null, [N.paragraph.create(null, schema.text('quoted'))])
  p.run((s, d) => (d?.(s.tr.insert(s.doc.content.size, quote)), true))
  p.at(p.doc.content.size - 3)
  p.run(splitBlock)
  p.run(p.type('x'))
  const pasted = new Slice(
    N.doc.create(null, [
      N.paragraph.create(null, schema.text('one')),
      N.paragraph.create(null, schema.text('two', [M.em.create()])),
    ]).content,
    1,
    1,
  )
  p.run((s, d) => (d?.(s.tr.replaceSelection(pasted)), true))
  p.run(deleteSelection)
  assert.ok(p.b.doc.eq(p.a.doc))
})

test('randomized keystrokes and commands, each delivered at once', () => {
  const base = Date.now() % 100000
  for (let seed = base; seed < base + 8; seed++) {
    const rng = new Rng(seed)
    const p = pair()
    try {
      for (let i = 0; i < 60; i++) {
        const size = p.doc.content.size
        const pos = rng.int(0, size)
        const $pos = p.doc.resolve(pos)
        if ($pos.parent.inlineContent) p.at(pos)
        const cmd = rng.pick<Command>([
          p.type(rng.pick(['a', 'bc', ' '])),
          p.type('d'),
          splitBlock,
          splitListItem(N.list_item),
          joinBackward,
          toggleMark(M.em),
          wrapInList(N.ordered_list),
          (s, d) => (d?.(s.tr.replaceSelectionWith(N.hard_break.create())), true),
        ])
        p.run(cmd)
      }
    } catch (e) {
      throw new Error(`seed ${seed}: ${(e as Error).message}`)
    }
  }
})

test('a remote Enter on a large document costs far less than a full projection', () => {
  const a = new RichDoc(schema, 'a')
  const paras = Array.from({ length: 800 }, (_, i) =>
    N.paragraph.create(null, schema.text(`paragraph ${i} `.repeat(8))),
  )
  a.applySteps([
    new ReplaceStep(0, a.doc.content.size, new Slice(N.doc.create(null, paras).content, 0, 0)),
  ])
  const b = new RichDoc(schema, 'b')
  b.applyUpdate(a.encodeUpdate())
  const updates: Uint8Array[] = []
  a.on('update', (u, o) => o === undefined && updates.push(u))
  const time = (f: () => void) => {
    const t = performance.now()
    f()
    return performance.now() - t
  }
  // A full projection: at a third replica, a remote edit concurrent with a local one.
  const c = RichDoc.load(schema, a.save(), 'c')
  const d = RichDoc.load(schema, a.save(), 'd')
  const para = (t: string) => new Slice(N.paragraph.create(null, schema.text(t)).content, 0, 0)
  d.applySteps([new ReplaceStep(3, 3, para('z'))])
  c.applySteps([new ReplaceStep(5, 5, para('y'))])
  const full = time(() => c.applyUpdate(d.encodeUpdate(c.version())))
  let enter = Infinity
  for (let i = 0; i < 5; i++) {
    let pos = 10_000 + i * 50
    while (!a.doc.resolve(pos).parent.inlineContent) pos++
    const state = EditorState.create({ doc: a.doc, selection: TextSelection.create(a.doc, pos) })
    splitBlock(state, (tr) => a.applySteps(tr.steps))
    assert.is(updates.length, 1)
    enter = Math.min(
      enter,
      time(() => b.applyUpdate(updates.pop()!)),
    )
  }
  assert.ok(b.doc.eq(a.doc))
  b.checkInvariants()
  assert.ok(
    enter * 5 < full,
    `remote Enter ${enter.toFixed(2)} ms vs full projection ${full.toFixed(2)} ms`,
  )
})

test.run()
