/**
 * Elided text: `save()` drops the text of deleted characters, and a receiver places such
 * characters deleted from birth, holding them until the events that delete them arrive, so
 * that no replica ever shows text it does not have. The fuzzers cover the random cases
 * (test/fuzz, half of their cases elide every deleted character); these are the named ones.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc, type TextOp } from '../shared/index.ts'
import {
  type DecodedUpdate,
  decodeEvents,
  decodeUpdate,
  encodeUpdate as encodeRaw,
} from '../shared/encoding.ts'
import { DEL, INS, isElided } from '../shared/oplog.ts'
import { elision } from '../shared/text-doc.ts'

const SECRET = 'TOPSECRET-'.repeat(12)

/** Whether the decoded history still holds some of `text`. */
function carries(update: DecodedUpdate, text: string): boolean {
  return update.ops.some((op) => op.kind === INS && op.content.includes(text.slice(0, 10)))
}

/** A document that typed "keep " + SECRET + " end", then deleted the secret. */
function redacted(): { doc: TextDoc; early: Uint8Array } {
  const doc = new TextDoc('author')
  doc.insert(0, 'keep  end')
  const early = doc.save()
  doc.insert(5, SECRET)
  doc.delete(5, SECRET.length)
  return { doc, early }
}

/** Records every text a document's 'change' events insert. */
function insertedText(doc: TextDoc): string[] {
  const seen: string[] = []
  doc.on('change', (ops: TextOp[]) => {
    for (const op of ops) if ('insert' in op) seen.push(op.insert)
  })
  return seen
}

test('save() drops the text of deleted characters and is smaller for it', () => {
  const { doc } = redacted()
  const saved = doc.save()
  const history = decodeEvents(saved)
  assert.not.ok(carries(history, SECRET), 'the deleted text is gone from the save')
  const elided = history.ops.filter(isElided)
  assert.equal(
    elided.map((op) => op.len),
    [SECRET.length],
  )
  const keepFrom = elision.from
  try {
    elision.from = Infinity
    const full = doc.save()
    assert.ok(carries(decodeEvents(full), SECRET))
    assert.ok(saved.length < full.length, `${saved.length} < ${full.length}`)
  } finally {
    elision.from = keepFrom
  }
  const loaded = TextDoc.load(saved)
  assert.is(loaded.toString(), 'keep  end')
  loaded.checkInvariants()
})

test('short deleted stretches inside visible runs keep their text; long ones are cut out', () => {
  const doc = new TextDoc('a')
  const body = 'x'.repeat(40) + 'abc' + 'y'.repeat(40) + SECRET + 'z'.repeat(40)
  doc.insert(0, body)
  doc.delete(40 + 3 + 40, SECRET.length) // the secret: a long stretch
  doc.delete(40, 3) // "abc": shorter than elision.minStretch
  const ops = decodeEvents(doc.save()).ops.filter((op) => op.kind === INS)
  assert.equal(
    ops.map((op) => [op.len, isElided(op)]),
    [
      [83, false],
      [SECRET.length, true],
      [40, false],
    ],
  )
  assert.ok(ops[0].content.includes('abc'))
})

test('a replica behind the save gets the elided events with their deletes, and never sees the text', () => {
  const { doc, early } = redacted()
  const loaded = TextDoc.load(doc.save(), 'author')
  loaded.insert(0, '> ')
  const behind = TextDoc.load(early, 'reader')
  const seen = insertedText(behind)
  behind.applyUpdate(loaded.encodeUpdate(behind.version()))
  assert.is(behind.toString(), '> keep  end')
  assert.is(behind.pendingCount, 0)
  assert.equal(seen, ['> '])
  behind.checkInvariants()
  // The receiver's own save and updates pass the elided events on as they are.
  const third = TextDoc.load(early, 'third')
  third.applyUpdate(behind.encodeUpdate(third.version()))
  assert.is(third.toString(), '> keep  end')
  assert.not.ok(carries(decodeEvents(behind.save()), SECRET))
})

test('elided events whose deletes have not arrived wait, then apply with them', () => {
  const { doc, early } = redacted()
  const full = decodeEvents(TextDoc.load(doc.save()).encodeUpdate({ author: 9 }))
  // The same events split in two: the elided insert alone, then the delete.
  const insert = full.ops.findIndex(isElided)
  const del = full.ops.findIndex((op) => op.kind === DEL)
  assert.equal([insert, del, full.spans.length], [0, 1, 1])
  const first: DecodedUpdate = {
    spans: [{ ...full.spans[0], len: SECRET.length }],
    ops: full.ops.slice(0, del),
  }
  const second: DecodedUpdate = {
    spans: [
      {
        agent: 'author',
        seq: full.spans[0].seq + SECRET.length,
        len: SECRET.length,
        parents: [['author', full.spans[0].seq + SECRET.length - 1]],
      },
    ],
    ops: full.ops.slice(del),
  }
  const behind = TextDoc.load(early, 'reader')
  const seen = insertedText(behind)
  const updates: Uint8Array[] = []
  behind.on('update', (u) => updates.push(u))
  behind.applyUpdate(encodeRaw(first))
  assert.is(behind.toString(), 'keep  end', 'no placeholder text shows')
  assert.is(behind.pendingCount, SECRET.length)
  assert.equal(behind.version(), { author: 9 })
  assert.is(updates.length, 0)
  behind.applyUpdate(encodeRaw(second))
  assert.is(behind.pendingCount, 0)
  assert.is(behind.toString(), 'keep  end')
  assert.equal(behind.version(), doc.version())
  assert.equal(seen, [])
  assert.is(updates.length, 1)
  behind.checkInvariants()
})

test('an elided insert that nothing deletes is held, not shown', () => {
  const base = new TextDoc('a')
  base.insert(0, 'hello')
  const forged = encodeRaw({
    spans: [{ agent: 'mallory', seq: 0, len: 4, parents: [['a', 4]] }],
    ops: [{ kind: INS, len: 4, pos: 5, fwd: true, content: '' }],
  })
  const seen = insertedText(base)
  base.applyUpdate(forged)
  assert.is(base.toString(), 'hello')
  assert.is(base.pendingCount, 4)
  assert.equal(base.version(), { a: 5 })
  assert.equal(seen, [])
  base.checkInvariants()
})

test('a copy that carries the text replaces a held elided copy', () => {
  const a = new TextDoc('a')
  const log: Uint8Array[] = []
  a.on('update', (u) => log.push(u))
  a.insert(0, 'root ')
  a.insert(5, 'kept text that is long enough')
  const [rootUpdate, keptUpdate] = log
  // An elided copy of the second event, as a forger (or a buggy peer) would send it.
  const kept = decodeUpdate(keptUpdate)
  const elidedCopy = encodeRaw({
    spans: kept.spans,
    ops: kept.ops.map((op) => ({ ...op, content: '' })),
  })
  const b = new TextDoc('b')
  b.applyUpdate(elidedCopy) // waits: its parent is missing
  b.applyUpdate(keptUpdate) // the same events with their text
  b.applyUpdate(rootUpdate)
  assert.is(b.pendingCount, 0)
  assert.is(b.toString(), a.toString())
})

test('an elided copy of a held event matches it; a copy at another position does not', () => {
  const a = new TextDoc('a')
  const log: Uint8Array[] = []
  a.on('update', (u) => log.push(u))
  a.insert(0, 'some text')
  const known = decodeUpdate(log[0])
  const b = new TextDoc('b')
  b.applyUpdate(log[0])
  b.applyUpdate(encodeRaw({ spans: known.spans, ops: [{ ...known.ops[0], content: '' }] }))
  assert.is(b.toString(), 'some text')
  const moved = encodeRaw({ spans: known.spans, ops: [{ ...known.ops[0], pos: 1, content: '' }] })
  assert.throws(() => b.applyUpdate(moved), /conflicts with the one we hold/)
  assert.is(b.toString(), 'some text')
})

test('the format: an insert with its text bit clear decodes as elided, and round-trips', () => {
  const update: DecodedUpdate = {
    spans: [{ agent: 'a', seq: 0, len: 7, parents: [] }],
    ops: [
      { kind: INS, len: 3, pos: 0, fwd: true, content: 'abc' },
      { kind: INS, len: 4, pos: 3, fwd: true, content: '' },
    ],
  }
  const bytes = encodeRaw(update)
  const back = decodeUpdate(bytes)
  assert.equal(
    back.ops.map((op) => op.content),
    ['abc', ''],
  )
  assert.equal(back.ops.map(isElided), [false, true])
})

test.run()
