/**
 * Wire format of the sync protocol: every message type round-trips; malformed
 * input (truncation at every prefix, oversized varints, lying counts, unknown
 * version/type, bad UTF-8, prototype keys, random bytes) is rejected with a
 * SyncError and leaves the decoder state exactly as it was (RELIABILITY A6, C1-C3,
 * C5-C7).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  MSG,
  PROTOCOL_VERSION,
  SYNC_ERRORS,
  SyncError,
  WireState,
  closeCodeFor,
  decodeMessage,
  encodeMessage,
  encodePlainEvents,
  errorName,
  type Message,
} from '../shared/protocol.ts'
import { Rng, seedFromEnv } from './support/rng.ts'

const vv = (o: Record<string, number>) => Object.assign(Object.create(null), o)
const V = PROTOCOL_VERSION
/** The state of a direction that deflates (both sides wanted it). */
const deflating = () => Object.assign(new WireState(), { deflate: true })
/** ACK / EVENTS flag: an acknowledged partial vv follows. */
const ACK_VV = 2

function samples(): Message[] {
  return [
    {
      type: 'hello',
      readOnly: false,
      id: 'alice',
      have: vv({ a: 3, b: 7 }),
      durable: vv({ a: 3, b: 5 }),
    },
    { type: 'events', updates: [new Uint8Array([1, 2, 3])] },
    {
      type: 'events',
      updates: [new Uint8Array([9]), new Uint8Array(0), new Uint8Array([4, 5])],
      ackWanted: true,
      ackedMessages: 2,
      ack: vv({ a: 5, c: 1 }),
      have: vv({ b: 7 }),
    },
    { type: 'ack', ackedMessages: 3, ack: vv({ a: 6, b: 9, c: 1 }) },
    // On a deflating direction, deflated against the dictionary (repetitive: it pays).
    { type: 'events', updates: [new Uint8Array(300).fill(42), new Uint8Array([7])] },
    { type: 'events', updates: [new Uint8Array(300).fill(42)], ackWanted: true },
    { type: 'need', have: vv({ a: 2 }) },
    {
      type: 'presence',
      entries: [
        {
          id: 'p1',
          clock: 3,
          state: {
            name: 'Ann',
            color: '#f00',
            selection: { anchor: { agent: 'a', seq: 2 }, head: null },
          },
        },
        { id: 'p2', clock: 9 },
      ],
    },
    { type: 'error', code: SYNC_ERRORS.READ_ONLY.code, message: 'read-only' },
    // Relay tree (v3): a diff whose `have` travels as increments over the earlier one.
    { type: 'events', updates: [new Uint8Array([5, 6])], diff: true, have: vv({ b: 9, d: 1 }) },
    { type: 'prune' },
    { type: 'graft', have: vv({ a: 4, c: 2 }) },
    {
      type: 'hello',
      readOnly: false,
      id: 'carol',
      have: vv({ carol: 2 }),
      durable: vv({ carol: 2 }),
      tree: true,
    },
  ]
}

/** Encodes the samples in order over one direction; returns the byte strings. */
function encodeAll(msgs: Message[]): Uint8Array[] {
  const st = deflating()
  return msgs.map((m) => encodeMessage(m, st))
}

function snapshot(st: WireState): string {
  return JSON.stringify([st.agents, [...(st.dict ?? [])], st.have])
}

test('every message type round-trips, with deltas and agent interning', () => {
  const msgs = samples()
  const bytes = encodeAll(msgs)
  const st = deflating()
  bytes.forEach((b, i) => {
    const got = decodeMessage(b, st)
    assert.equal(
      JSON.parse(JSON.stringify(got)),
      JSON.parse(JSON.stringify(msgs[i])),
      `message ${i}`,
    )
  })
  // Agent names travel once: the ack after the hello is a few bytes only.
  assert.ok(bytes[3]!.length <= 12, `ack is ${bytes[3]!.length} bytes`)
  // The repetitive lists went deflated.
  assert.ok(
    bytes[7]!.length < 40 && bytes[8]!.length < 20,
    `${bytes[7]!.length}, ${bytes[8]!.length}`,
  )
  assert.is(bytes[0]![0], PROTOCOL_VERSION)
})

test('deflated EVENTS: repeats are nearly free against the dictionary; it is per direction', () => {
  const tx = deflating()
  const rx = deflating()
  const u = new Uint8Array(200).map((_, i) => (i * 7919) % 251)
  const first = encodeMessage({ type: 'events', updates: [u] }, tx)
  const again = encodeMessage({ type: 'events', updates: [u] }, tx)
  assert.ok(first.length > 200, 'incompressible the first time: sent as is')
  assert.ok(again.length < 40, `a repeat costs ${again.length} bytes`)
  for (const m of [first, again]) {
    const got = decodeMessage(m, rx)
    assert.equal(got.type === 'events' ? [...got.updates[0]!] : null, [...u])
  }
  // Without the dictionary (a lost message, another direction) it is an error, not wrong bytes.
  const third = encodeMessage({ type: 'events', updates: [u] }, tx)
  assert.throws(() => decodeMessage(third, deflating()), /BAD_MESSAGE/)
  assert.throws(() => decodeMessage(third, new WireState()), /takes none/)
  // Tiny lists are not worth it.
  const tiny = encodeMessage({ type: 'events', updates: [new Uint8Array([1])] }, tx)
  assert.is(tiny[2]! & 16, 0)
})

test('plain EVENTS (no acks, no agents) encode alike for every link and direction', () => {
  const updates = [new Uint8Array(300).fill(7), new Uint8Array([1])]
  const plain = encodePlainEvents(updates)
  assert.equal([...plain], [...encodeMessage({ type: 'events', updates }, new WireState())])
  const got = decodeMessage(plain, new WireState())
  assert.equal(got.type === 'events' ? got.updates.map((u) => [...u]) : null, [
    [...updates[0]!],
    [1],
  ])
  const wanted = decodeMessage(encodePlainEvents(updates, true), new WireState())
  assert.is(wanted.type === 'events' && wanted.ackWanted, true)
})

test('every strict prefix of every message is rejected; the state is unchanged', () => {
  const bytes = encodeAll(samples())
  const st = deflating()
  for (const b of bytes) {
    for (let n = 0; n < b.length; n++) {
      const before = snapshot(st)
      try {
        decodeMessage(b.subarray(0, n), st)
        assert.unreachable(`prefix ${n}/${b.length} of type ${b[1]} decoded`)
      } catch (e) {
        assert.instance(e, SyncError)
        assert.is(snapshot(st), before)
      }
    }
    decodeMessage(b, st)
  }
})

test('trailing bytes, unknown type and version are precise errors', () => {
  const st = new WireState()
  const ack = encodeMessage({ type: 'ack', ack: vv({ a: 1 }) }, new WireState())
  const withTrail = new Uint8Array([...ack, 0])
  assert.throws(() => decodeMessage(withTrail, st), /BAD_MESSAGE: 1 trailing bytes/)
  const badVersion = new Uint8Array([1, MSG.ACK, 0])
  assert.throws(() => decodeMessage(badVersion, st), /UNSUPPORTED_VERSION: protocol version 1/)
  assert.throws(() => decodeMessage(new Uint8Array([V, 99]), st), /UNKNOWN_TYPE: message type 99/)
  assert.throws(() => decodeMessage(new Uint8Array(0), st), /BAD_MESSAGE/)
  assert.throws(
    () => decodeMessage(new Uint8Array(100), st, 50),
    /TOO_LARGE: message of 100 bytes over limit 50/,
  )
})

test('varints over 2^53, non-canonical varints and lying counts are rejected (C2, C3)', () => {
  const st = new WireState()
  const big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f] // 2^56 - 1
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.ERROR, ...big, 0]), st),
    /varint over 2\^53/,
  )
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.ERROR, 0x80, 0x00, 0]), st),
    /non-canonical/,
  )
  // A vv claiming a million entries in 3 bytes.
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.ACK, ACK_VV, 0xc0, 0x84, 0x3d]), st),
    /count 1000000 exceeds/,
  )
  // An update list claiming a million updates.
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.EVENTS, 0, 0xc0, 0x84, 0x3d]), st),
    /update count 1000000 exceeds/,
  )
  // A byte string claiming more bytes than the message has.
  const ev = new Uint8Array([V, MSG.EVENTS, 0, 1, 0xff, 0x7f])
  assert.throws(() => decodeMessage(ev, st), /runs past the end/)
  // Unknown flag bits.
  assert.throws(() => decodeMessage(new Uint8Array([V, MSG.EVENTS, 64, 0]), st), /bad events flags/)
  assert.throws(() => decodeMessage(new Uint8Array([V, MSG.ACK, 8]), st), /bad ack flags/)
  // Presence with a huge count.
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.PRESENCE, 0xff, 0x7f]), st),
    /exceeds remaining/,
  )
})

test('agent refs: unknown refs, duplicate declarations and the agent cap are rejected', () => {
  const st = new WireState(2)
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.ACK, ACK_VV, 1, 5, 1]), st),
    /unknown agent ref 5/,
  )
  const enc = new TextEncoder()
  const decl = (name: string) => [0, name.length, ...enc.encode(name)]
  const twice = new Uint8Array([V, MSG.ACK, ACK_VV, 2, ...decl('a'), 1, ...decl('a'), 2])
  assert.throws(() => decodeMessage(twice, st), /declared twice/)
  const three = new Uint8Array([
    V,
    MSG.ACK,
    ACK_VV,
    3,
    ...decl('a'),
    1,
    ...decl('b'),
    1,
    ...decl('c'),
    1,
  ])
  assert.throws(
    () => decodeMessage(three, st),
    (e: unknown) => (e as SyncError).codeName === 'TOO_MANY_AGENTS',
  )
  assert.equal(st.agents, [])
  const long = 'x'.repeat(65)
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.ACK, ACK_VV, 1, ...decl(long), 1]), st),
    /over limit 64/,
  )
})

test('partial vvs carry absolute counts of the named agents; zero, repeated and huge ones are rejected', () => {
  const tx = new WireState()
  const rx = new WireState()
  decodeMessage(encodeMessage({ type: 'ack', ack: vv({ a: 5 }) }, tx), rx)
  // ref 1 = 'a': 3, whatever was said before (receivers keep the maximum)
  const m = decodeMessage(new Uint8Array([V, MSG.ACK, ACK_VV, 1, 1, 3]), rx)
  assert.equal(m.type === 'ack' ? { ...m.ack } : null, { a: 3 })
  // Zero entries are not written.
  const zero = encodeMessage({ type: 'ack', ack: vv({ a: 0 }) }, tx)
  assert.equal([...zero], [V, MSG.ACK, ACK_VV, 0])
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.ACK, ACK_VV, 1, 1, 0]), rx),
    /zero count/,
  )
  const big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f] // 2^56 - 1
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.ACK, ACK_VV, 1, 1, ...big]), rx),
    /over 2\^53/,
  )
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.ACK, ACK_VV, 2, 1, 6, 1, 7]), rx),
    /twice in one vv/,
  )
  assert.equal(rx.agents, ['a'])
})

test('prototype keys are plain keys (C6)', () => {
  const msg: Message = {
    type: 'hello',
    readOnly: false,
    id: '__proto__',
    have: vv(JSON.parse('{"__proto__":2,"constructor":1}')),
    durable: vv(JSON.parse('{"__proto__":2,"constructor":1}')),
  }
  const rx = new WireState()
  const got = decodeMessage(encodeMessage(msg, new WireState()), rx)
  assert.is(got.type, 'hello')
  if (got.type !== 'hello') return
  assert.is(Object.getPrototypeOf(got.have), null)
  assert.is(got.have['__proto__'], 2)
  assert.is(got.have['constructor'], 1)
  assert.is(({} as Record<string, unknown>).constructor, Object)
})

test('invalid UTF-8 in strings is rejected (C7)', () => {
  const st = new WireState()
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.ERROR, 1, 2, 0xc3, 0x28]), st),
    /invalid UTF-8/,
  )
  assert.throws(
    () => decodeMessage(new Uint8Array([V, MSG.NEED, 1, 0, 1, 0xff, 1]), st),
    /invalid UTF-8/,
  )
})

test('error table: unique codes, names by code, close codes in the private range', () => {
  const codes = Object.values(SYNC_ERRORS).map((e) => e.code)
  assert.is(new Set(codes).size, codes.length)
  for (const [name, e] of Object.entries(SYNC_ERRORS)) {
    assert.is(errorName(e.code), name)
    const c = closeCodeFor(e.code)
    assert.ok(c >= 4000 && c <= 4999)
  }
  assert.is(errorName(999), undefined)
})

test('random bytes and mutated messages never escape as anything but SyncError (A6, fuzz)', () => {
  const seed = seedFromEnv()
  const rng = new Rng(seed)
  const valid = encodeAll(samples())
  for (let i = 0; i < 20000; i++) {
    let b: Uint8Array
    if (rng.chance(0.5)) {
      b = new Uint8Array(rng.int(0, 40)).map(() => rng.int(0, 255))
      if (rng.chance(0.7) && b.length > 1) ((b[0] = V), (b[1] = rng.int(1, 7)))
    } else {
      b = rng.pick(valid).slice()
      const flips = rng.int(1, 3)
      for (let k = 0; k < flips; k++) b[rng.int(0, b.length - 1)] = rng.int(0, 255)
    }
    const st = rng.chance(0.5) ? deflating() : new WireState()
    try {
      decodeMessage(b, st)
    } catch (e) {
      if (!(e instanceof SyncError)) throw new Error(`seed ${seed}: ${String(e)} for [${b}]`)
    }
  }
})

test.run()
