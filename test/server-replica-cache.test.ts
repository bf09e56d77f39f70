/**
 * The server's memo of a document's encodings (server/replica-cache.ts): links asking together
 * share one encoding; a change, or a quarter second without use, drops it.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cachedReplica } from '../server/replica-cache.ts'
import { TextDoc } from '../shared/text-doc.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('links asking for the same encoding together share one', () => {
  const doc = new TextDoc('a')
  doc.insert(0, 'hello')
  const replica = cachedReplica(doc)
  const first = replica.encodeUpdate({})
  assert.is(replica.encodeUpdate({}), first)
  assert.is(replica.encodeUpdate({ a: 0 }), first, 'same vector, other object')
  assert.is.not(replica.encodeUpdate({ a: 2 }), first)
})

test('a change drops the encodings', () => {
  const doc = new TextDoc('a')
  doc.insert(0, 'hello')
  const replica = cachedReplica(doc)
  const before = replica.encodeUpdate({ a: 2 })
  doc.insert(5, '!')
  const after = replica.encodeUpdate({ a: 2 })
  assert.is.not(after, before)
  const copy = new TextDoc('b')
  copy.applyUpdate(replica.encodeUpdate())
  assert.is(copy.toString(), 'hello!')
})

test('encodings unused for a while are dropped; used ones stay', async () => {
  const doc = new TextDoc('a')
  doc.insert(0, 'hello')
  const idle = cachedReplica(doc)
  const busy = cachedReplica(doc)
  const idleFirst = idle.encodeUpdate({ a: 1 })
  const busyFirst = busy.encodeUpdate({ a: 1 })
  // Used every 50 ms for 600 ms: still the same bytes (unless a stalled event loop left a
  // use more than the idle time after the previous one: then it may be encoded anew, once).
  let memo = busyFirst
  for (let t = 0; t < 12; t++) {
    const before = performance.now()
    await sleep(50)
    const now = busy.encodeUpdate({ a: 1 })
    if (performance.now() - before < 200) assert.is(now, memo)
    memo = now
  }
  const again = idle.encodeUpdate({ a: 1 })
  assert.is.not(again, idleFirst, 'the idle memo was dropped')
  assert.equal(again, idleFirst, 'and encodes the same bytes again')
})

test.run()
