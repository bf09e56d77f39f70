/**
 * Presence over links, on virtual time: states cross a chain (relayed), later clocks
 * win, leaving removes, silence expires (D8), floods are rate-limited (D8), a link
 * with a bound identity can only speak for its own peer with that identity (B6),
 * and local changes are throttled per link.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc, Presence, link, type Link } from '../shared/index.ts'
import { anchorSelection, resolveSelection } from '../shared/presence.ts'
import { VirtualClock, simPair } from './support/netsim.ts'
import { RawPeer } from './support/raw-peer.ts'

function setup(n: number, clock: VirtualClock, identity?: (i: number) => { name: string }) {
  const docs = Array.from({ length: n }, (_, i) => new TextDoc(`d${i}`))
  const ps = docs.map((_, i) => new Presence({ id: `p${i}`, clock, timeoutMs: 3000 }))
  const links: Link[] = []
  for (let i = 1; i < n; i++) {
    const [x, y] = simPair(clock, 10)
    links.push(link(docs[i - 1]!, x, { presence: ps[i - 1], clock }))
    links.push(link(docs[i]!, y, { presence: ps[i], clock, identity: identity?.(i - 1) }))
  }
  return { docs, ps, links }
}

test('presence crosses a chain of links; later clocks win; leaving removes everywhere', () => {
  const clock = new VirtualClock()
  const { ps, links } = setup(3, clock)
  ps[0]!.setLocal({
    name: 'Ann',
    color: '#f00',
    selection: { anchor: { agent: 'd0', seq: 0 }, head: null },
  })
  clock.advance(500)
  assert.equal(ps[2]!.getStates().get('p0'), {
    name: 'Ann',
    color: '#f00',
    selection: { anchor: { agent: 'd0', seq: 0 }, head: null },
  })
  ps[0]!.setLocal({ name: 'Ann B.' })
  clock.advance(500)
  assert.is(ps[2]!.getStates().get('p0')?.name, 'Ann B.')
  assert.is(ps[1]!.getStates().size, 1)
  const removed: string[] = []
  ps[2]!.on('change', (c) => removed.push(...c.removed))
  ps[0]!.setLocal(null)
  clock.advance(500)
  assert.not.ok(ps[2]!.getStates().has('p0'))
  assert.equal(removed, ['p0'])
  for (const l of links) l.close()
})

test('a replica that goes silent expires after the timeout (D8); a live one is kept by heartbeats', () => {
  const clock = new VirtualClock()
  const { ps, links } = setup(2, clock)
  ps[0]!.setLocal({ name: 'gone soon' })
  ps[1]!.setLocal({ name: 'stays' })
  clock.advance(500)
  assert.ok(ps[1]!.getStates().has('p0'))
  clock.advance(20_000) // heartbeats keep both alive
  assert.ok(ps[1]!.getStates().has('p0'))
  assert.ok(ps[0]!.getStates().has('p1'))
  links[0]!.close() // p0's side of the link: silence from now on
  clock.advance(5000)
  assert.not.ok(ps[1]!.getStates().has('p0'), 'expired')
  assert.ok(ps[1]!.getStates().has('p1'), 'own state never expires')
})

test('local changes are throttled per link: a burst of 100 updates sends a few messages', () => {
  const clock = new VirtualClock()
  const docs = [new TextDoc('a'), new TextDoc('b')]
  const ps = [new Presence({ id: 'pa', clock }), new Presence({ id: 'pb', clock })]
  const [x, y] = simPair(clock, 5)
  const la = link(docs[0]!, x, { presence: ps[0], clock })
  link(docs[1]!, y, { presence: ps[1], clock })
  clock.advance(50)
  const before = la.stats.messagesSent
  for (let i = 0; i < 100; i++) {
    ps[0]!.setLocal({ name: `n${i}` })
    clock.advance(2)
  }
  clock.advance(300)
  assert.is(ps[1]!.getStates().get('pa')?.name, 'n99')
  assert.ok(la.stats.messagesSent - before <= 4, `${la.stats.messagesSent - before} messages`)
  la.close()
})

test('a link that joins late gets the states already there; a silent peer still gets later ones', () => {
  // A hub's link keeps no presence state until it has presence traffic: these are the paths
  // that make it (states waiting at the handshake, a change elsewhere, entries received).
  const clock = new VirtualClock()
  const hub = new Presence({ id: 'hub', clock })
  const peers = ['a', 'b', 'c'].map((id) => new Presence({ id, clock }))
  const links: Link[] = []
  const join = (i: number) => {
    const [x, y] = simPair(clock, 5)
    links.push(link(new TextDoc(`h${i}`), x, { presence: hub, clock }))
    links.push(link(new TextDoc(`p${i}`), y, { presence: peers[i], clock }))
  }
  join(0)
  peers[0]!.setLocal({ name: 'Ann' })
  clock.advance(200)
  join(1)
  join(2) // c never sets a state of its own
  clock.advance(200)
  assert.is(peers[1]!.getStates().get('a')?.name, 'Ann', 'waiting at the handshake')
  peers[1]!.setLocal({ name: 'Bo' })
  clock.advance(200)
  assert.equal([...peers[2]!.getStates().keys()].sort(), ['a', 'b'])
  assert.is(peers[0]!.getStates().get('b')?.name, 'Bo')
  for (const l of links) l.close()
})

test('a presence flood is rate-limited: excess entries are dropped (D8)', () => {
  const clock = new VirtualClock()
  const doc = new TextDoc('me')
  const p = new Presence({ id: 'me', clock, maxEntriesPerSecond: 10 })
  const [x, y] = simPair(clock, 1)
  link(doc, x, { presence: p, clock })
  const raw = new RawPeer(y)
  raw.hello({})
  const entries = Array.from({ length: 1000 }, (_, i) => ({
    id: `f${i}`,
    clock: 1,
    state: { name: 'x' },
  }))
  raw.send({ type: 'presence', entries })
  clock.advance(10)
  assert.is(p.getStates().size, 20, 'burst of twice the rate accepted, the rest dropped')
  clock.advance(1000)
  raw.send({ type: 'presence', entries: entries.slice(500, 600) })
  clock.advance(10)
  assert.is(p.getStates().size, 30, 'one more second of budget')
})

test('a bound identity overrides the claimed name and forbids speaking for others (B6)', () => {
  const clock = new VirtualClock()
  const server = new TextDoc('server')
  const sp = new Presence({ id: 'server', clock })
  const [x, y] = simPair(clock, 1)
  link(server, x, { presence: sp, clock, identity: { user: 'u-42', name: 'Real Name' } })
  const raw = new RawPeer(y)
  raw.send({
    type: 'hello',
    readOnly: false,
    id: 'client-1',
    have: Object.create(null),
    durable: Object.create(null),
  })
  raw.send({
    type: 'presence',
    entries: [
      { id: 'client-1', clock: 1, state: { user: 'admin', name: 'Impostor', color: '#0f0' } },
      { id: 'someone-else', clock: 9, state: { user: 'victim', name: 'Victim' } },
    ],
  })
  clock.advance(10)
  const states = sp.getStates()
  assert.equal(states.get('client-1'), { user: 'u-42', name: 'Real Name', color: '#0f0' })
  assert.not.ok(states.has('someone-else'))
})

test('entries with an older or equal clock never replace newer ones', () => {
  const clock = new VirtualClock()
  const doc = new TextDoc('me')
  const p = new Presence({ id: 'me', clock })
  const [x, y] = simPair(clock, 1)
  link(doc, x, { presence: p, clock })
  const raw = new RawPeer(y)
  raw.hello({})
  raw.send({ type: 'presence', entries: [{ id: 'o', clock: 5, state: { name: 'new' } }] })
  raw.send({ type: 'presence', entries: [{ id: 'o', clock: 4, state: { name: 'old' } }] })
  raw.send({ type: 'presence', entries: [{ id: 'o', clock: 5 }] })
  raw.send({ type: 'presence', entries: [{ id: 'me', clock: 99, state: { name: 'forged me' } }] })
  clock.advance(10)
  assert.is(p.getStates().get('o')?.name, 'new')
  assert.is(p.getLocal(), undefined)
})

test('a remote selection anchored to event ids survives concurrent edits', () => {
  const clock = new VirtualClock()
  const { docs, ps, links } = setup(2, clock)
  docs[0]!.insert(0, 'hello world.')
  clock.advance(500)
  assert.is(docs[1]!.toString(), 'hello world.')
  // d0 selects "world" (6..11); concurrently d1 types before it and deletes "hello ".
  ps[0]!.setLocal({ name: 'Ann', selection: anchorSelection(docs[0]!, 6, 11) })
  docs[1]!.insert(0, '>> ')
  docs[1]!.delete(3, 6)
  docs[0]!.insert(0, 'big ')
  clock.advance(1000)
  assert.is(docs[0]!.toString(), docs[1]!.toString())
  const text = docs[1]!.toString()
  const sel = ps[1]!.getStates().get('p0')!.selection!
  const at = resolveSelection(docs[1]!, sel)!
  assert.is(text.slice(at.anchor, at.head), 'world')
  // The end anchor (null) is the end of the document.
  assert.equal(anchorSelection(docs[1]!, text.length).anchor, null)
  assert.is(resolveSelection(docs[1]!, { anchor: null, head: null })!.head, text.length)
  // An anchor this replica does not hold yet resolves to null.
  assert.is(resolveSelection(new TextDoc('x'), sel), null)
  for (const l of links) l.close()
})

test.run()
