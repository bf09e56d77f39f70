/**
 * Tests of the oracle itself (test/support/reference.ts): before the fuzzers trust it,
 * check it against plain strings, hand-worked concurrent cases and its own convergence.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { RefDoc, versionEntries, type RefEvent } from './support/reference.ts'
import { Rng, splitsSurrogate } from './support/rng.ts'

function sync(a: RefDoc, b: RefDoc): void {
  b.applyEvents(a.events(b.version()))
  a.applyEvents(b.events(a.version()))
}

test('sequential edits match a plain string', () => {
  const rng = new Rng(1)
  const doc = new RefDoc('a')
  let s = ''
  for (let i = 0; i < 400; i++) {
    if (s.length === 0 || rng.chance(0.6)) {
      let pos = rng.int(0, s.length)
      while (splitsSurrogate(s, pos)) pos--
      const text = rng.text(rng.int(1, 5))
      doc.insert(pos, text)
      s = s.slice(0, pos) + text + s.slice(pos)
    } else {
      let pos = rng.int(0, s.length - 1)
      while (splitsSurrogate(s, pos)) pos--
      let end = Math.min(s.length, pos + rng.int(1, 4))
      while (splitsSurrogate(s, end)) end++
      doc.delete(pos, end - pos)
      s = s.slice(0, pos) + s.slice(end)
    }
    assert.is(doc.toString(), s)
  }
  doc.checkInvariants()
})

test('concurrent inserts at one place: lower agent first, runs never interleave', () => {
  const a = new RefDoc('a')
  const b = new RefDoc('b')
  a.insert(0, 'xy')
  sync(a, b)
  b.insert(1, 'BBB')
  a.insert(1, 'AAA')
  sync(a, b)
  assert.is(a.toString(), 'xAAABBBy')
  assert.is(b.toString(), 'xAAABBBy')
  // typed one unit at a time, still no interleaving
  const c = new RefDoc('c')
  const d = new RefDoc('d')
  for (let i = 0; i < 3; i++) d.insert(i, 'D')
  for (let i = 0; i < 3; i++) c.insert(i, 'C')
  sync(c, d)
  assert.is(c.toString(), 'CCCDDD')
  assert.is(d.toString(), 'CCCDDD')
})

test('insert concurrent with a delete around it is kept; double delete is one delete', () => {
  const a = new RefDoc('a')
  const b = new RefDoc('b')
  a.insert(0, 'hello')
  sync(a, b)
  a.delete(1, 3) // "ho"
  b.insert(2, 'XY') // "heXYllo"
  b.delete(0, 1) // "eXYllo"
  sync(a, b)
  assert.is(a.toString(), 'XYo')
  assert.is(b.toString(), 'XYo')
  assert.equal(versionEntries(a.version()), [
    ['a', 8],
    ['b', 3],
  ])
})

test('the FugueMax case: inserts after a deleted origin stay in order', () => {
  const a = new RefDoc('a')
  const b = new RefDoc('b')
  a.insert(0, 'ac')
  sync(a, b)
  b.insert(1, 'b') // "abc"
  a.insert(1, 'Z') // "aZc"
  sync(a, b)
  assert.is(a.toString(), b.toString())
  assert.is(a.toString(), 'aZbc')
})

test('events wait for missing parents, duplicates are ignored', () => {
  const a = new RefDoc('a')
  a.insert(0, 'abc')
  a.delete(1, 1)
  const events = a.events()
  const b = new RefDoc('b')
  const late = events.slice(2)
  assert.equal(b.applyEvents(late), [])
  assert.is(b.pendingCount, late.length)
  const done = b.applyEvents(events)
  assert.is(done.length, events.length)
  assert.is(b.pendingCount, 0)
  assert.is(b.toString(), 'ac')
  assert.equal(b.applyEvents(events), [])
  const forged: RefEvent = { ...events[0], kind: 'ins', content: 'Q' } as RefEvent
  assert.throws(() => b.applyEvents([forged]), /conflicting/)
})

test('random replicas converge whatever the delivery order', () => {
  for (let seed = 0; seed < 30; seed++) {
    const rng = new Rng(seed)
    const docs = ['a', 'b', 'c', 'd'].slice(0, rng.int(2, 4)).map((n) => new RefDoc(n))
    for (let step = 0; step < 60; step++) {
      const d = rng.pick(docs)
      const s = d.toString()
      if (s.length === 0 || rng.chance(0.65)) {
        let pos = rng.int(0, s.length)
        while (splitsSurrogate(s, pos)) pos--
        d.insert(pos, rng.text(rng.int(1, 4)))
      } else {
        let pos = rng.int(0, s.length - 1)
        while (splitsSurrogate(s, pos)) pos--
        let end = Math.min(s.length, pos + rng.int(1, 3))
        while (splitsSurrogate(s, end)) end++
        d.delete(pos, end - pos)
      }
      if (rng.chance(0.3)) {
        const from = rng.pick(docs)
        const to = rng.pick(docs)
        to.applyEvents(rng.shuffle(from.events()).filter(() => rng.chance(0.7)))
      }
    }
    const all = docs.flatMap((d) => d.events())
    for (const d of docs) d.applyEvents(rng.shuffle(all))
    const text = docs[0].toString()
    for (const d of docs) {
      d.checkInvariants()
      assert.is(d.pendingCount, 0, `seed ${seed}`)
      assert.is(d.toString(), text, `seed ${seed}`)
      assert.equal(versionEntries(d.version()), versionEntries(docs[0].version()))
    }
  }
})

test('bad positions throw RangeError', () => {
  const a = new RefDoc('a')
  a.insert(0, 'ab')
  assert.throws(
    () => a.insert(3, 'x'),
    (e: unknown) => e instanceof RangeError,
  )
  assert.throws(
    () => a.insert(-1, 'x'),
    (e: unknown) => e instanceof RangeError,
  )
  assert.throws(
    () => a.delete(1, 2),
    (e: unknown) => e instanceof RangeError,
  )
  assert.is(a.toString(), 'ab')
})

test.run()
