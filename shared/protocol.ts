/**
 * Wire messages of the sync protocol (see shared/PROTOCOL.md): one discriminated
 * union, a version byte, encode/decode with full validation, and the table of
 * error/close codes.
 *
 * Invariants: `decodeMessage` either returns a fully checked message or throws a
 * `SyncError` (BAD_MESSAGE, UNSUPPORTED_VERSION, UNKNOWN_TYPE, TOO_LARGE,
 * TOO_MANY_AGENTS); it never mutates anything but the per-direction agent table,
 * and only on success. Version vectors decoded from the wire are prototype-free
 * objects, so keys like `__proto__` are plain keys. Encoding and decoding cost is
 * linear in the message: no vv is scanned beyond the entries a message names.
 */

import {
  MAX_DEFLATE_RATIO,
  Reader,
  WireError,
  Writer,
  encoder,
  nextDict,
  pack,
  putUint,
  uintSize,
  unpack,
} from './sync-codec.ts'
import type { MutableVV, VersionVector } from './replica.ts'
import { appended } from './tight-list.ts'

/** The protocol version carried in the first byte of every message. */
export const PROTOCOL_VERSION = 3

/** Error and close codes: one table. `fatal` codes close the link after the error is sent. */
export const SYNC_ERRORS = {
  BAD_MESSAGE: { code: 1, fatal: true, retryable: false },
  UNSUPPORTED_VERSION: { code: 2, fatal: true, retryable: false },
  UNKNOWN_TYPE: { code: 3, fatal: true, retryable: false },
  TOO_LARGE: { code: 4, fatal: true, retryable: false },
  BAD_UPDATE: { code: 5, fatal: true, retryable: false },
  STATE: { code: 6, fatal: true, retryable: false },
  PENDING_OVERFLOW: { code: 7, fatal: true, retryable: true },
  READ_ONLY: { code: 8, fatal: false, retryable: false },
  PERSIST_FAILED: { code: 9, fatal: true, retryable: true },
  TOO_MANY_AGENTS: { code: 10, fatal: true, retryable: false },
  GOING_AWAY: { code: 11, fatal: true, retryable: true },
  INTERNAL: { code: 12, fatal: true, retryable: true },
} as const

export type SyncErrorName = keyof typeof SYNC_ERRORS

const NAME_BY_CODE = new Map<number, SyncErrorName>(
  (Object.keys(SYNC_ERRORS) as SyncErrorName[]).map((n) => [SYNC_ERRORS[n].code, n]),
)

/** The name of a numeric error code, or undefined for an unknown code. */
export function errorName(code: number): SyncErrorName | undefined {
  return NAME_BY_CODE.get(code)
}

/** WebSocket close code used when a link closes because of error `code` (4000 + code). */
export function closeCodeFor(code: number): number {
  return 4000 + code
}

/** A protocol error on one link. `remote` is true when the peer reported it to us. */
export class SyncError extends Error {
  readonly code: number
  readonly codeName: SyncErrorName
  readonly fatal: boolean
  readonly retryable: boolean
  readonly remote: boolean
  constructor(name: SyncErrorName, message: string, remote = false) {
    super(`${name}: ${message}`)
    this.name = 'SyncError'
    this.codeName = name
    this.code = SYNC_ERRORS[name].code
    this.fatal = SYNC_ERRORS[name].fatal
    this.retryable = SYNC_ERRORS[name].retryable
    this.remote = remote
  }
}

/** Message type bytes. */
export const MSG = {
  HELLO: 1,
  EVENTS: 2,
  ACK: 3,
  NEED: 4,
  PRESENCE: 5,
  ERROR: 6,
  PRUNE: 7,
  GRAFT: 8,
} as const

/** An anchor: the character a cursor sits before, by event id; null = end of document. */
export type Anchor = { readonly agent: string; readonly seq: number } | null

/** The presence state of one replica, as carried on the wire. */
export interface PresenceState {
  readonly user?: string
  readonly name?: string
  readonly color?: string
  readonly selection?: { readonly anchor: Anchor; readonly head: Anchor }
}

export interface PresenceEntry {
  readonly id: string
  readonly clock: number
  /** Absent: the replica left. */
  readonly state?: PresenceState
}

export type Message =
  | {
      readonly type: 'hello'
      readonly readOnly: boolean
      readonly id: string
      readonly have: VersionVector
      readonly durable: VersionVector
      /** The sender takes no deflated EVENTS (HELLO flags bit1). */
      readonly noDeflate?: boolean
      /** The sender relays along a tree: it may PRUNE and GRAFT this link (HELLO flags bit2). */
      readonly tree?: boolean
    }
  | ({
      readonly type: 'events'
      /** Updates to apply in order, each as `Replica.encodeUpdate` / `'update'` gives them. */
      readonly updates: readonly Uint8Array[]
      /** The sender waits for an acknowledgement of these events. */
      readonly ackWanted?: boolean
      /** A version-vector diff (handshake, NEED, GRAFT): it may repeat events the receiver holds. */
      readonly diff?: boolean
    } & Acks)
  | ({ readonly type: 'ack' } & Acks)
  | { readonly type: 'need'; readonly have: VersionVector }
  /** Stop pushing events on this link, announce them instead (both directions leave the tree). */
  | { readonly type: 'prune' }
  /** Push again (both directions rejoin the tree), starting with what `have` lacks. */
  | { readonly type: 'graft'; readonly have: VersionVector }
  | { readonly type: 'presence'; readonly entries: readonly PresenceEntry[] }
  | { readonly type: 'error'; readonly code: number; readonly message: string }

/**
 * What an EVENTS or ACK message tells about the sender's state; every field is optional
 * and every vv here is partial (only the entries it names; absolute counts).
 */
export interface Acks {
  /** The sender has integrated (and persisted) the receiver's first n EVENTS messages. */
  readonly ackedMessages?: number
  /** The sender has integrated (and persisted) these events. */
  readonly ack?: VersionVector
  /** The sender holds these events (so the receiver need not send them). */
  readonly have?: VersionVector
}

const NO_AGENTS: readonly string[] = Object.freeze([])

/**
 * Per-direction state both encoder and decoder keep: the agent table (agent ids travel
 * once per direction, then as small refs) and, on a direction that deflates, the
 * dictionary (the last DICT_BYTES of the update lists carried). One `WireState` for what
 * we send, one for what we read.
 */
export class WireState {
  /**
   * This direction deflates update lists when that pays (both sides wanted it, as their
   * HELLOs said); set before any EVENTS. Then both ends keep the dictionary.
   */
  deflate = false
  dict: Uint8Array | null = null
  /** The maximum of every `have` carried in this direction (they travel as increments over it). */
  have: VersionVector | null = null
  /** The agent table (a tight list: a hub holds two per client, most naming few agents). */
  agents: readonly string[] = NO_AGENTS
  /** Index of each agent, once the table outgrows a linear search (most links name few). */
  private index: Map<string, number> | null = null
  constructor(readonly maxAgents = 100_000) {}
  indexOf(agent: string): number {
    if (this.index !== null) return this.index.get(agent) ?? -1
    return this.agents.indexOf(agent)
  }
  add(agent: string): void {
    this.index?.set(agent, this.agents.length)
    this.agents = appended(this.agents, agent)
    if (this.index === null && this.agents.length > 16) {
      this.index = new Map(this.agents.map((a, i) => [a, i]))
    }
  }
}

/** A prototype-free version vector. */
export function emptyVV(): MutableVV {
  return Object.create(null) as MutableVV
}

export const MAX_AGENT_BYTES = 64
/** EVENTS / ACK flags. */
const F_ACKED_MESSAGES = 1
const F_ACK = 2
const F_HAVE = 4
const F_ACK_WANTED = 8
/** EVENTS flag: the update list is deflated against the direction's dictionary. */
const F_DEFLATED = 16
/** EVENTS flag: a version-vector diff (may repeat what the receiver holds: no relay evidence). */
const F_DIFF = 32
/** HELLO flags. */
const H_READ_ONLY = 1
const H_NO_DEFLATE = 2
const H_TREE = 4
// ---------------------------------------------------------------- agents and vvs

function checkAgent(agent: string): void {
  const n = encoder.encode(agent).length
  if (n < 1 || n > MAX_AGENT_BYTES) throw new RangeError(`agent id of ${n} bytes (1..64 allowed)`)
}

function writeAgent(w: Writer, st: WireState, agent: string): void {
  const i = st.indexOf(agent)
  if (i >= 0) return w.uint(i + 1)
  checkAgent(agent)
  w.uint(0)
  w.string(agent)
  st.add(agent)
}

/**
 * The deflate dictionaries a link starts with, from the two HELLOs: the agent ids each named
 * in `have`, the sending side's first (updates name them; a first diff then deflates well).
 */
export function seedDictionaries(
  out: WireState,
  inn: WireState,
  mine: VersionVector,
  theirs: VersionVector,
): void {
  const names = (vv: VersionVector) => Object.keys(vv).filter((a) => vv[a]! > 0)
  const seed = (first: VersionVector, then: VersionVector) => {
    const ids = names(first).concat(names(then))
    return ids.length > 0 ? nextDict(null, encoder.encode(ids.join(''))) : null
  }
  if (out.deflate) out.dict = seed(mine, theirs)
  if (inn.deflate) inn.dict = seed(theirs, mine)
}

/** Reads an agent ref; new names go to `added` (committed only once the whole message is valid). */
function readAgent(r: Reader, st: WireState, added: string[]): string {
  const ref = r.uint()
  if (ref > 0) {
    const i = ref - 1
    if (i < st.agents.length) return st.agents[i]!
    if (i - st.agents.length < added.length) return added[i - st.agents.length]!
    return r.fail(`unknown agent ref ${ref}`)
  }
  const name = r.string(MAX_AGENT_BYTES)
  if (name.length === 0) r.fail('empty agent id')
  if (st.agents.length + added.length >= st.maxAgents) {
    throw new SyncError('TOO_MANY_AGENTS', `more than ${st.maxAgents} agent ids on one link`)
  }
  if (st.indexOf(name) >= 0 || added.includes(name)) r.fail(`agent ${name} declared twice`)
  added.push(name)
  return name
}

/** Entries of `next` that differ from `base` (for deltas). */
function diffEntries(base: VersionVector, next: VersionVector): [string, number][] {
  const out: [string, number][] = []
  for (const a in next) if ((base[a] ?? 0) !== next[a]) out.push([a, next[a]!])
  return out
}

function writeEntries(w: Writer, st: WireState, entries: [string, number][]): void {
  w.uint(entries.length)
  for (const [a, s] of entries) {
    writeAgent(w, st, a)
    w.uint(s)
  }
}

/** Entries where `next` is ahead of `base`, written as increments (small numbers). */
function writeIncrements(w: Writer, st: WireState, base: VersionVector, next: VersionVector): void {
  const entries: [string, number][] = []
  for (const a in next) if (next[a]! > (base[a] ?? 0)) entries.push([a, next[a]! - (base[a] ?? 0)])
  writeEntries(w, st, entries)
}

/** A partial vv as `count, (agentRef, n)*` with absolute counts n >= 1 (zero entries dropped). */
function writePartial(w: Writer, st: WireState, vv: VersionVector): void {
  let n = 0
  for (const a in vv) if (vv[a]! > 0) n++
  w.uint(n)
  for (const a in vv) {
    if (vv[a]! <= 0) continue
    writeAgent(w, st, a)
    w.uint(vv[a]!)
  }
}

/**
 * Reads a vv relative to `base`: with `increments`, each entry adds to the base entry
 * (so a vv can only grow, by construction); otherwise entries replace base entries.
 */
function readDelta(
  r: Reader,
  st: WireState,
  added: string[],
  base: VersionVector,
  increments: boolean,
): VersionVector {
  const n = r.uint()
  if (n > r.buf.length - r.pos) r.fail(`vv count ${n} exceeds remaining bytes`)
  const out = copyVV(base)
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) {
    const a = readAgent(r, st, added)
    const s = r.uint()
    if (seen.has(a)) r.fail(`agent ${a} twice in one vv`)
    seen.add(a)
    if (increments) {
      if (s === 0) r.fail(`zero increment for ${a}`)
      const v = (base[a] ?? 0) + s
      if (!Number.isSafeInteger(v)) r.fail(`vv entry for ${a} over 2^53`)
      out[a] = v
    } else out[a] = s
  }
  return out
}

/** Reads a partial vv written by `writePartial`. */
function readPartial(r: Reader, st: WireState, added: string[]): VersionVector {
  const n = r.uint()
  if (n > r.buf.length - r.pos) r.fail(`vv count ${n} exceeds remaining bytes`)
  const out = emptyVV()
  for (let i = 0; i < n; i++) {
    const a = readAgent(r, st, added)
    const s = r.uint()
    if (s === 0) r.fail(`zero count for ${a}`)
    if (a in out) r.fail(`agent ${a} twice in one vv`)
    out[a] = s
  }
  return out
}

export function copyVV(vv: VersionVector): MutableVV {
  const out = emptyVV()
  for (const a in vv) out[a] = vv[a]!
  return out
}

function writeAcks(w: Writer, st: WireState, msg: Acks, extra: number): void {
  // `have` as increments over what this direction announced before (entries not above it
  // say nothing new: the receiver keeps the maximum); dropped when nothing is left.
  const last = st.have ?? NO_HAVE
  const have: [string, number][] = []
  for (const a in msg.have) if (msg.have[a]! > (last[a] ?? 0)) have.push([a, msg.have[a]!])
  const flags =
    extra |
    (msg.ackedMessages !== undefined ? F_ACKED_MESSAGES : 0) |
    (msg.ack !== undefined ? F_ACK : 0) |
    (have.length > 0 ? F_HAVE : 0)
  w.byte(flags)
  if (msg.ackedMessages !== undefined) w.uint(msg.ackedMessages)
  if (msg.ack !== undefined) writePartial(w, st, msg.ack)
  if (have.length === 0) return
  const next = (st.have = copyVV(last))
  w.uint(have.length)
  for (const [a, n] of have) {
    writeAgent(w, st, a)
    w.uint(n - (last[a] ?? 0))
    next[a] = n
  }
}

const NO_HAVE: VersionVector = Object.freeze(emptyVV())

/** Acks as decoded, and the direction's `have` after them (committed once the message is valid). */
function readAcks(
  r: Reader,
  st: WireState,
  added: string[],
  flags: number,
): { acks: Acks; have: VersionVector | null } {
  const out: { -readonly [K in keyof Acks]: Acks[K] } = {}
  if (flags & F_ACKED_MESSAGES) out.ackedMessages = r.uint()
  if (flags & F_ACK) out.ack = readPartial(r, st, added)
  if (!(flags & F_HAVE)) return { acks: out, have: st.have }
  const last = st.have ?? NO_HAVE
  const next = readDelta(r, st, added, last, true)
  const have = emptyVV()
  for (const a in next) if (next[a] !== last[a]) have[a] = next[a]!
  out.have = have
  return { acks: out, have: next }
}

// ---------------------------------------------------------------- encode / decode

/**
 * Encodes one message. `st` is the sending direction's state (its agent table); it is
 * advanced (the message must then be sent).
 */
export function encodeMessage(msg: Message, st: WireState): Uint8Array {
  const w = new Writer()
  w.byte(PROTOCOL_VERSION)
  switch (msg.type) {
    case 'hello':
      w.byte(MSG.HELLO)
      w.byte(
        (msg.readOnly ? H_READ_ONLY : 0) |
          (msg.noDeflate ? H_NO_DEFLATE : 0) |
          (msg.tree ? H_TREE : 0),
      )
      // The id also opens the agent table (it is often an agent the vvs name next).
      w.string(msg.id)
      if (st.indexOf(msg.id) < 0) st.add(msg.id)
      writeIncrements(w, st, emptyVV(), msg.have)
      writeEntries(
        w,
        st,
        diffEntries(msg.have, msg.durable).concat(missingEntries(msg.have, msg.durable)),
      )
      break
    case 'events': {
      w.byte(MSG.EVENTS)
      const list = listBytes(msg.updates)
      const packed = st.deflate ? pack(list, st.dict) : null
      const extra =
        (msg.ackWanted ? F_ACK_WANTED : 0) | (packed ? F_DEFLATED : 0) | (msg.diff ? F_DIFF : 0)
      writeAcks(w, st, msg, extra)
      if (packed !== null) {
        w.uint(list.length)
        w.bytes(packed)
      } else w.raw(list)
      if (st.deflate) st.dict = nextDict(st.dict, list)
      break
    }
    case 'ack':
      w.byte(MSG.ACK)
      writeAcks(w, st, msg, 0)
      break
    case 'need':
      w.byte(MSG.NEED)
      writeIncrements(w, st, emptyVV(), msg.have)
      break
    case 'prune':
      w.byte(MSG.PRUNE)
      break
    case 'graft':
      w.byte(MSG.GRAFT)
      writeIncrements(w, st, emptyVV(), msg.have)
      break
    case 'presence':
      w.byte(MSG.PRESENCE)
      w.uint(msg.entries.length)
      for (const e of msg.entries) writePresence(w, st, e)
      break
    case 'error':
      w.byte(MSG.ERROR)
      w.uint(msg.code)
      w.string(msg.message)
      break
  }
  return w.finish()
}

/**
 * The bytes of an EVENTS message that names no agent (no acks, no `have`): the same for
 * every link and direction, so a hub encodes it once and sends it to many peers.
 */
export function encodePlainEvents(updates: readonly Uint8Array[], ackWanted = false): Uint8Array {
  let size = 3 + uintSize(updates.length)
  for (const u of updates) size += uintSize(u.length) + u.length
  const out = new Uint8Array(size)
  out[0] = PROTOCOL_VERSION
  out[1] = MSG.EVENTS
  out[2] = ackWanted ? F_ACK_WANTED : 0
  let pos = putUint(out, 3, updates.length)
  for (const u of updates) {
    pos = putUint(out, pos, u.length)
    out.set(u, pos)
    pos += u.length
  }
  return out
}

/** An update list as EVENTS carries it: `count`, then each update as `bytes`. */
function listBytes(updates: readonly Uint8Array[]): Uint8Array {
  const w = new Writer()
  w.uint(updates.length)
  for (const u of updates) w.bytes(u)
  return w.finish()
}

/** Entries of `base` missing from `next` (encoded as 0 in `next`). */
function missingEntries(base: VersionVector, next: VersionVector): [string, number][] {
  const out: [string, number][] = []
  for (const a in base) if (!(a in next) && base[a] !== 0) out.push([a, 0])
  return out
}

function writeAnchor(w: Writer, st: WireState, a: Anchor): void {
  if (a === null) return w.byte(0)
  w.byte(1)
  writeAgent(w, st, a.agent)
  w.uint(a.seq)
}

function readAnchor(r: Reader, st: WireState, added: string[]): Anchor {
  const tag = r.byte()
  if (tag === 0) return null
  if (tag !== 1) r.fail(`bad anchor tag ${tag}`)
  const agent = readAgent(r, st, added)
  return { agent, seq: r.uint() }
}

const MAX_FIELD = 256

function writePresence(w: Writer, st: WireState, e: PresenceEntry): void {
  w.string(e.id)
  w.uint(e.clock)
  const s = e.state
  if (!s) return w.byte(0)
  const flags =
    1 |
    (s.user !== undefined ? 2 : 0) |
    (s.name !== undefined ? 4 : 0) |
    (s.color !== undefined ? 8 : 0) |
    (s.selection ? 16 : 0)
  w.byte(flags)
  if (s.user !== undefined) w.string(s.user)
  if (s.name !== undefined) w.string(s.name)
  if (s.color !== undefined) w.string(s.color)
  if (s.selection) {
    writeAnchor(w, st, s.selection.anchor)
    writeAnchor(w, st, s.selection.head)
  }
}

function readPresence(r: Reader, st: WireState, added: string[]): PresenceEntry {
  const id = r.string(MAX_AGENT_BYTES)
  if (id.length === 0) r.fail('empty presence id')
  const clock = r.uint()
  const flags = r.byte()
  if (flags === 0) return { id, clock }
  if (!(flags & 1) || flags > 31) r.fail(`bad presence flags ${flags}`)
  const state: { -readonly [K in keyof PresenceState]: PresenceState[K] } = {}
  if (flags & 2) state.user = r.string(MAX_FIELD)
  if (flags & 4) state.name = r.string(MAX_FIELD)
  if (flags & 8) state.color = r.string(MAX_FIELD)
  if (flags & 16)
    state.selection = { anchor: readAnchor(r, st, added), head: readAnchor(r, st, added) }
  return { id, clock, state }
}

/**
 * Decodes and validates one message read from the wire. `st` is the receiving
 * direction's state; it is advanced only when the whole message is valid.
 * Throws `SyncError` on any problem.
 */
export function decodeMessage(bytes: Uint8Array, st: WireState, maxBytes = Infinity): Message {
  try {
    return decodeChecked(bytes, st, maxBytes)
  } catch (e) {
    if (e instanceof WireError) throw new SyncError('BAD_MESSAGE', e.message)
    throw e
  }
}

function decodeChecked(bytes: Uint8Array, st: WireState, maxBytes: number): Message {
  if (!(bytes instanceof Uint8Array)) throw new SyncError('BAD_MESSAGE', 'message is not binary')
  if (bytes.length > maxBytes) {
    throw new SyncError('TOO_LARGE', `message of ${bytes.length} bytes over limit ${maxBytes}`)
  }
  const r = new Reader(bytes)
  const version = r.byte()
  if (version !== PROTOCOL_VERSION) {
    throw new SyncError(
      'UNSUPPORTED_VERSION',
      `protocol version ${version}, expected ${PROTOCOL_VERSION}`,
    )
  }
  const type = r.byte()
  const added: string[] = []
  let dict = st.dict
  let have = st.have
  let msg: Message
  switch (type) {
    case MSG.HELLO: {
      const flags = r.byte()
      if (flags > 7) r.fail(`bad hello flags ${flags}`)
      const id = r.string(MAX_AGENT_BYTES)
      if (id.length === 0) r.fail('empty replica id')
      if (st.indexOf(id) < 0) {
        if (st.agents.length >= st.maxAgents) {
          throw new SyncError('TOO_MANY_AGENTS', `more than ${st.maxAgents} agent ids on one link`)
        }
        added.push(id)
      }
      const have = readDelta(r, st, added, emptyVV(), true)
      const durable = readDelta(r, st, added, have, false)
      msg = { type: 'hello', readOnly: (flags & H_READ_ONLY) !== 0, id, have, durable }
      if (flags & H_NO_DEFLATE) msg = { ...msg, noDeflate: true }
      if (flags & H_TREE) msg = { ...msg, tree: true }
      break
    }
    case MSG.EVENTS: {
      const flags = r.byte()
      if (flags > 63) r.fail(`bad events flags ${flags}`)
      const { acks, have: nextHave } = readAcks(r, st, added, flags)
      have = nextHave
      let list: Reader = r
      if (flags & F_DEFLATED) {
        if (!st.deflate) r.fail('deflated updates on a link that takes none')
        const rawLen = r.uint()
        const packed = r.bytes()
        if (rawLen > maxBytes) {
          throw new SyncError(
            'TOO_LARGE',
            `updates inflate to ${rawLen} bytes, over limit ${maxBytes}`,
          )
        }
        if (rawLen > packed.length * MAX_DEFLATE_RATIO + 64)
          r.fail(`inflated size ${rawLen} impossible for ${packed.length} bytes`)
        const raw = unpack(packed, rawLen, st.dict) ?? r.fail('corrupt deflated updates')
        list = new Reader(raw)
      }
      const listStart = list.pos
      const n = list.uint()
      if (n > list.buf.length - list.pos) list.fail(`update count ${n} exceeds remaining bytes`)
      const updates: Uint8Array[] = []
      for (let i = 0; i < n; i++) updates.push(list.bytes())
      if (list !== r) list.end()
      if (st.deflate) dict = nextDict(st.dict, list.buf.subarray(listStart, list.pos))
      msg = { type: 'events', updates, ...acks }
      if (flags & F_ACK_WANTED) msg = { ...msg, ackWanted: true }
      if (flags & F_DIFF) msg = { ...msg, diff: true }
      break
    }
    case MSG.ACK: {
      const flags = r.byte()
      if (flags > 7) r.fail(`bad ack flags ${flags}`)
      const { acks, have: nextHave } = readAcks(r, st, added, flags)
      have = nextHave
      msg = { type: 'ack', ...acks }
      break
    }
    case MSG.NEED:
      msg = { type: 'need', have: readDelta(r, st, added, emptyVV(), true) }
      break
    case MSG.PRUNE:
      msg = { type: 'prune' }
      break
    case MSG.GRAFT:
      msg = { type: 'graft', have: readDelta(r, st, added, emptyVV(), true) }
      break
    case MSG.PRESENCE: {
      const n = r.uint()
      if (n > bytes.length - r.pos) r.fail(`presence count ${n} exceeds remaining bytes`)
      const entries: PresenceEntry[] = []
      for (let i = 0; i < n; i++) entries.push(readPresence(r, st, added))
      msg = { type: 'presence', entries }
      break
    }
    case MSG.ERROR:
      msg = { type: 'error', code: r.uint(), message: r.string(4096) }
      break
    default:
      throw new SyncError('UNKNOWN_TYPE', `message type ${type}`)
  }
  r.end()
  // Commit: the message is valid.
  for (const a of added) st.add(a)
  st.dict = dict
  st.have = have
  return msg
}

/** Componentwise maximum (a new prototype-free object). */
export function maxVV(a: VersionVector, b: VersionVector): MutableVV {
  const out = copyVV(a)
  raiseVV(out, b)
  return out
}

/** Raises `into` to cover `vv`, in place (O(entries of vv)); true if anything changed. */
export function raiseVV(into: MutableVV, vv: VersionVector): boolean {
  let changed = false
  for (const k in vv) {
    if ((into[k] ?? 0) < vv[k]!) {
      into[k] = vv[k]!
      changed = true
    }
  }
  return changed
}

/** True when `a` holds every event of `b`. */
export function vvCovers(a: VersionVector, b: VersionVector): boolean {
  for (const k in b) if ((a[k] ?? 0) < b[k]!) return false
  return true
}
