/**
 * A seeded network simulator for sync links, on virtual time.
 *
 * Owns: a virtual clock (timers in a priority queue), simulated channels with
 * per-link latency and jitter (ordered per direction, like TCP/WebSocket; in-flight
 * messages are lost when a link drops), nodes holding one document each, link flaps,
 * partitions that heal, restarts from `save()`, and byte/message accounting.
 * Invariants: everything is driven by one `Rng` and the virtual clock, so a seed
 * replays exactly; nothing touches real timers or sockets.
 */

import { link, type Clock, type Link, type LinkOptions } from '../../shared/sync.ts'
import type { Channel } from '../../shared/channels.ts'
import type { Replica } from '../../shared/replica.ts'
import { Rng } from './rng.ts'

// ------------------------------------------------------------ virtual clock

interface Timer {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

/** Virtual time: `setTimeout` queues, `advance`/`runUntil` fire in (time, creation) order. */
export class VirtualClock implements Clock {
  private t = 0
  private seq = 0
  private heap: Timer[] = []
  now(): number {
    return this.t
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.push(timer)
    return timer
  }
  clearTimeout(h: unknown): void {
    if (h) (h as Timer).cancelled = true
  }
  /** Fires every timer due at or before `time`, then sets the clock to `time`. */
  runUntil(time: number): void {
    while (this.heap.length && this.heap[0]!.at <= time) {
      const timer = this.pop()
      if (timer.cancelled) continue
      this.t = Math.max(this.t, timer.at)
      timer.fn()
    }
    this.t = Math.max(this.t, time)
  }
  advance(ms: number): void {
    this.runUntil(this.t + ms)
  }
  private less(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }
  private push(x: Timer): void {
    const h = this.heap
    h.push(x)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.less(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }
  private pop(): Timer {
    const h = this.heap
    const top = h[0]!
    const last = h.pop()!
    if (h.length) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
}

// ------------------------------------------------------------ simulated channels

/** Wire accounting shared by every channel of one simulation. */
export interface WireStats {
  messages: number
  bytes: number
  /** Messages sent per message type byte (MSG in protocol.ts). */
  byType?: Record<number, number>
}

class SimEnd implements Channel {
  peer!: SimEnd
  closed = false
  private lastDelivery = 0
  private msgHandlers: ((m: Uint8Array) => void)[] = []
  private closeHandlers: (() => void)[] = []
  constructor(
    private readonly net: { clock: VirtualClock; rng: Rng; stats: WireStats; inFlight: number },
    private readonly latency: number,
    private readonly jitter: number,
  ) {}
  send(m: Uint8Array): void {
    if (this.closed) return
    const net = this.net
    net.stats.messages++
    net.stats.bytes += m.length
    const byType = (net.stats.byType ??= {})
    byType[m[1]!] = (byType[m[1]!] ?? 0) + 1
    net.inFlight++
    // Ordered per direction: a message never overtakes an earlier one.
    const at = Math.max(
      this.lastDelivery,
      net.clock.now() + this.latency + net.rng.float() * this.jitter,
    )
    this.lastDelivery = at
    const copy = m.slice()
    const to = this.peer
    net.clock.setTimeout(() => {
      net.inFlight--
      if (!to.closed && !this.closed) for (const h of to.msgHandlers) h(copy)
    }, at - net.clock.now())
  }
  onMessage(h: (m: Uint8Array) => void): void {
    this.msgHandlers.push(h)
  }
  onClose(h: () => void): void {
    this.closeHandlers.push(h)
  }
  close(): void {
    // A drop or a close: both ends learn at once; in-flight messages are lost.
    this.kill()
    this.peer.kill()
  }
  kill(): void {
    if (this.closed) return
    this.closed = true
    for (const h of this.closeHandlers.splice(0)) h()
  }
}

// ------------------------------------------------------------ nodes and network

/** A document the simulator can edit, save and reload. */
export interface SimDoc extends Replica {
  insert(pos: number, text: string): void
  delete(pos: number, len: number): void
  toString(): string
  readonly length: number
  save(): Uint8Array
  checkInvariants?(): void
}

export interface SimDocFactory {
  create(agent: string): SimDoc
  load(bytes: Uint8Array, agent: string): SimDoc
}

export interface SimNode {
  readonly name: string
  doc: SimDoc
  /** Session counter: bumped by each restart (new agent id per session). */
  session: number
  up: boolean
}

interface Edge {
  readonly a: number
  readonly b: number
  latency: number
  jitter: number
  /** Administratively down (flap or partition). */
  down: boolean
  ends: [SimEnd, SimEnd] | null
  links: [Link, Link] | null
}

export type Topology = 'star' | 'chain' | 'ring' | 'mesh' | 'random'

/** The edges of a topology over `n` nodes (random: a random spanning tree plus extra edges). */
export function topologyEdges(kind: Topology, n: number, rng: Rng): [number, number][] {
  const out: [number, number][] = []
  if (kind === 'star') for (let i = 1; i < n; i++) out.push([0, i])
  if (kind === 'chain' || kind === 'ring') for (let i = 1; i < n; i++) out.push([i - 1, i])
  if (kind === 'ring' && n > 2) out.push([n - 1, 0])
  if (kind === 'mesh') for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out.push([i, j])
  if (kind === 'random') {
    const seen = new Set<string>()
    for (let i = 1; i < n; i++) {
      const j = rng.int(0, i - 1)
      out.push([j, i])
      seen.add(`${j},${i}`)
    }
    const extra = rng.int(0, n)
    for (let k = 0; k < extra; k++) {
      const i = rng.int(0, n - 1)
      const j = rng.int(0, n - 1)
      const [a, b] = i < j ? [i, j] : [j, i]
      if (a !== b && !seen.has(`${a},${b}`)) {
        seen.add(`${a},${b}`)
        out.push([a, b])
      }
    }
  }
  return out
}

export interface NetOptions {
  factory: SimDocFactory
  nodes: number
  topology: Topology
  rng: Rng
  /** Latency range in ms per link (fixed per link), and jitter. Default [5, 80], 20. */
  latency?: [number, number]
  jitter?: number
  link?: Omit<LinkOptions, 'clock'>
  /** Agent id of node `i` in session `session`. Default `n{i}s{session}`. */
  agentName?: (i: number, session: number) => string
}

/** A simulated network of replicas. */
export class Network {
  readonly clock = new VirtualClock()
  readonly stats: WireStats = { messages: 0, bytes: 0 }
  readonly nodes: SimNode[] = []
  readonly edges: Edge[] = []
  readonly rng: Rng
  /** Messages sent but not delivered or lost yet. */
  inFlight = 0
  errors: string[] = []
  private readonly opts: NetOptions

  constructor(opts: NetOptions) {
    this.opts = opts
    this.rng = opts.rng
    for (let i = 0; i < opts.nodes; i++) {
      this.nodes.push({
        name: `n${i}`,
        doc: opts.factory.create(this.agentName(i, 0)),
        session: 0,
        up: true,
      })
    }
    const [lo, hi] = opts.latency ?? [5, 80]
    for (const [a, b] of topologyEdges(opts.topology, opts.nodes, this.rng)) {
      this.edges.push({
        a,
        b,
        latency: this.rng.int(lo, hi),
        jitter: opts.jitter ?? 20,
        down: false,
        ends: null,
        links: null,
      })
    }
    for (const e of this.edges) this.connect(e)
  }

  private agentName(i: number, session: number): string {
    return this.opts.agentName ? this.opts.agentName(i, session) : `n${i}s${session}`
  }

  private connect(e: Edge): void {
    if (e.ends || e.down || !this.nodes[e.a]!.up || !this.nodes[e.b]!.up) return
    const net = this as unknown as {
      clock: VirtualClock
      rng: Rng
      stats: WireStats
      inFlight: number
    }
    const x = new SimEnd(net, e.latency, e.jitter)
    const y = new SimEnd(net, e.latency, e.jitter)
    x.peer = y
    y.peer = x
    e.ends = [x, y]
    const lo = { ...this.opts.link, clock: this.clock }
    const onError = (who: string) => (err: Error) => this.errors.push(`${who}: ${err.message}`)
    const la = link(this.nodes[e.a]!.doc, x, { ...lo, onError: onError(`${e.a}->${e.b}`) })
    const lb = link(this.nodes[e.b]!.doc, y, { ...lo, onError: onError(`${e.b}->${e.a}`) })
    e.links = [la, lb]
  }

  private disconnect(e: Edge): void {
    if (!e.ends) return
    e.ends[0].close()
    e.ends = null
    e.links = null
  }

  /** Takes an edge down (messages in flight are lost). */
  setEdge(i: number, up: boolean): void {
    const e = this.edges[i]!
    e.down = !up
    if (up) this.connect(e)
    else this.disconnect(e)
  }

  /** Cuts every edge between `group` and the rest. */
  partition(group: ReadonlySet<number>): void {
    this.edges.forEach((e, i) => {
      if (group.has(e.a) !== group.has(e.b)) this.setEdge(i, false)
    })
  }

  /** Brings every edge back up. */
  healAll(): void {
    this.edges.forEach((_, i) => this.setEdge(i, true))
  }

  /** Restarts node `i` from `save()`, with a new agent id (a new session). */
  restart(i: number): void {
    const node = this.nodes[i]!
    const bytes = node.doc.save()
    node.up = false
    this.edges.forEach((e) => {
      if (e.a === i || e.b === i) this.disconnect(e)
    })
    node.session++
    const agent = this.agentName(i, node.session)
    node.doc = this.opts.factory.load(bytes, agent)
    node.up = true
    this.edges.forEach((e) => {
      if (e.a === i || e.b === i) this.connect(e)
    })
  }

  /** True when every node holds the same version, nothing is pending or in flight. */
  converged(): boolean {
    if (this.inFlight > 0) return false
    const v0 = JSON.stringify(sortVV(this.nodes[0]!.doc.version()))
    return this.nodes.every(
      (n) => n.doc.pendingCount === 0 && JSON.stringify(sortVV(n.doc.version())) === v0,
    )
  }

  /**
   * Runs virtual time in steps until converged and still converged a second later (acks
   * and announcements in flight have landed), or `maxMs`.
   */
  settle(maxMs = 120_000, stepMs = 50): boolean {
    const end = this.clock.now() + maxMs
    while (this.clock.now() < end) {
      this.clock.advance(stepMs)
      if (this.converged()) {
        this.clock.advance(1000)
        if (this.converged()) return true
      }
    }
    return false
  }

  /** Every live link object (for stats). */
  links(): Link[] {
    return this.edges.flatMap((e) => e.links ?? [])
  }
}

export function sortVV(vv: Readonly<Record<string, number>>): [string, number][] {
  return Object.keys(vv)
    .sort()
    .filter((k) => vv[k]! > 0)
    .map((k) => [k, vv[k]!])
}

/** Two connected simulated channel ends on `clock` (fixed latency, no jitter), for unit tests. */
export function simPair(
  clock: VirtualClock,
  latencyMs = 10,
): [Channel, Channel] & { stats: WireStats } {
  const net = { clock, rng: new Rng(1), stats: { messages: 0, bytes: 0 }, inFlight: 0 }
  const x = new SimEnd(net, latencyMs, 0)
  const y = new SimEnd(net, latencyMs, 0)
  x.peer = y
  y.peer = x
  return Object.assign([x, y] as [Channel, Channel], { stats: net.stats })
}

/** `ch` with every message it sends recorded (the bytes objects themselves). */
export function tap(ch: Channel, sent: Uint8Array[]): Channel {
  return {
    send: (m) => (sent.push(m), ch.send(m)),
    onMessage: (h) => ch.onMessage(h),
    onClose: (h) => ch.onClose(h),
    close: (code, reason) => ch.close(code, reason),
  }
}
