/**
 * Anchors: `anchorAt(pos)` names a character; `positionOf(anchor)` finds it
 * again after any local and concurrent edits (or where it was, once deleted).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/index.ts'
import { Rng } from './support/rng.ts'

test('an anchor follows its character through concurrent edits and deletion', () => {
  const a = new TextDoc('a')
  const b = new TextDoc('b')
  a.insert(0, 'hello world')
  b.applyUpdate(a.encodeUpdate())
  const w = b.anchorAt(6)
  assert.equal(w, { agent: 'a', seq: 6 })
  a.insert(0, 'XX')
  b.insert(0, 'YYY')
  b.applyUpdate(a.encodeUpdate(b.version()))
  assert.is(b.toString()[b.positionOf(w)!], 'w')
  a.applyUpdate(b.encodeUpdate(a.version()))
  a.delete(a.positionOf(w)!, 3)
  b.applyUpdate(a.encodeUpdate(b.version()))
  assert.is(b.toString(), 'XXYYYhello ld')
  assert.is(b.positionOf(w), 11, 'a deleted character is where it was')
  assert.is(b.anchorAt(b.length), null)
  assert.is(b.positionOf(null), b.length)
  assert.is(b.positionOf({ agent: 'nobody', seq: 0 }), null)
  assert.throws(() => b.anchorAt(b.length + 1), RangeError)
})

test('random edits: every surviving anchored character is found again', () => {
  const rng = new Rng(Number(process.env.FUZZ_SEED ?? 7))
  let next = 0x4e00
  const fresh = (n: number) => {
    let s = ''
    for (let i = 0; i < n; i++) s += String.fromCharCode(next++)
    return s
  }
  const docs = [new TextDoc('p'), new TextDoc('q'), new TextDoc('r')]
  const anchors: { doc: number; anchor: { agent: string; seq: number }; char: string }[] = []
  for (let step = 0; step < 400; step++) {
    const i = rng.int(0, docs.length - 1)
    const d = docs[i]
    const r = rng.float()
    if (r < 0.45 || d.length === 0) d.insert(rng.int(0, d.length), fresh(rng.int(1, 4)))
    else if (r < 0.7) {
      const pos = rng.int(0, d.length - 1)
      d.delete(pos, rng.int(1, Math.min(3, d.length - pos)))
    } else if (r < 0.85) {
      const o = docs[rng.int(0, docs.length - 1)]
      if (o !== d) d.applyUpdate(o.encodeUpdate(d.version()))
    } else if (d.length > 0) {
      const pos = rng.int(0, d.length - 1)
      anchors.push({ doc: i, anchor: d.anchorAt(pos)!, char: d.toString()[pos] })
      assert.is(d.positionOf(d.anchorAt(pos)), pos)
    }
    for (const { doc, anchor, char } of anchors) {
      const text = docs[doc].toString()
      const at = docs[doc].positionOf(anchor)
      assert.ok(at !== null && at >= 0 && at <= text.length)
      if (text.includes(char)) assert.is(text[at!], char, `step ${step}`)
    }
  }
})

test('the index kept up by edits and concurrent merges equals one rebuilt from the history', () => {
  const rng = new Rng(Number(process.env.FUZZ_SEED ?? 11))
  const a = new TextDoc('a')
  const b = new TextDoc('b')
  a.insert(0, 'seed text')
  b.applyUpdate(a.encodeUpdate())
  a.anchorAt(0) // build both indexes now, so that the edits below keep them up
  b.anchorAt(0)
  const deleted: { agent: string; seq: number }[] = []
  for (let step = 0; step < 600; step++) {
    // Local edits near and far from the last one; exchanges now and then, so some merges are concurrent.
    const [d, o] = rng.chance(0.5) ? [a, b] : [b, a]
    if (rng.chance(0.6) || d.length < 2)
      d.insert(rng.int(0, d.length), 'xyzuvw'.slice(0, rng.int(1, 5)))
    else {
      const pos = rng.int(0, d.length - 2)
      const n = rng.int(1, Math.min(4, d.length - pos))
      deleted.push(d.anchorAt(pos)!)
      d.delete(pos, n)
    }
    if (rng.chance(0.3)) o.applyUpdate(d.encodeUpdate(o.version()))
    if (step % 50 !== 49) continue
    for (const doc of [a, b]) {
      const rebuilt = TextDoc.load(doc.save())
      for (let p = 0; p <= doc.length; p++)
        assert.equal(doc.anchorAt(p), rebuilt.anchorAt(p), `step ${step} pos ${p}`)
      for (const x of deleted)
        assert.is(doc.positionOf(x), rebuilt.positionOf(x), `step ${step} ${x.agent}${x.seq}`)
    }
  }
})

test.run()
