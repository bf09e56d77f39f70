/**
 * Presence: ephemeral per-replica state (user, name, colour, selection anchored to
 * event ids) shared by all links of one document, relayed across any topology.
 *
 * Owns: the table `id -> { clock, state, lastSeen }`, the local entry and its
 * clock, one outgoing queue per attached link (throttled to `minIntervalMs`), a
 * token bucket per link for incoming entries (both made on the link's first presence
 * traffic), and the heartbeat/expiry timer.
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

/**
 * An attached link's presence traffic: the ids it must still be sent, its send timer, its budget
 * for incoming entries. Made when first needed: a hub holds many links that never see presence.
 */
class PortState {
  dirty: Set<string> | null = null
  lastSend = -Infinity
  timer: unknown = null
  constructor(
    public tokens: number,
    public tokensAt: number,
  ) {}
}

/** Shared presence state of one document. Pass it as `presence` to each `link`. */
export class Presence {
  readonly id: string
  /** The table; null until the first entry (a hub's documents mostly see no presence). */
  private table: Map<string, Entry> | null = null
  private readonly ports = new Set<PresencePort>()
  /** Traffic state of the attached links that have had any (see PortState). */
  private states: Map<PresencePort, PortState> | null = null
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
    for (const port of this.ports) this.flushPort(port)
    for (const port of [...this.ports]) this.detach(port)
  }

  /** Called by a link once the peer's HELLO arrived. Internal contract with sync.ts. */
  attach(port: PresencePort): void {
    this.ports.add(port)
    // Nothing to send or expire until there is an entry (setLocal, receive start the timer).
    if (this.table === null) return
    for (const [id, e] of this.entries) if (e.state) this.markDirtyOn(port, id)
    this.startHeartbeat()
  }

  /** The link of `port` is gone (idempotent). Internal contract with sync.ts. */
  detach(port: PresencePort): void {
    if (!this.ports.delete(port)) return
    const st = this.states?.get(port)
    if (st !== undefined) {
      if (st.timer !== null) this.clock.clearTimeout(st.timer)
      this.states!.delete(port)
      if (this.states!.size === 0) this.states = null
    }
    if (this.ports.size === 0 && !this.hasRemote() && this.heartbeat !== null) {
      this.clock.clearTimeout(this.heartbeat)
      this.heartbeat = null
    }
  }

  /** Entries received on the link of `port`, if attached. Internal contract with sync.ts. */
  receive(port: PresencePort, incoming: readonly PresenceEntry[]): void {
    if (!this.ports.has(port)) return
    const st = this.stateOf(port)
    const now = this.clock.now()
    st.tokens = Math.min(this.rate * 2, st.tokens + ((now - st.tokensAt) / 1000) * this.rate)
    st.tokensAt = now
    const change = { added: [] as string[], updated: [] as string[], removed: [] as string[] }
    for (const entry of incoming) {
      if (st.tokens < 1) break // flood: the rest is dropped (RELIABILITY D8)
      st.tokens--
      if (entry.id === this.id) continue
      const identity = port.identity
      if (identity && entry.id !== port.peerId) continue // bound links speak only for their peer
      const old = this.entries.get(entry.id)
      if (old && old.clock >= entry.clock) continue
      const state =
        entry.state && identity ? { ...entry.state, ...definedOnly(identity) } : entry.state
      this.own().set(entry.id, { clock: entry.clock, state, lastSeen: now })
      if (state && !old?.state) change.added.push(entry.id)
      else if (state) change.updated.push(entry.id)
      else if (old?.state) change.removed.push(entry.id)
      this.markDirty(entry.id, port)
      this.startHeartbeat()
    }
    if (change.added.length + change.updated.length + change.removed.length) this.notify(change)
  }

  private stateOf(port: PresencePort): PortState {
    const states = (this.states ??= new Map())
    let st = states.get(port)
    if (st === undefined) states.set(port, (st = new PortState(this.rate * 2, this.clock.now())))
    return st
  }

  private markDirty(id: string, except: PresencePort | null): void {
    for (const port of this.ports) if (port !== except) this.markDirtyOn(port, id)
  }

  /** `id` is to be sent on the link of `port`: at once, or when its throttle allows. */
  private markDirtyOn(port: PresencePort, id: string): void {
    const st = this.stateOf(port)
    ;(st.dirty ??= new Set()).add(id)
    if (st.timer !== null) return
    const wait = Math.max(0, st.lastSend + this.minInterval - this.clock.now())
    st.timer = this.clock.setTimeout(() => {
      st.timer = null
      this.flushPort(port)
    }, wait)
  }

  private flushPort(port: PresencePort): void {
    const st = this.states?.get(port)
    if (st === undefined || !st.dirty?.size || !this.ports.has(port)) return
    const out: PresenceEntry[] = []
    for (const id of st.dirty) {
      const e = this.entries.get(id)
      if (e) out.push(e.state ? { id, clock: e.clock, state: e.state } : { id, clock: e.clock })
    }
    st.dirty = null
    st.lastSend = this.clock.now()
    if (out.length) port.sendPresence(out)
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
