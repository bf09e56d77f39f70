/**
 * Binary formats: updates (a set of events) and snapshots (`save()`).
 *
 * Every message starts with the magic bytes "PY", a format version and a kind,
 * then a flags byte; the body is deflated when that pays. An update's body
 * holds columns: the agent table; the event spans (agent, first seq, length,
 * parents of the first event as ids); the operation runs (kind, length,
 * position as a zigzag delta from the previous run); then all inserted text as
 * one WTF-8 string. An insert run's direction bit says whether its text is in
 * that string: an elided run (oplog.ts) has none, its characters being deleted.
 * A merge event run (NOP) is the header 1 (a length-0 op otherwise), then its length.
 * Decoding builds plain objects and checks every count, index and length against
 * the rest of the message before returning, so a bad message throws
 * `DecodeError` before anything is touched.
 *
 * A snapshot is sectioned (FLAG_SECTIONED): version and heads, the text (deflated on its
 * own when that pays), then the history as a framed update, or as several (`CHUNKED_HISTORY`,
 * since 2026-11-29: each save encodes only the events since the last), all under one CRC-32
 * that also covers the frame's flags. Loading inflates the text alone; the history stays
 * bytes until a merge needs it. The first layout (the whole body deflated) still loads.
 */
import { DecodeError, Reader, Writer, decodeWtf8, encodeWtf8 } from './varint.ts'
import { DEL, INS, NOP, type OpKind } from './oplog.ts'
import { seal, unseal } from './crc32.ts'
import { deflateRaw, deflateRawAsync, inflateRaw } from './deflate.ts'

const MAGIC_0 = 0x50 // 'P'
const MAGIC_1 = 0x59 // 'Y'
const FORMAT = 1
export const KIND_UPDATE = 1
export const KIND_SNAPSHOT = 2
const FLAG_DEFLATED = 1
/** Magic (2), format, kind, flags. */
const HEADER_BYTES = 5
/**
 * Snapshots only: the body is not deflated as a whole; its text is a section of its own
 * (deflated when that pays) and the history, already framed updates, is stored as it is.
 * Loading then inflates the text alone and checksums the stored bytes, not the inflated ones.
 */
const FLAG_SECTIONED = 2
/**
 * First byte of a snapshot's history section when it holds several chunks; a single chunk is a
 * framed update, whose first byte is `MAGIC_0`.
 */
const CHUNKED_HISTORY = 0
/** What a sectioned snapshot's checksum covers besides its body: the frame's flags. */
const SECTIONED_CONTEXT = Uint8Array.of(FLAG_SECTIONED)
/** Bodies smaller than this are not worth compressing. */
const COMPRESS_FROM = 512
/** Deflate cannot expand more than this; a larger claimed size is a lie. */
const MAX_DEFLATE_RATIO = 1032
/** Largest decompressed update body accepted: a few compressed bytes cannot claim gigabytes. */
export const MAX_UPDATE_BODY = 64 * 2 ** 20
/** Largest decompressed snapshot body accepted. */
export const MAX_SNAPSHOT_BODY = 1024 * 2 ** 20

export type RawId = readonly [agent: string, seq: number]

export interface EventSpan {
  readonly agent: string
  readonly seq: number
  readonly len: number
  /** Parents of the span's first event; each later event's parent is its predecessor. */
  readonly parents: readonly RawId[]
}

export interface OpSpan {
  readonly kind: OpKind
  readonly len: number
  readonly pos: number
  readonly fwd: boolean
  /** Inserts: the inserted code units; '' when elided (the characters are deleted, text dropped). */
  readonly content: string
}

/** Events in a topological order, and their ops in the same order. */
export interface DecodedUpdate {
  readonly spans: readonly EventSpan[]
  readonly ops: readonly OpSpan[]
}

export interface DecodedSnapshot {
  readonly text: string
  readonly version: readonly (readonly [agent: string, count: number])[]
  readonly heads: readonly RawId[]
  /**
   * The whole history as encoded updates (chunks), decoded only when needed: each chunk's
   * events follow the previous chunks' in a topological order, so added chunk by chunk every
   * event finds its parents. One chunk, or several when each save encoded only the events
   * since the last (`TextDoc.save`).
   */
  readonly history: readonly Uint8Array[]
}

const zigzag = (n: number) => (n < 0 ? -2 * n - 1 : 2 * n)
const unzigzag = (n: number) => (n % 2 === 1 ? -(n + 1) / 2 : n / 2)

/** The kind of a message (KIND_UPDATE, KIND_SNAPSHOT), or -1 when it is not one of ours. */
export function messageKind(bytes: Uint8Array): number {
  if (!(bytes instanceof Uint8Array) || bytes.length < 5) return -1
  if (bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1 || bytes[2] !== FORMAT) return -1
  return bytes[3]
}

function frame(kind: number, body: Uint8Array, flags = 0): Uint8Array {
  if (body.length >= COMPRESS_FROM && !(flags & FLAG_SECTIONED)) {
    const packed = deflateRaw(body)
    if (packed.length < body.length * 0.9) {
      const w = new Writer()
      w.byte(MAGIC_0)
      w.byte(MAGIC_1)
      w.byte(FORMAT)
      w.byte(kind)
      w.byte(flags | FLAG_DEFLATED)
      w.uint(body.length)
      w.raw(packed)
      return w.finish()
    }
  }
  const out = new Uint8Array(5 + body.length)
  out[0] = MAGIC_0
  out[1] = MAGIC_1
  out[2] = FORMAT
  out[3] = kind
  out[4] = flags
  out.set(body, 5)
  return out
}

/** Frames a body written after `HEADER_BYTES` placeholder bytes, copying it once at most. */
function frameWritten(w: Writer, kind: number): Uint8Array {
  const body = w.view(HEADER_BYTES)
  if (body.length >= COMPRESS_FROM) {
    const framed = frame(kind, body)
    w.release()
    return framed
  }
  w.setByte(0, MAGIC_0)
  w.setByte(1, MAGIC_1)
  w.setByte(2, FORMAT)
  w.setByte(3, kind)
  w.setByte(4, 0)
  return w.finish()
}

/** Inflates `packed`, which claims to hold `size` bytes, within `maxBody`. */
function inflate(packed: Uint8Array, size: number, maxBody: number): Uint8Array {
  if (size > packed.length * MAX_DEFLATE_RATIO + 1024)
    throw new DecodeError(`compressed body claims ${size} bytes from ${packed.length}`)
  if (size > maxBody) throw new DecodeError(`body of ${size} bytes exceeds the limit of ${maxBody}`)
  let body: Uint8Array
  try {
    body = inflateRaw(packed, size)
  } catch (e) {
    throw new DecodeError(`corrupt compressed body: ${(e as Error).message}`)
  }
  if (body.length !== size)
    throw new DecodeError(`compressed body is ${body.length} bytes, header says ${size}`)
  return body
}

/** Checks the header; the body (inflated when the frame says so) and the frame's flags. */
function unframe(
  bytes: Uint8Array,
  expectKind: number,
  maxBody: number,
  allowedFlags = FLAG_DEFLATED,
): { body: Reader; flags: number } {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('expected a Uint8Array')
  const r = new Reader(bytes)
  if (r.byte('magic') !== MAGIC_0 || r.byte('magic') !== MAGIC_1)
    throw new DecodeError('not a Polyphony message (bad magic bytes)')
  const format = r.byte('format version')
  if (format !== FORMAT) throw new DecodeError(`unsupported format version ${format}`)
  const kind = r.byte('message kind')
  if (kind !== expectKind) throw new DecodeError(`expected message kind ${expectKind}, got ${kind}`)
  const flags = r.byte('flags')
  if (flags & ~allowedFlags) throw new DecodeError(`unknown flags ${flags}`)
  // Stored as it is: the body is the rest of the message, read on by the same reader.
  if (!(flags & FLAG_DEFLATED)) return { body: r, flags }
  const size = r.uint('uncompressed size')
  return { body: new Reader(inflate(r.rest(), size, maxBody)), flags }
}

/** An op header for merge events (NOP): read as ops, it would be a backspace of length 0. */
const NOP_HEADER = 1

/** An index into the update's agent table, read and checked. */
function agentAt(r: Reader, agents: readonly string[], what: string): string {
  const i = r.uint(what)
  if (i >= agents.length)
    throw new DecodeError(`${what} ${i} out of range (${agents.length} agents)`)
  return agents[i]
}

export function encodeUpdate(update: DecodedUpdate): Uint8Array {
  const w = new Writer()
  // Room for the frame's header, written in place when the body is stored as it is.
  for (let i = 0; i < HEADER_BYTES; i++) w.byte(0)
  // Agents are numbered in order of first mention, span agents and parents alike.
  const agents = new Map<string, number>()
  for (const s of update.spans) {
    if (!agents.has(s.agent)) agents.set(s.agent, agents.size)
    for (const [a] of s.parents) if (!agents.has(a)) agents.set(a, agents.size)
  }
  w.uint(agents.size)
  for (const a of agents.keys()) w.string(a)
  w.uint(update.spans.length)
  for (const s of update.spans) {
    w.uint(agents.get(s.agent)!)
    w.uint(s.seq)
    w.uint(s.len)
    w.uint(s.parents.length)
    for (const [a, seq] of s.parents) {
      w.uint(agents.get(a)!)
      w.uint(seq)
    }
  }
  w.uint(update.ops.length)
  let prev = 0
  const content: string[] = []
  for (const op of update.ops) {
    if (op.kind === NOP) {
      // A header of length 0 (never an op otherwise), then the length; no position.
      w.uint(NOP_HEADER)
      w.uint(op.len)
      continue
    }
    // kind, direction and length in one varint: len * 4 + fwd * 2 + kind. An insert's
    // direction bit says that its text follows (clear: elided).
    const bit = op.kind === INS ? op.content !== '' : op.fwd
    w.uint(op.len * 4 + (bit ? 2 : 0) + op.kind)
    w.uint(zigzag(op.pos - prev))
    prev = op.kind === INS ? op.pos + op.len : op.pos
    if (op.kind === INS && op.content !== '') content.push(op.content)
  }
  w.string(content.join(''))
  return frameWritten(w, KIND_UPDATE)
}

/** Decodes and validates an update; `maxBody` caps its decompressed size. */
export function decodeUpdate(bytes: Uint8Array, maxBody = MAX_UPDATE_BODY): DecodedUpdate {
  const r = unframe(bytes, KIND_UPDATE, maxBody).body
  const agentCount = r.count('agent count')
  // Arrays are sized up front: most updates are one keystroke, and a grown array costs more.
  const agents = new Array<string>(agentCount)
  for (let i = 0; i < agentCount; i++) agents[i] = r.string('agent id')
  const spanCount = r.count('span count', 4)
  const spans = new Array<EventSpan>(spanCount)
  let events = 0
  for (let i = 0; i < spanCount; i++) {
    const agent = agentAt(r, agents, 'span agent')
    const seq = r.uint('span seq')
    const len = r.uint('span length')
    if (len === 0) throw new DecodeError('empty event span')
    if (seq + len > Number.MAX_SAFE_INTEGER) throw new DecodeError('event seq out of range')
    const parentCount = r.count('parent count', 2)
    const parents = new Array<RawId>(parentCount)
    for (let j = 0; j < parentCount; j++)
      parents[j] = [agentAt(r, agents, 'parent agent'), r.uint('parent seq')]
    spans[i] = { agent, seq, len, parents }
    events += len
  }
  const opCount = r.count('op count', 2)
  const ops = new Array<{
    kind: OpKind
    len: number
    pos: number
    fwd: boolean
    content: string
  }>(opCount)
  let prev = 0
  let opEvents = 0
  let insertLen = 0
  for (let i = 0; i < opCount; i++) {
    const head = r.uint('op header')
    if (head === NOP_HEADER) {
      const len = r.uint('merge event length')
      if (len === 0) throw new DecodeError('empty op')
      ops[i] = { kind: NOP, len, pos: 0, fwd: true, content: '' }
      opEvents += len
      continue
    }
    const kind = head % 2 === 1 ? DEL : INS
    const bit = Math.floor(head / 2) % 2 === 1
    const len = Math.floor(head / 4)
    if (len === 0) throw new DecodeError('empty op')
    const pos = prev + unzigzag(r.uint('op position'))
    if (!Number.isSafeInteger(pos) || pos < 0)
      throw new DecodeError(`op position ${pos} out of range`)
    if (kind === DEL && !bit && pos - len + 1 < 0)
      throw new DecodeError(`backspace run of ${len} from position ${pos} runs past the start`)
    prev = kind === INS ? pos + len : pos
    // An insert's bit: its text follows (else elided, content ''); a delete's: forward.
    // An insert with text gets a non-empty marker here, its text below.
    ops[i] = { kind, len, pos, fwd: kind === INS || bit, content: kind === INS && bit ? '?' : '' }
    opEvents += len
    if (kind === INS && bit) insertLen += len
  }
  if (opEvents !== events)
    throw new DecodeError(`ops cover ${opEvents} events but the spans hold ${events}`)
  const content = r.string('inserted text')
  if (content.length !== insertLen)
    throw new DecodeError(`inserted text has ${content.length} units, ops need ${insertLen}`)
  if (r.remaining !== 0) throw new DecodeError(`${r.remaining} unexpected bytes after the update`)
  let at = 0
  for (const op of ops) {
    if (op.content === '') continue // deletes and elided inserts
    op.content = content.slice(at, at + op.len)
    at += op.len
  }
  return { spans, ops }
}

export function encodeSnapshot(snap: DecodedSnapshot): Uint8Array {
  const text = encodeWtf8(snap.text)
  return writeSnapshot(snap, text, text.length >= COMPRESS_FROM ? deflateRaw(text) : null)
}

/** `encodeSnapshot`, its text deflated off the calling thread where the runtime can. */
export async function encodeSnapshotAsync(snap: DecodedSnapshot): Promise<Uint8Array> {
  const text = encodeWtf8(snap.text)
  return writeSnapshot(
    snap,
    text,
    text.length >= COMPRESS_FROM ? await deflateRawAsync(text) : null,
  )
}

/** A snapshot of `snap`, whose text is `text` (WTF-8), deflated as `packed` when that was tried. */
function writeSnapshot(
  snap: DecodedSnapshot,
  text: Uint8Array,
  packed: Uint8Array | null,
): Uint8Array {
  const w = new Writer()
  w.uint(snap.version.length)
  for (const [agent, n] of snap.version) {
    w.string(agent)
    w.uint(n)
  }
  w.uint(snap.heads.length)
  const index = new Map(snap.version.map(([a], i) => [a, i]))
  for (const [agent, seq] of snap.heads) {
    w.uint(index.get(agent)!)
    w.uint(seq)
  }
  // The text section: a flag, then the WTF-8 bytes, deflated (after their size) when that pays.
  if (packed !== null && packed.length < text.length * 0.9) {
    w.byte(FLAG_DEFLATED)
    w.uint(text.length)
    w.bytes(packed)
  } else {
    w.byte(0)
    w.bytes(text)
  }
  if (snap.history.length === 1) {
    // One chunk: the framed update as it is (the layout before 2026-11-29; it starts MAGIC_0).
    w.raw(snap.history[0])
  } else {
    w.byte(CHUNKED_HISTORY)
    w.uint(snap.history.length)
    for (const chunk of snap.history) w.bytes(chunk)
  }
  // A checksum over the whole stored body: corrupted storage fails loudly on load.
  // The frame's flags are covered too: a flipped flag cannot select the other layout unnoticed.
  return frame(KIND_SNAPSHOT, seal(w.finish(), SECTIONED_CONTEXT), FLAG_SECTIONED)
}

export function decodeSnapshot(bytes: Uint8Array): DecodedSnapshot {
  const { body, flags } = unframe(
    bytes,
    KIND_SNAPSHOT,
    MAX_SNAPSHOT_BODY,
    FLAG_DEFLATED | FLAG_SECTIONED,
  )
  const sectioned = (flags & FLAG_SECTIONED) !== 0
  if (sectioned && flags & FLAG_DEFLATED)
    throw new DecodeError('a sectioned snapshot is never deflated as a whole')
  const r = new Reader(unseal(body.rest(), 'snapshot', sectioned ? SECTIONED_CONTEXT : undefined))
  const n = r.count('agent count', 2)
  const version: [string, number][] = []
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) {
    const agent = r.string('agent id')
    if (seen.has(agent)) throw new DecodeError(`agent ${JSON.stringify(agent)} listed twice`)
    seen.add(agent)
    const count = r.uint('event count')
    if (count === 0) throw new DecodeError('agent with no events')
    version.push([agent, count])
  }
  const headCount = r.count('head count', 2)
  const heads: RawId[] = []
  for (let i = 0; i < headCount; i++) {
    const a = r.uint('head agent')
    if (a >= version.length) throw new DecodeError(`head agent ${a} out of range`)
    const seq = r.uint('head seq')
    if (seq >= version[a][1]) throw new DecodeError(`head seq ${seq} beyond the version`)
    heads.push([version[a][0], seq])
  }
  let text: string
  if (!sectioned) {
    text = r.string('snapshot text') // the first layout: the whole body was deflated
  } else {
    const textFlags = r.byte('text flags')
    if (textFlags & ~FLAG_DEFLATED) throw new DecodeError(`unknown text flags ${textFlags}`)
    if (textFlags & FLAG_DEFLATED) {
      const size = r.uint('text size')
      text = decodeWtf8(inflate(r.bytes('snapshot text'), size, MAX_SNAPSHOT_BODY), 'snapshot text')
    } else {
      text = r.string('snapshot text')
    }
  }
  return { text, version, heads, history: readHistory(r.rest()) }
}

/**
 * A snapshot's history section: one framed update, or `CHUNKED_HISTORY`, a count and that many
 * length-prefixed framed updates (each chunk is checked when decoded, like the single one).
 */
function readHistory(rest: Uint8Array): Uint8Array[] {
  if (rest.length === 0 || rest[0] !== CHUNKED_HISTORY) return [rest.slice()]
  const r = new Reader(rest.subarray(1))
  const n = r.count('history chunk count', 2)
  if (n < 2) throw new DecodeError(`a chunked history of ${n} chunks`)
  const chunks: Uint8Array[] = []
  for (let i = 0; i < n; i++) chunks.push(r.bytes('history chunk').slice())
  if (r.remaining !== 0) throw new DecodeError(`${r.remaining} unexpected bytes after the history`)
  return chunks
}

/** The events an update or a snapshot carries, as one update. */
export function decodeEvents(message: Uint8Array): DecodedUpdate {
  return messageKind(message) === KIND_SNAPSHOT
    ? decodeHistory(decodeSnapshot(message).history)
    : decodeUpdate(message)
}

/** The events of a snapshot's history chunks as one update (they are in order). */
export function decodeHistory(history: readonly Uint8Array[]): DecodedUpdate {
  if (history.length === 1) return decodeUpdate(history[0], MAX_SNAPSHOT_BODY)
  const spans: EventSpan[] = []
  const ops: OpSpan[] = []
  for (const chunk of history) {
    const d = decodeUpdate(chunk, MAX_SNAPSHOT_BODY)
    for (const s of d.spans) spans.push(s)
    for (const o of d.ops) ops.push(o)
  }
  return { spans, ops }
}
