/**
 * TextDoc's public API edge cases (API.md): RangeErrors that change nothing, lone
 * surrogates, 'update' and 'change' events, version vector shape, save/load, empty and
 * large documents.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/index.ts'
import { versionEntries } from './support/reference.ts'
import { checkRoundTrips, recordUpdates } from './support/round-trip.ts'
import { Rng } from './support/rng.ts'

type TextOp = { index: number; insert: string } | { index: number; delete: number }

/** Applies TextOps (API.md) to a string, checking each one fits. */
function applyOps(s: string, ops: readonly TextOp[]): string {
  for (const op of ops) {
    assert.ok(Number.isInteger(op.index) && op.index >= 0 && op.index <= s.length, 'op index')
    if ('insert' in op) {
      assert.type(op.insert, 'string')
      assert.ok(op.insert.length > 0, 'insert op is not empty')
      s = s.slice(0, op.index) + op.insert + s.slice(op.index)
    } else {
      assert.ok(Number.isInteger(op.delete) && op.delete > 0, 'delete op length')
      assert.ok(op.index + op.delete <= s.length, 'delete op within the text')
      s = s.slice(0, op.index) + s.slice(op.index + op.delete)
    }
  }
  return s
}

/** Runs `f`, which must throw an error of class `cls`, and asserts nothing changed. */
function refused(doc: TextDoc, f: () => void, cls: ErrorConstructor, what: string): void {
  const text = doc.toString()
  const version = versionEntries(doc.version())
  let events = 0
  const offU = doc.on('update', () => void events++)
  const offC = doc.on('change', () => void events++)
  let err: unknown = null
  try {
    f()
  } catch (e) {
    err = e
  }
  offU()
  offC()
  assert.ok(err !== null, `${what}: must throw`)
  assert.instance(err, cls, `${what}: throws ${cls.name}, got ${String(err)}`)
  assert.ok((err as Error).message.length > 0, `${what}: error has a message`)
  assert.is(doc.toString(), text, `${what}: text unchanged`)
  assert.equal(versionEntries(doc.version()), version, `${what}: version unchanged`)
  assert.is(events, 0, `${what}: no event fired`)
  doc.checkInvariants()
}

test('every bad position or length throws RangeError and changes nothing', () => {
  const doc = new TextDoc('a')
  doc.insert(0, 'hello')
  const bad: [string, () => void][] = [
    ['insert at -1', () => doc.insert(-1, 'x')],
    ['insert past length', () => doc.insert(6, 'x')],
    ['insert far past length', () => doc.insert(1e9, 'x')],
    ['insert at 1.5', () => doc.insert(1.5, 'x')],
    ['insert at NaN', () => doc.insert(NaN, 'x')],
    ['insert at Infinity', () => doc.insert(Infinity, 'x')],
    ['insert at -0.5', () => doc.insert(-0.5, 'x')],
    ['delete at -1', () => doc.delete(-1, 1)],
    ['delete at length', () => doc.delete(5, 1)],
    ['delete past end', () => doc.delete(3, 3)],
    ['delete whole+1', () => doc.delete(0, 6)],
    ['delete negative length', () => doc.delete(1, -1)],
    ['delete at 1.5', () => doc.delete(1.5, 1)],
    ['delete length 1.5', () => doc.delete(1, 1.5)],
    ['delete at NaN', () => doc.delete(NaN, 1)],
    ['delete length NaN', () => doc.delete(0, NaN)],
    ['delete length Infinity', () => doc.delete(0, Infinity)],
    ['delete at 6 length 0', () => doc.delete(6, 0)],
  ]
  for (const [what, f] of bad) refused(doc, f, RangeError, what)
  assert.is(doc.toString(), 'hello')
})

test('RangeError messages carry the numbers', () => {
  const doc = new TextDoc('a')
  doc.insert(0, 'hello')
  try {
    doc.insert(17, 'x')
    assert.unreachable('insert(17) must throw')
  } catch (e) {
    assert.instance(e, RangeError)
    assert.match((e as Error).message, '17')
  }
  try {
    doc.delete(2, 40)
    assert.unreachable('delete(2, 40) must throw')
  } catch (e) {
    assert.instance(e, RangeError)
    assert.match((e as Error).message, '40')
  }
})

test('positions inside a surrogate pair are refused for insert and either end of delete', () => {
  const doc = new TextDoc('a')
  doc.insert(0, 'a😀b🎉')
  assert.is(doc.length, 6)
  refused(doc, () => doc.insert(2, 'x'), RangeError, 'insert inside a pair')
  refused(doc, () => doc.insert(5, 'x'), RangeError, 'insert inside the last pair')
  refused(doc, () => doc.delete(2, 1), RangeError, 'delete starting inside a pair')
  refused(doc, () => doc.delete(2, 2), RangeError, 'delete starting inside, ending after')
  refused(doc, () => doc.delete(0, 2), RangeError, 'delete ending inside a pair')
  refused(doc, () => doc.delete(1, 1), RangeError, 'delete of the high half')
  refused(doc, () => doc.delete(5, 1), RangeError, 'delete of the last low half')
  refused(doc, () => doc.delete(2, 3), RangeError, 'delete from inside to inside')
  doc.delete(1, 2)
  assert.is(doc.toString(), 'ab🎉')
  doc.insert(4, '👍')
  doc.insert(2, '!')
  assert.is(doc.toString(), 'ab!🎉👍')
  doc.checkInvariants()
})

test('text with lone surrogates is refused with an Error and changes nothing', () => {
  const doc = new TextDoc('a')
  doc.insert(0, 'x😀y')
  const lone = ['\uD800', '\uDC00', 'a\uD83D', '\uDE00b', 'ab\uD83Dcd', '\uDE00\uD83D', '😀\uD83D']
  for (const t of lone) {
    for (const pos of [0, 1, 3, 4]) {
      refused(doc, () => doc.insert(pos, t), Error, `insert ${JSON.stringify(t)} at ${pos}`)
    }
  }
  assert.is(doc.toString(), 'x😀y')
})

test("'update' fires once per local edit with the new events, origin undefined", () => {
  const doc = new TextDoc('a')
  const seen: [Uint8Array, unknown][] = []
  const off = doc.on('update', (u, origin) => void seen.push([u, origin]))
  assert.type(off, 'function')
  doc.insert(0, 'abc')
  doc.delete(1, 1)
  assert.is(seen.length, 2)
  for (const [u, origin] of seen) {
    assert.instance(u, Uint8Array)
    assert.is(origin, undefined)
  }
  // the second update holds exactly the one new event: alone, it waits for its parents
  const alone = new TextDoc('c')
  alone.applyUpdate(seen[1][0])
  assert.is(alone.pendingCount, 1)
  assert.is(alone.toString(), '')
  const peer = new TextDoc('b')
  peer.applyUpdate(seen[0][0])
  assert.is(peer.toString(), 'abc')
  peer.applyUpdate(seen[1][0])
  assert.is(peer.toString(), 'ac')
  off()
  doc.insert(0, 'z')
  assert.is(seen.length, 2, 'unsubscribed listener is not called')
  off() // unsubscribing twice is harmless
})

test("'update' after applyUpdate: only new events, the origin given, nothing for duplicates", () => {
  const a = new TextDoc('a')
  a.insert(0, 'hello')
  const b = new TextDoc('b')
  const seen: [Uint8Array, unknown][] = []
  b.on('update', (u, origin) => void seen.push([u, origin]))
  const origin = { link: 1 }
  b.applyUpdate(a.encodeUpdate(), origin)
  assert.is(seen.length, 1)
  assert.is(seen[0][1], origin)
  b.applyUpdate(a.encodeUpdate(), origin)
  b.applyUpdate(a.encodeUpdate({}), 'again')
  assert.is(seen.length, 1, 'duplicates fire nothing')
  // the forwarded update holds exactly the new events: a third doc gets the same state
  const c = new TextDoc('c')
  c.applyUpdate(seen[0][0])
  assert.is(c.toString(), 'hello')
  a.insert(5, ' world')
  b.applyUpdate(a.encodeUpdate(), 'x')
  assert.is(seen.length, 2)
  const d = new TextDoc('d')
  d.applyUpdate(seen[1][0])
  assert.is(d.toString(), '', 'the second forwarded update lacks the first events')
  assert.is(d.pendingCount, 6, "' world' waits for its parents")
  d.applyUpdate(seen[0][0])
  assert.is(d.toString(), 'hello world')
  assert.is(d.pendingCount, 0)
})

test("'change' gives exactly the ops applied, local and remote; unsubscribe works", () => {
  const a = new TextDoc('a')
  const b = new TextDoc('b')
  let mirrorA = ''
  let mirrorB = ''
  const originsB: unknown[] = []
  const offA = a.on('change', (ops) => void (mirrorA = applyOps(mirrorA, ops)))
  b.on('change', (ops, origin) => {
    mirrorB = applyOps(mirrorB, ops)
    originsB.push(origin)
  })
  const localOps: TextOp[][] = []
  const offL = a.on('change', (ops, origin) => {
    assert.is(origin, undefined, 'local change has origin undefined')
    localOps.push(ops.slice())
  })
  a.insert(0, 'hello world')
  a.delete(0, 1)
  assert.equal(localOps, [[{ index: 0, insert: 'hello world' }], [{ index: 0, delete: 1 }]])
  offL()
  b.applyUpdate(a.encodeUpdate(), 'net')
  assert.is(mirrorB, 'ello world')
  assert.is(originsB[originsB.length - 1], 'net')
  // concurrent edits: each side's ops turn its old text into its merged text
  a.insert(4, 'AAA')
  a.delete(0, 2)
  b.insert(4, 'BB')
  b.delete(8, 2)
  const ua = a.encodeUpdate(b.version())
  const ub = b.encodeUpdate(a.version())
  a.applyUpdate(ub)
  b.applyUpdate(ua)
  assert.is(a.toString(), b.toString())
  assert.is(mirrorA, a.toString())
  assert.is(mirrorB, b.toString())
  offA()
  a.insert(0, 'q')
  assert.is.not(mirrorA, a.toString(), 'unsubscribed change listener not called')
  const n = originsB.length
  b.applyUpdate(ub) // duplicate: no change event
  assert.is(originsB.length, n)
})

test('concurrent inserts at one place: lower agent (JS string order) first, never interleaved', () => {
  const pairs: [string, string][] = [
    ['a', 'b'],
    ['B', 'a'],
    ['10', '9'],
    ['ab', 'b'],
  ]
  for (const [lo, hi] of pairs) {
    assert.ok(lo < hi)
    const x = new TextDoc(hi)
    const y = new TextDoc(lo)
    x.insert(0, '[]')
    y.applyUpdate(x.encodeUpdate())
    // typed one unit at a time on both sides, concurrently
    for (let i = 0; i < 4; i++) x.insert(1 + i, 'H')
    for (let i = 0; i < 4; i++) y.insert(1 + i, 'L')
    const ux = x.encodeUpdate(y.version())
    const uy = y.encodeUpdate(x.version())
    x.applyUpdate(uy)
    y.applyUpdate(ux)
    assert.is(x.toString(), '[LLLLHHHH]', `${lo} before ${hi}`)
    assert.is(y.toString(), '[LLLLHHHH]', `${lo} before ${hi}`)
  }
})

test("'update' after applyUpdate passes the received bytes on when all were new, else re-encodes", () => {
  const a = new TextDoc('a')
  const local: Uint8Array[] = []
  a.on('update', (u) => void local.push(u))
  a.insert(0, 'hello')
  a.insert(5, ' world')
  const first = local[0]!
  const b = new TextDoc('b')
  b.insert(0, 'x') // not blank: the update is merged, not adopted
  const seen: Uint8Array[] = []
  b.on('update', (u) => void seen.push(u))
  const both = a.encodeUpdate({ b: 1 }) // all of a's events: 'hello' and ' world'
  b.applyUpdate(first)
  assert.is(seen[0], first, 'all new: the same bytes')
  b.applyUpdate(both)
  assert.is.not(seen[1], both, 'partly known: re-encoded')
  const c = new TextDoc('c')
  c.applyUpdate(first)
  c.applyUpdate(seen[1]!)
  assert.is(c.toString(), 'hello world', 'the re-encoding holds just the new events')
  assert.equal(c.version(), a.version())
})

test('version() is a plain JSON object of per-agent event counts', () => {
  const doc = new TextDoc('alice')
  const v0 = doc.version()
  assert.equal(Object.keys(v0), [])
  doc.insert(0, 'a😀') // 3 code units = 3 events
  doc.delete(0, 1)
  const v = doc.version()
  const proto = Object.getPrototypeOf(v)
  assert.ok(proto === Object.prototype || proto === null, 'plain object')
  assert.equal(JSON.parse(JSON.stringify(v)), { alice: 4 })
  assert.equal(versionEntries(v), [['alice', 4]])
  const peer = new TextDoc('bob')
  peer.applyUpdate(doc.encodeUpdate())
  peer.insert(0, 'xy')
  assert.equal(versionEntries(peer.version()), [
    ['alice', 4],
    ['bob', 2],
  ])
  try {
    ;(v as Record<string, number>).alice = 99
  } catch {
    // a frozen version is fine too
  }
  assert.is(doc.version().alice, 4, "mutating a returned version does not change the doc's")
})

test('agents: given, random when omitted, distinct', () => {
  const a = new TextDoc('given')
  assert.is(a.agent, 'given')
  const r1 = new TextDoc()
  const r2 = new TextDoc()
  assert.type(r1.agent, 'string')
  assert.ok(r1.agent.length > 0)
  assert.is.not(r1.agent, r2.agent)
  r1.insert(0, 'x')
  assert.equal(Object.keys(r1.version()), [r1.agent])
})

test('empty document', () => {
  const doc = new TextDoc('e')
  assert.is(doc.toString(), '')
  assert.is(doc.length, 0)
  assert.is(doc.pendingCount, 0)
  doc.checkInvariants()
  doc.delete(0, 0)
  doc.insert(0, '')
  assert.is(doc.toString(), '')
  assert.equal(versionEntries(doc.version()), [])
  const loaded = TextDoc.load(doc.save())
  assert.is(loaded.toString(), '')
  assert.equal(versionEntries(loaded.version()), [])
  const peer = new TextDoc('p')
  peer.insert(0, 'keep')
  let fired = 0
  peer.on('update', () => void fired++)
  peer.applyUpdate(doc.encodeUpdate())
  assert.is(fired, 0, 'an empty update integrates nothing')
  assert.is(peer.toString(), 'keep')
  checkRoundTrips(doc, { label: 'empty' })
})

test('save/load round trips, load with agent continues that agent', () => {
  const a = new TextDoc('a')
  const history = recordUpdates(a)
  a.insert(0, 'héllo 世界 😀!')
  a.delete(2, 3)
  const b = new TextDoc('b')
  b.applyUpdate(a.encodeUpdate())
  b.insert(1, 'BB')
  a.insert(0, 'AA')
  a.applyUpdate(b.encodeUpdate(a.version()))
  checkRoundTrips(a, { history, label: 'small doc' })

  const bytes = a.save()
  const copy = TextDoc.load(bytes, 'a')
  assert.is(copy.agent, 'a')
  copy.insert(0, 'z')
  assert.is(copy.version().a, a.version().a + 1, 'seq continues after load with the same agent')
  a.applyUpdate(copy.encodeUpdate(a.version()))
  assert.is(a.toString(), copy.toString())

  const other = TextDoc.load(bytes, 'zed')
  assert.is(other.agent, 'zed')
  other.insert(other.length, '.')
  assert.is(other.version().zed, 1)

  const anon = TextDoc.load(bytes)
  assert.type(anon.agent, 'string')
  assert.ok(anon.agent.length > 0)
  assert.is(anon.toString(), TextDoc.load(bytes).toString())
})

test('large document: 200k chars, positional edits match a string', () => {
  const rng = new Rng(200_000)
  const start = Date.now()
  const doc = new TextDoc('big')
  const initial = rng.text(200_000)
  doc.insert(0, initial)
  assert.is(doc.length, initial.length)
  // the expected text as an array of code units (string slicing of 200k ropes is slow)
  const units = initial.split('')
  const isLow = (i: number) => i > 0 && i < units.length && /[\uDC00-\uDFFF]/.test(units[i])
  for (let i = 0; i < 2000; i++) {
    if (rng.chance(0.5)) {
      let pos = rng.int(0, units.length)
      while (isLow(pos)) pos--
      const t = rng.text(rng.int(1, 8))
      doc.insert(pos, t)
      units.splice(pos, 0, ...t.split(''))
    } else {
      let pos = rng.int(0, units.length - 1)
      while (isLow(pos)) pos--
      let end = Math.min(units.length, pos + rng.int(1, 50))
      while (isLow(end)) end++
      doc.delete(pos, end - pos)
      units.splice(pos, end - pos)
    }
    if (i % 500 === 0) assert.is(doc.length, units.length)
  }
  let s = units.join('')
  for (const pos of [0, s.length]) {
    doc.insert(pos, 'edge')
    s = s.slice(0, pos) + 'edge' + s.slice(pos)
  }
  doc.delete(0, 4)
  doc.delete(s.length - 8, 4)
  s = s.slice(4, s.length - 4)
  assert.ok(doc.toString() === s, 'text after 2000 edits')
  doc.checkInvariants()
  const loaded = TextDoc.load(doc.save())
  assert.ok(loaded.toString() === s, 'save/load')
  const peer = new TextDoc('peer')
  peer.applyUpdate(doc.encodeUpdate())
  assert.ok(peer.toString() === s, 'encodeUpdate into a new doc')
  const ms = Date.now() - start
  assert.ok(ms < 8000, `large doc edits took ${ms} ms`)
})

test('load refuses non-bytes and an empty buffer with an Error', () => {
  assert.throws(
    () => TextDoc.load(new Uint8Array(0)),
    (e: unknown) => e instanceof Error,
  )
  assert.throws(
    () => TextDoc.load('abc' as unknown as Uint8Array),
    (e: unknown) => e instanceof Error,
  )
})

test.run()
