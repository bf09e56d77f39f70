/**
 * Presence: ephemeral per-replica state (user, name, colour, selection anchored to
 * event ids) shared by all links of one document, relayed across any topology.
 *
 * Owns: the table `id -> { clock, state, lastSeen }`, the local entry and its
 * clock, one outgoing queue per attached link (throttled to `minIntervalMs`), a
 * token bucket per link for incoming entries, and the heartbeat/expiry timer.
 * Invariants: an entry is replaced only by a higher clock; entries are keyed in a
 * `Map` (wire ids never touch prototypes); a link with a bound identity can only
 * speak for its own peer id, with the identity's fields; a remote entry not
 * refreshed within `timeoutMs` is removed; the timer runs only while there are entries and
 * links are attached, or remote entries remain (it is unref'd, so it never keeps a process
 * alive).
 */

import type { Anchor, PresenceEntry, PresenceState } from './protocol.ts'
import { realClock, type Clock, type Identity } from './sync.ts'

export type { PresenceEntry, PresenceState, Anchor } from './protocol.ts'

/** What a link gives presence when it attaches (internal contract with sync.ts). */
export interface PresencePort {
  /** Set once the peer's HELLO arrived (before the link attaches). */
  readonly peerId: string | undefined
  readonly identity?: Identity | undefined
  sendPresence(entries: readonly PresenceEntry[]): void
}

export interface PresenceOptions {
  /** This replica's presence id (default: random). */
  id?: string
  /** A remote entry not refreshed for this long is removed. Default 30 s. */
  timeoutMs?: number
  /** Minimum interval between presence messages on one link. Default 100 ms. */
  minIntervalMs?: number
  /** Incoming entries accepted per link per second (burst: twice that). Default 50. */
  maxEntriesPerSecond?: number
  clock?: Clock
}

export interface PresenceChange {
  readonly added: readonly string[]
  readonly updated: readonly string[]
  readonly removed: readonly string[]
}

interface Entry {
  clock: number
  state: PresenceState | undefined
  lastSeen: number
}

const NO_ENTRIES: ReadonlyMap<string, Entry> = new Map()

/** One attached link: what it must still be sent, its throttle. Also the handle `attach` returns. */
class PortState {
  /** Ids to send (made on first use: a hub holds many links, most never see presence). */
  dirty: Set<string> | null = null
  lastSend = -Infinity
  timer: unknown = null
  constructor(
    private readonly presence: Presence,
    readonly port: PresencePort,
    public tokens: number,
    public tokensAt: number,
  ) {}
  markDirty(id: string): void {
    ;(this.dirty ??= new Set()).add(id)
  }
  receive(entries: readonly PresenceEntry[]): void {
    this.presence.receiveFrom(this, entries)
  }
  detach(): void {
    this.presence.detachPort(this)
  }
}

/** Shared presence state of one document. Pass it as `presence` to each `link`. */
export class Presence {
  readonly id: string
  /** The table; null until the first entry (a hub's documents mostly see no presence). */
  private table: Map<string, Entry> | null = null
  private readonly ports = new Set<PortState>()
  private readonly handlers: ((c: PresenceChange) => void)[] = []
  private readonly clock: Clock
  private readonly timeout: number
  private readonly minInterval: number
  private readonly rate: number
  private localClock = 0
  private heartbeat: unknown = null

  constructor(opts: PresenceOptions = {}) {
    this.id = opts.id ?? Math.random().toString(36).slice(2, 12)
    this.clock = opts.clock ?? realClock
    this.timeout = opts.timeoutMs ?? 30_000
    this.minInterval = opts.minIntervalMs ?? 100
    this.rate = opts.maxEntriesPerSecond ?? 50
  }

  /** The entries, read-only (an empty table until the first). */
  private get entries(): ReadonlyMap<string, Entry> {
    return this.table ?? NO_ENTRIES
  }

  private own(): Map<string, Entry> {
    return (this.table ??= new Map())
  }

  /** Sets (or, with null, withdraws) this replica's state and announces it on every link. */
  setLocal(state: PresenceState | null): void {
    const e = this.entries.get(this.id)
    const existed = e?.state !== undefined
    this.own().set(this.id, {
      clock: ++this.localClock,
      state: state ?? undefined,
      lastSeen: this.clock.now(),
    })
    this.markDirty(this.id, null)
    if (this.ports.size > 0) this.startHeartbeat()
    this.notify({
      added: state && !existed ? [this.id] : [],
      updated: state && existed ? [this.id] : [],
      removed: !state && existed ? [this.id] : [],
    })
  }

  /** This replica's state, if set. */
  getLocal(): PresenceState | undefined {
    return this.entries.get(this.id)?.state
  }

  /** Every live state by replica id, the local one included. */
  getStates(): Map<string, PresenceState> {
    const out = new Map<string, PresenceState>()
    for (const [id, e] of this.entries) if (e.state) out.set(id, e.state)
    return out
  }

  /** Subscribes to changes; returns unsubscribe. */
  on(event: 'change', handler: (c: PresenceChange) => void): () => void {
    this.handlers.push(handler)
    return () => {
      const i = this.handlers.indexOf(handler)
      if (i >= 0) this.handlers.splice(i, 1)
    }
  }

  /** Withdraws the local state, stops timers, detaches every link. */
  destroy(): void {
    if (this.getLocal()) this.setLocal(null)
    for (const p of this.ports) this.flushPort(p)
    for (const p of [...this.ports]) this.detachPort(p)
  }

  /** Called by a link once the peer's HELLO arrived. Internal contract with sync.ts. */
  attach(port: PresencePort): { receive(entries: readonly PresenceEntry[]): void; detach(): void } {
    const p = new PortState(this, port, this.rate * 2, this.clock.now())
    this.ports.add(p)
    for (const [id, e] of this.entries) if (e.state) p.markDirty(id)
    this.schedule(p)
    // Nothing to refresh or expire until there is an entry (setLocal, receiveFrom start it).
    if (this.table !== null) this.startHeartbeat()
    return p
  }

  /** Internal (PortState): the link of `p` is gone. */
  detachPort(p: PortState): void {
    if (!this.ports.delete(p)) return
    if (p.timer !== null) this.clock.clearTimeout(p.timer)
    if (this.ports.size === 0 && !this.hasRemote() && this.heartbeat !== null) {
      this.clock.clearTimeout(this.heartbeat)
      this.heartbeat = null
    }
  }

  /** Internal (PortState): entries received on the link of `p`. */
  receiveFrom(p: PortState, incoming: readonly PresenceEntry[]): void {
    const now = this.clock.now()
    p.tokens = Math.min(this.rate * 2, p.tokens + ((now - p.tokensAt) / 1000) * this.rate)
    p.tokensAt = now
    const change = { added: [] as string[], updated: [] as string[], removed: [] as string[] }
    for (const entry of incoming) {
      if (p.tokens < 1) break // flood: the rest is dropped (RELIABILITY D8)
      p.tokens--
      if (entry.id === this.id) continue
      const identity = p.port.identity
      if (identity && entry.id !== p.port.peerId) continue // bound links speak only for their peer
      const old = this.entries.get(entry.id)
      if (old && old.clock >= entry.clock) continue
      const state =
        entry.state && identity ? { ...entry.state, ...definedOnly(identity) } : entry.state
      this.own().set(entry.id, { clock: entry.clock, state, lastSeen: now })
      if (state && !old?.state) change.added.push(entry.id)
      else if (state) change.updated.push(entry.id)
      else if (old?.state) change.removed.push(entry.id)
      this.markDirty(entry.id, p)
      this.startHeartbeat()
    }
    if (change.added.length + change.updated.length + change.removed.length) this.notify(change)
  }

  private markDirty(id: string, except: PortState | null): void {
    for (const p of this.ports) {
      if (p === except) continue
      p.markDirty(id)
      this.schedule(p)
    }
  }

  private schedule(p: PortState): void {
    if (p.timer !== null || !p.dirty?.size) return
    const wait = Math.max(0, p.lastSend + this.minInterval - this.clock.now())
    p.timer = this.clock.setTimeout(() => {
      p.timer = null
      this.flushPort(p)
    }, wait)
  }

  private flushPort(p: PortState): void {
    if (!p.dirty?.size || !this.ports.has(p)) return
    const out: PresenceEntry[] = []
    for (const id of p.dirty) {
      const e = this.entries.get(id)
      if (e) out.push(e.state ? { id, clock: e.clock, state: e.state } : { id, clock: e.clock })
    }
    p.dirty = null
    p.lastSend = this.clock.now()
    if (out.length) p.port.sendPresence(out)
  }

  private startHeartbeat(): void {
    if (this.heartbeat !== null) return
    // An unnamed closure per timer (a named one costs a property table per document).
    this.heartbeat = this.clock.setTimeout(
      () => this.heartbeatTick(),
      Math.max(1, Math.floor(this.timeout / 3)),
    )
    unref(this.heartbeat)
  }

  private heartbeatTick(): void {
    this.heartbeat = null
    // Runs while links are attached, or remote entries remain to expire.
    if (this.ports.size === 0 && !this.hasRemote()) return
    const now = this.clock.now()
    const local = this.entries.get(this.id)
    if (local?.state) {
      local.clock = ++this.localClock
      local.lastSeen = now
      this.markDirty(this.id, null)
    }
    const removed: string[] = []
    for (const [id, e] of this.entries) {
      if (id !== this.id && now - e.lastSeen > this.timeout) {
        this.table?.delete(id)
        if (e.state) removed.push(id)
      }
    }
    if (removed.length) this.notify({ added: [], updated: [], removed })
    this.startHeartbeat()
  }

  private hasRemote(): boolean {
    for (const id of this.entries.keys()) if (id !== this.id) return true
    return false
  }

  private notify(c: PresenceChange): void {
    for (const h of [...this.handlers]) h(c)
  }
}

/** What anchoring needs from a document (TextDoc has it). */
export interface Anchorable {
  /** The id of the character at `pos` (the cursor sits before it); null at the end. */
  anchorAt(pos: number): { agent: string; seq: number } | null
  /** Where that character is now (where it was, if deleted); null if this replica lacks it. */
  positionOf(anchor: Anchor): number | null
}

/**
 * A selection given as positions, anchored to event ids: it keeps pointing at the same
 * characters whatever concurrent edits arrive (positions would drift).
 */
export function anchorSelection(
  doc: Anchorable,
  anchor: number,
  head = anchor,
): { anchor: Anchor; head: Anchor } {
  return { anchor: doc.anchorAt(anchor), head: doc.anchorAt(head) }
}

/**
 * The current positions of an anchored selection in `doc`; null when the doc does not
 * hold an anchor's character yet (its events are still on the way).
 */
export function resolveSelection(
  doc: Anchorable,
  sel: { readonly anchor: Anchor; readonly head: Anchor },
): { anchor: number; head: number } | null {
  const anchor = doc.positionOf(sel.anchor)
  const head = doc.positionOf(sel.head)
  return anchor === null || head === null ? null : { anchor, head }
}

function definedOnly(identity: Identity): Identity {
  const out: { user?: string; name?: string; color?: string } = {}
  if (identity.user !== undefined) out.user = identity.user
  if (identity.name !== undefined) out.name = identity.name
  if (identity.color !== undefined) out.color = identity.color
  return out
}

function unref(h: unknown): void {
  ;(h as { unref?: () => void } | null)?.unref?.()
}
