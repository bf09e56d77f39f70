/** varint.ts: the writer's lent buffer never aliases a result; reads name what failed. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DecodeError, Reader, Writer } from '../shared/varint.ts'

test('finished results never share the lent buffer, nested writers included', () => {
  const outer = new Writer()
  outer.uint(300)
  const inner = new Writer() // the buffer is lent to `outer`: this one gets its own
  inner.string('inner')
  const innerBytes = inner.finish()
  outer.string('outer')
  const outerBytes = outer.finish()
  // A later writer reuses a lent buffer: earlier results must not change.
  const later = new Writer()
  for (let i = 0; i < 100; i++) later.uint(0x7f)
  later.finish()
  const r = new Reader(outerBytes)
  assert.is(r.uint('n'), 300)
  assert.is(r.string('s'), 'outer')
  assert.is(new Reader(innerBytes).string('s'), 'inner')
})

test('a writer grows past the lent buffer, and a finished writer can write again', () => {
  const w = new Writer()
  const long = 'x'.repeat(100_000)
  w.string(long)
  const bytes = w.finish()
  assert.is(new Reader(bytes).string('long'), long)
  w.uint(5)
  assert.equal([...w.finish()], [5])
})

test('view and setByte write a header in place', () => {
  const w = new Writer()
  w.byte(0)
  w.uint(1000)
  w.setByte(0, 9)
  assert.equal([...w.view(1)], [0xe8, 0x07])
  assert.equal([...w.finish()], [9, 0xe8, 0x07])
  assert.throws(() => new Writer().setByte(0, 1), RangeError)
})

test('truncated and oversized varints throw DecodeError naming the field', () => {
  try {
    new Reader(Uint8Array.of(0x80)).uint('op header')
    assert.unreachable()
  } catch (e) {
    assert.instance(e, DecodeError)
    assert.match((e as Error).message, 'op header')
  }
  try {
    new Reader(Uint8Array.of(5, 1)).bytes('agent id')
    assert.unreachable()
  } catch (e) {
    assert.instance(e, DecodeError)
    assert.match((e as Error).message, 'agent id claims 5 bytes')
  }
  try {
    new Reader(Uint8Array.of(0x80)).bytes('agent id')
    assert.unreachable()
  } catch (e) {
    assert.match((e as Error).message, 'agent id length')
  }
  const huge = new Uint8Array(9).fill(0xff)
  assert.throws(() => new Reader(huge).uint('seq'), /too large reading seq/)
})

test('strings of every short length round-trip, ASCII or not', () => {
  for (let n = 0; n <= 40; n++) {
    for (const unit of ['a', 'é', '😀', '\ud800']) {
      const text = unit.repeat(n)
      const w = new Writer()
      w.string(text)
      w.uint(7)
      const r = new Reader(w.finish())
      assert.is(r.string('s'), text)
      assert.is(r.uint('after'), 7)
      assert.is(r.remaining, 0)
    }
  }
  // A length running past the end is refused, even on the short path.
  assert.throws(() => new Reader(Uint8Array.of(3, 0x61)).string('agent id'), /agent id claims 3/)
})

test.run()
