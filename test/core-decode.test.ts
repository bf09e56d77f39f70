/**
 * TextDoc's decoders against bad bytes and bad histories (RELIABILITY.md C1-C3, C6, D3-D5,
 * E10). The byte-mutation checks run in a child process (test/fuzz/decode-mutations.ts)
 * with a timeout, so a decoder that loops or allocates without bound fails this test
 * instead of hanging it.
 */
import { spawnSync } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/index.ts'
import { versionEntries } from './support/reference.ts'
import type { CategoryResult } from './fuzz/decode-mutations.ts'
import { encodeUpdate as encodeRaw, type EventSpan, type OpSpan } from '../shared/encoding.ts'
import { DEL, INS } from '../shared/oplog.ts'
import { crc32, crc32Js } from '../shared/crc32.ts'
import { deflateRaw, inflateRaw, nativeZlib } from '../shared/deflate.ts'
import { deflateSync, inflateSync } from 'fflate'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SCRIPT = resolve(ROOT, 'test/fuzz/decode-mutations.ts')
const CATEGORIES = ['truncate', 'random', 'mutate', 'huge']
const CHILD_TIMEOUT_MS = 120_000

let results: Map<string, CategoryResult> | null = null
let childReport = ''

test('the decode checks run to the end in a bounded time (no hang, no crash)', () => {
  const t0 = Date.now()
  const r = spawnSync(
    process.execPath,
    ['--max-old-space-size=1024', '--import', 'tsx', SCRIPT, ...CATEGORIES],
    { cwd: ROOT, encoding: 'utf8', timeout: CHILD_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 },
  )
  const ms = Date.now() - t0
  results = new Map()
  for (const line of (r.stdout ?? '').split('\n')) {
    if (!line.startsWith('{')) continue
    const res = JSON.parse(line) as CategoryResult
    results.set(res.category, res)
  }
  childReport =
    `exit ${r.status} signal ${r.signal} after ${ms} ms; finished: ${[...results.keys()].join(', ')}\n` +
    (r.stderr ?? '').slice(-4000)
  const unfinished = CATEGORIES.filter((c) => !results!.has(c))
  assert.is(r.error === undefined || r.signal === null, true, `child killed: ${childReport}`)
  assert.equal(unfinished, [], `categories that did not finish (hang or crash): ${childReport}`)
})

for (const category of CATEGORIES) {
  const label: Record<string, string> = {
    truncate: 'every truncated prefix of updates and save() bytes throws an Error, doc unchanged',
    random: 'random bytes: applied cleanly or refused with an Error, doc unchanged',
    mutate: 'bit flips and byte mutations: applied cleanly or refused, doc unchanged',
    huge: 'huge length/count varints: no huge allocation, no long loop',
  }
  test(label[category], () => {
    const res = results?.get(category)
    assert.ok(res, `no result for ${category}: ${childReport}`)
    assert.ok(res.cases > 0, 'cases were run')
    assert.equal(res.failures, [], `${res.failures.length} failures in ${category}`)
    if (category === 'truncate') assert.is(res.applied, 0)
  })
}

function refusedUnchanged(doc: TextDoc, bytes: Uint8Array, what: string): Error {
  const before = [doc.toString(), JSON.stringify(versionEntries(doc.version())), doc.pendingCount]
  let fired = 0
  const off = doc.on('update', () => void fired++)
  const offChange = doc.on('change', () => void fired++)
  let err: unknown = null
  try {
    doc.applyUpdate(bytes)
  } catch (e) {
    err = e
  }
  off()
  offChange()
  assert.instance(err, Error, `${what}: must be refused with an Error`)
  const after = [doc.toString(), JSON.stringify(versionEntries(doc.version())), doc.pendingCount]
  assert.equal(after, before, `${what}: doc unchanged`)
  assert.is(fired, 0, `${what}: no 'update' or 'change' fired`)
  doc.checkInvariants()
  return err as Error
}

test('D3: same (agent, seq) with different content is rejected, not merged', () => {
  const base = new TextDoc('base')
  base.insert(0, 'yy')
  const cases: [string, (d: TextDoc) => void, (d: TextDoc) => void][] = [
    ['different text', (d) => d.insert(0, 'a'), (d) => d.insert(0, 'b')],
    ['different position', (d) => d.insert(0, 'a'), (d) => d.insert(1, 'a')],
    ['insert vs delete', (d) => d.insert(0, 'a'), (d) => d.delete(0, 1)],
    ['different deleted range', (d) => d.delete(0, 1), (d) => d.delete(1, 1)],
    ['longer run, second unit differs', (d) => d.insert(0, 'ab'), (d) => d.insert(0, 'ac')],
  ]
  for (const [what, first, second] of cases) {
    const x1 = TextDoc.load(base.save(), 'x')
    const x2 = TextDoc.load(base.save(), 'x')
    first(x1)
    second(x2)
    const receiver = TextDoc.load(base.save(), 'r')
    receiver.applyUpdate(x1.encodeUpdate())
    const text = receiver.toString()
    const err = refusedUnchanged(receiver, x2.encodeUpdate(), `D3 ${what}`)
    assert.ok(err.message.length > 0)
    assert.is(receiver.toString(), text)
    // also when the first copy is still pending (its parents missing)
    const early = new TextDoc('r2')
    early.applyUpdate(x1.encodeUpdate(base.version()))
    assert.ok(early.pendingCount > 0, 'held back: parents missing')
    refusedUnchanged(early, x2.encodeUpdate(base.version()), `D3 ${what}, first copy pending`)
    early.applyUpdate(base.encodeUpdate())
    assert.is(early.pendingCount, 0)
    assert.is(early.toString(), x1.toString(), `D3 ${what}: the first copy wins, no merge`)
  }
})

/** Hand-built update bytes (shared/encoding.ts) for histories no TextDoc would make. */
function crafted(spans: EventSpan[], ops: OpSpan[]): Uint8Array {
  return encodeRaw({ spans, ops })
}

const ins = (pos: number, content: string): OpSpan => ({
  kind: INS,
  len: content.length,
  pos,
  fwd: true,
  content,
})

test('D4: crafted updates are well-formed (control case)', () => {
  const doc = new TextDoc('r')
  doc.applyUpdate(crafted([{ agent: 'x', seq: 0, len: 2, parents: [] }], [ins(0, 'ab')]))
  assert.is(doc.toString(), 'ab')
  doc.applyUpdate(
    crafted(
      [
        { agent: 'y', seq: 0, len: 1, parents: [['x', 1]] },
        { agent: 'x', seq: 2, len: 1, parents: [['y', 0]] },
      ],
      [ins(2, 'c'), ins(3, 'd')],
    ),
  )
  assert.is(doc.toString(), 'abcd')
})

test('D4: parents that reference the event itself, a later seq, or form a cycle are rejected', () => {
  const base = new TextDoc('base')
  base.insert(0, 'zz')
  const cases: [string, Uint8Array][] = [
    [
      'parent is the event itself',
      crafted([{ agent: 'x', seq: 0, len: 1, parents: [['x', 0]] }], [ins(0, 'a')]),
    ],
    [
      'parent is a later event of the same span',
      crafted([{ agent: 'x', seq: 0, len: 3, parents: [['x', 2]] }], [ins(0, 'abc')]),
    ],
    [
      'parent is a later seq of the same agent',
      crafted([{ agent: 'x', seq: 0, len: 1, parents: [['x', 7]] }], [ins(0, 'a')]),
    ],
    [
      'parent is the next seq, sent in the same update',
      crafted(
        [
          { agent: 'x', seq: 0, len: 1, parents: [['x', 1]] },
          { agent: 'x', seq: 1, len: 1, parents: [] },
        ],
        [ins(0, 'a'), ins(0, 'b')],
      ),
    ],
    [
      "two events that are each other's parent",
      crafted(
        [
          { agent: 'x', seq: 0, len: 1, parents: [['y', 0]] },
          { agent: 'y', seq: 0, len: 1, parents: [['x', 0]] },
        ],
        [ins(0, 'a'), ins(0, 'b')],
      ),
    ],
    [
      'a cycle through three agents',
      crafted(
        [
          { agent: 'x', seq: 0, len: 1, parents: [['z', 0]] },
          { agent: 'y', seq: 0, len: 1, parents: [['x', 0]] },
          { agent: 'z', seq: 0, len: 1, parents: [['y', 0]] },
        ],
        [ins(0, 'a'), ins(0, 'b'), ins(0, 'c')],
      ),
    ],
  ]
  for (const [what, bytes] of cases) {
    const doc = TextDoc.load(base.save(), 'r')
    const err = refusedUnchanged(doc, bytes, `D4 ${what}`)
    assert.ok(err.message.length > 0)
  }
})

test('D4: a cycle completed by a later update is rejected, the doc keeps working', () => {
  const doc = new TextDoc('r')
  doc.applyUpdate(crafted([{ agent: 'x', seq: 0, len: 1, parents: [['y', 0]] }], [ins(0, 'a')]))
  assert.is(doc.pendingCount, 1, 'x:0 waits for y:0')
  refusedUnchanged(
    doc,
    crafted([{ agent: 'y', seq: 0, len: 1, parents: [['x', 0]] }], [ins(0, 'b')]),
    'D4 cycle across updates',
  )
  doc.applyUpdate(crafted([{ agent: 'y', seq: 0, len: 1, parents: [] }], [ins(0, 'b')]))
  assert.is(doc.pendingCount, 0)
  assert.is(doc.toString(), 'ab')
  doc.checkInvariants()
})

test('crafted remote ops out of range are refused, doc unchanged (C8)', () => {
  const base = new TextDoc('base')
  base.insert(0, 'abc')
  const at = (seq: number) => [{ agent: 'x', seq, len: 1, parents: [['base', 2]] as const }]
  const del = (pos: number, len: number): OpSpan => ({
    kind: DEL,
    len,
    pos,
    fwd: true,
    content: '',
  })
  const cases: [string, Uint8Array][] = [
    ['insert past the end', crafted(at(0), [ins(4, 'q')])],
    ['insert far past the end', crafted(at(0), [ins(1e6, 'q')])],
    ['delete at the end', crafted(at(0), [del(3, 1)])],
    [
      'delete past the end',
      crafted([{ agent: 'x', seq: 0, len: 5, parents: [['base', 2]] }], [del(0, 5)]),
    ],
    [
      'insert on the empty version past 0',
      crafted([{ agent: 'x', seq: 0, len: 1, parents: [] }], [ins(1, 'q')]),
    ],
  ]
  for (const [what, bytes] of cases) {
    const doc = TextDoc.load(base.save(), 'r')
    refusedUnchanged(doc, bytes, `C8 ${what}`)
  }
})

test('C7: lone surrogates in remote content: refused, or the same text on every replica', () => {
  const bytes = crafted(
    [{ agent: 'x', seq: 0, len: 3, parents: [] }],
    [{ kind: INS, len: 3, pos: 0, fwd: true, content: 'a\uD800b' }],
  )
  const results: string[] = []
  for (const agent of ['r1', 'r2']) {
    const doc = new TextDoc(agent)
    doc.insert(0, 'zz')
    try {
      doc.applyUpdate(bytes)
      doc.checkInvariants()
      results.push(`accepted:${JSON.stringify(doc.toString())}`)
      assert.is(TextDoc.load(doc.save()).toString(), doc.toString(), 'stable through save/load')
    } catch (e) {
      assert.instance(e, Error)
      assert.is(doc.toString(), 'zz', 'refused: unchanged')
      results.push('refused')
    }
  }
  assert.is(
    results[0].replace('r1', ''),
    results[1].replace('r2', ''),
    'consistent on every replica',
  )
})

test('D5: encodeUpdate(since) with a version claiming events we lack works', () => {
  const log: Uint8Array[] = []
  const b = new TextDoc('b')
  b.on('update', (u) => void log.push(u))
  b.insert(0, 'x')
  b.insert(1, 'yz')
  const prefix = new TextDoc('q')
  prefix.applyUpdate(log[0])
  const t0 = Date.now()
  const claims: Record<string, number>[] = [
    { b: 1, ghost: 1e9 },
    { b: 1, a: Number.MAX_SAFE_INTEGER },
    { b: 1, c: 5, '': 3 },
  ]
  for (const since of claims) {
    const u = b.encodeUpdate(since)
    assert.instance(u, Uint8Array)
    const p = TextDoc.load(prefix.save(), 'p')
    p.applyUpdate(u)
    assert.is(p.toString(), 'xyz', `since ${JSON.stringify(since)}`)
    assert.is(p.pendingCount, 0)
  }
  // claiming more of b than b has: nothing of b is sent
  const empty = new TextDoc('e')
  empty.applyUpdate(b.encodeUpdate({ b: Number.MAX_SAFE_INTEGER }))
  assert.is(empty.toString(), '')
  assert.equal(versionEntries(empty.version()), [])
  // a seq gap: the events past it wait until the gap is filled
  const gap = new TextDoc('g')
  gap.applyUpdate(b.encodeUpdate({ b: 2 }))
  assert.is(gap.toString(), '', 'events past a gap wait')
  assert.is(gap.pendingCount, 1)
  gap.applyUpdate(b.encodeUpdate())
  assert.is(gap.toString(), 'xyz')
  assert.is(gap.pendingCount, 0)
  assert.ok(Date.now() - t0 < 2000, 'no huge diff computation')
})

test('C6: agent names __proto__, constructor, prototype work and pollute nothing', () => {
  const names = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']
  const docs = names.map((n) => new TextDoc(n))
  docs.forEach((d, i) => d.insert(0, names[i].slice(0, 3) + i))
  for (const from of docs) for (const to of docs) to.applyUpdate(from.encodeUpdate(to.version()))
  const text = docs[0].toString()
  for (const d of docs) {
    assert.is(d.toString(), text)
    const v = d.version()
    for (let i = 0; i < names.length; i++) {
      assert.ok(Object.prototype.hasOwnProperty.call(v, names[i]), `own key ${names[i]}`)
      assert.is(v[names[i]], 4, `count of ${names[i]}`)
    }
    assert.match(JSON.stringify(v), '"__proto__":4')
    d.checkInvariants()
  }
  const proto = docs[0]
  assert.is(proto.agent, '__proto__')
  const loaded = TextDoc.load(proto.save(), '__proto__')
  assert.is(loaded.toString(), text)
  loaded.insert(0, 'Z')
  assert.is(loaded.version()['__proto__'], 5)
  // a version vector decoded from JSON with a __proto__ key
  const since = JSON.parse('{"__proto__": 4, "constructor": 4}')
  const delta = loaded.encodeUpdate(since)
  const peer = TextDoc.load(proto.save(), 'peer')
  peer.applyUpdate(delta)
  assert.is(peer.toString(), loaded.toString())
  assert.is(({} as Record<string, unknown>).polluted, undefined)
  assert.is(Object.getPrototypeOf({}), Object.prototype)
  assert.equal(Object.keys(Object.prototype), [])
})

test('applyUpdate refuses a non-Uint8Array with an Error and changes nothing', () => {
  const doc = new TextDoc('a')
  doc.insert(0, 'ok')
  for (const bad of [null, undefined, 'bytes', 42, {}, [1, 2, 3]]) {
    refusedUnchanged(doc, bad as unknown as Uint8Array, `applyUpdate(${JSON.stringify(bad)})`)
  }
})

test('E10: corrupted save() bytes never load into a wrong document silently', () => {
  const short = new TextDoc('a')
  short.insert(0, 'The quick brown fox jumps over the lazy dog')
  short.delete(4, 6)
  // A longer one too, whose text section is deflated.
  const long = new TextDoc('b')
  for (let i = 0; i < 200; i++) long.insert(long.length >> 1, `line ${i} of the document\n`)
  long.delete(100, 500)
  for (const doc of [short, long]) {
    const bytes = doc.save()
    let refused = 0
    for (let i = 0; i < bytes.length; i++) {
      const bad = bytes.slice()
      bad[i] ^= 0xff
      try {
        const d = TextDoc.load(bad)
        d.checkInvariants()
        assert.is(d.toString(), doc.toString(), `flipped byte ${i} loaded another text`)
      } catch (e) {
        assert.instance(e, Error)
        refused++
      }
    }
    assert.is(refused, bytes.length, 'every corruption is detected')
  }
})

test('a snapshot of the first layout (whole body deflated) still loads', () => {
  const doc = new TextDoc('a')
  for (let i = 0; i < 100; i++) doc.insert(doc.length, `sentence ${i}. `)
  doc.delete(10, 30)
  // Take the sections apart and store them the first way: one sealed body, deflated whole.
  const bytes = doc.save()
  assert.is(bytes[4], 2, 'current snapshots are sectioned')
  const sealed = bytes.subarray(5)
  const body = sealed.subarray(4)
  const r = { pos: 0 }
  const uint = () => {
    let n = 0
    let mul = 1
    for (;;) {
      const b = body[r.pos++]!
      n += (b & 0x7f) * mul
      if (b < 0x80) return n
      mul *= 0x80
    }
  }
  const agents = uint()
  for (let i = 0; i < agents; i++) {
    const idLength = uint()
    r.pos += idLength
    uint()
  }
  const heads = uint()
  for (let i = 0; i < 2 * heads; i++) uint()
  const header = body.slice(0, r.pos)
  assert.is(body[r.pos++], 1, 'the text section is deflated')
  const size = uint()
  const packedLen = uint()
  const text = inflateSync(body.subarray(r.pos, r.pos + packedLen))
  assert.is(text.length, size)
  const history = body.subarray(r.pos + packedLen)
  const varint = (n: number): number[] =>
    n < 0x80 ? [n] : [(n % 0x80) | 0x80, ...varint(Math.floor(n / 0x80))]
  const old = new Uint8Array([...header, ...varint(text.length), ...text, ...history])
  const oldSealed = new Uint8Array(old.length + 4)
  new DataView(oldSealed.buffer).setUint32(0, crc32(old))
  oldSealed.set(old, 4)
  const packed = deflateSync(oldSealed)
  const first = new Uint8Array([...bytes.subarray(0, 4), 1, ...varint(oldSealed.length), ...packed])
  const loaded = TextDoc.load(first)
  assert.is(loaded.toString(), doc.toString())
  assert.equal(loaded.version(), doc.version())
  loaded.insert(0, 'more ')
  loaded.checkInvariants()
})

test('crc32: the standard check value; any split continues to the same sum', () => {
  assert.is(crc32(new TextEncoder().encode('123456789')), 0xcbf43926)
  const bytes = new Uint8Array(1000).map((_, i) => (i * 7919 + 13) & 0xff)
  const whole = crc32(bytes)
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000])
    assert.is(crc32(bytes.subarray(cut), crc32(bytes.subarray(0, cut))), whole, `cut at ${cut}`)
  // The portable CRC (browsers) and the native one (Node) agree, split or not.
  assert.is(crc32Js(new TextEncoder().encode('123456789')), 0xcbf43926)
  for (const cut of [0, 3, 8, 999])
    assert.is(crc32Js(bytes.subarray(cut), crc32Js(bytes.subarray(0, cut))), whole, `js cut ${cut}`)
})

test('deflate: native zlib and the portable fflate read each other, with and without a dictionary', () => {
  assert.ok(nativeZlib !== null, 'this Node has a native zlib through process.getBuiltinModule')
  const text = new TextEncoder().encode('the quick brown fox jumps over the lazy dog; '.repeat(400))
  const dictionary = new TextEncoder().encode('quick brown fox lazy dog')
  for (const dict of [undefined, dictionary]) {
    const native = deflateRaw(text, dict)
    assert.ok(native.length < text.length / 10, 'compresses')
    assert.ok(native.slice(0, 4).buffer !== native.buffer, 'slice copies (no Buffer view leaks)')
    assert.equal(inflateSync(native, { dictionary: dict }), text, 'fflate reads native')
    const portable = deflateSync(text, { level: 6, dictionary: dict })
    assert.equal(inflateRaw(portable, text.length, dict), text, 'native reads fflate')
    assert.equal(inflateRaw(native, text.length, dict), text)
    // Corrupt, truncated, or larger than allowed: an Error, never a partial result.
    assert.throws(() => inflateRaw(native.subarray(0, native.length >> 1), text.length, dict))
    assert.throws(() => inflateRaw(native, text.length - 2, dict))
    const flipped = native.slice()
    flipped[0] ^= 0xff
    assert.throws(() => inflateRaw(flipped, text.length, dict))
  }
})

test.run()
