/**
 * The engines the trace benchmark compares: Polyphony's TextDoc and the peers Yjs, Automerge
 * (the `next` API, text as a string field) and Loro, plus a plain JS string floor.
 *
 * Owns: one adapter per engine with the same operations (local replay, concurrent replay
 * engine, history update for merge-into-empty, save, load), so the benchmark treats them
 * alike. Invariants: every adapter uses UTF-16 positions (all four engines' JS APIs do), one
 * local operation per patch (Automerge: one change per patch), and no engine gets a batching
 * shortcut the others do not have (Loro commits once at the end of a replay, the others have
 * no explicit transactions; in the concurrent harness every engine makes one txn per trace txn).
 */
import * as Automerge from '@automerge/automerge'
import { LoroDoc, type VersionVector as LoroVersion } from 'loro-crdt'
import * as Y from 'yjs'
import { TextDoc } from '../shared/index.ts'
import {
  textDocEngine,
  type Patch,
  type ReplayEngine,
  type SequentialTrace,
} from '../test/support/traces.ts'

/** One way of shipping a document's whole history into an empty replica. */
export interface MergeVariant<D> {
  readonly label: string
  /** Encodes the history of `doc` (not timed). */
  encode(doc: D): unknown
  /** Size in bytes of an encoding. */
  size(encoded: unknown): number
  /** Integrates the encoding into a fresh, empty replica (timed, with `text` after it). */
  decode(encoded: unknown): D
}

/** One engine as the benchmark sees it. */
export interface Peer<D> {
  readonly name: string
  /** Applies every patch of a sequential trace to a new document. */
  replay(trace: SequentialTrace): D
  text(doc: D): string
  readonly merges: readonly MergeVariant<D>[]
  /** The engine's own persistence format, with what it needs to merge concurrent edits later. */
  save(doc: D): Uint8Array
  /** What `save` writes is called here; `load(bytes)` then `text` is the load figure. */
  readonly saveLabel: string
  load(bytes: Uint8Array): D
  /** The concurrent replay engine (one replica per agent). */
  readonly engine: ReplayEngine<any, any, any>
}

// ---------------------------------------------------------------- Polyphony

export const ours: Peer<TextDoc> = {
  name: 'polyphony',
  replay(trace) {
    const doc = new TextDoc('bench')
    for (const [pos, del, ins] of trace.patches) {
      if (del > 0) doc.delete(pos, del)
      if (ins !== '') doc.insert(pos, ins)
    }
    return doc
  },
  text: (doc) => doc.toString(),
  merges: [
    {
      label: 'encodeUpdate()',
      encode: (doc) => doc.encodeUpdate(),
      size: (u) => (u as Uint8Array).byteLength,
      decode(u) {
        const doc = new TextDoc('merge')
        doc.applyUpdate(u as Uint8Array)
        return doc
      },
    },
  ],
  save: (doc) => doc.save(),
  saveLabel: 'save()',
  load: (bytes) => TextDoc.load(bytes),
  engine: textDocEngine(TextDoc),
}

// ---------------------------------------------------------------- Yjs

function yText(doc: Y.Doc): Y.Text {
  return doc.getText('text')
}

const yjsEngine: ReplayEngine<Y.Doc, Uint8Array, Uint8Array> = {
  name: 'yjs',
  create(agent) {
    const doc = new Y.Doc({ gc: true })
    doc.clientID = agent + 1 // lower agent wins ties, as in the traces
    return doc
  },
  mark: (doc) => Y.encodeStateVector(doc),
  applyPatch(doc, pos, del, ins) {
    const t = yText(doc)
    if (del > 0) t.delete(pos, del)
    if (ins !== '') t.insert(pos, ins)
  },
  capture: (doc, sv) => Y.encodeStateAsUpdate(doc, sv),
  applyUpdate: (doc, u) => Y.applyUpdate(doc, u),
  text: (doc) => yText(doc).toString(),
}

export const yjs: Peer<Y.Doc> = {
  name: 'yjs',
  replay(trace) {
    const doc = new Y.Doc()
    const t = yText(doc)
    for (const [pos, del, ins] of trace.patches) {
      if (del > 0) t.delete(pos, del)
      if (ins !== '') t.insert(pos, ins)
    }
    return doc
  },
  text: (doc) => yText(doc).toString(),
  merges: [
    {
      label: 'v1 update',
      encode: (doc) => Y.encodeStateAsUpdate(doc),
      size: (u) => (u as Uint8Array).byteLength,
      decode(u) {
        const doc = new Y.Doc()
        Y.applyUpdate(doc, u as Uint8Array)
        return doc
      },
    },
    {
      label: 'v2 update',
      encode: (doc) => Y.encodeStateAsUpdateV2(doc),
      size: (u) => (u as Uint8Array).byteLength,
      decode(u) {
        const doc = new Y.Doc()
        Y.applyUpdateV2(doc, u as Uint8Array)
        return doc
      },
    },
  ],
  save: (doc) => Y.encodeStateAsUpdateV2(doc),
  saveLabel: 'v2 update',
  load(bytes) {
    const doc = new Y.Doc()
    Y.applyUpdateV2(doc, bytes)
    return doc
  },
  engine: yjsEngine,
}

/** Yjs's v1 update, reported beside v2 in the size table. */
export function yjsV1Size(doc: Y.Doc): number {
  return Y.encodeStateAsUpdate(doc).byteLength
}

// ---------------------------------------------------------------- Automerge

type AmDoc = Automerge.Doc<{ text: string }>
/** Automerge docs are immutable values: the harness needs a mutable holder. */
interface AmReplica {
  doc: AmDoc
}

/** Hex actor ids that sort like the agent numbers. */
function actorFor(agent: number): string {
  return (agent + 1).toString(16).padStart(8, '0')
}

/** Every replica starts from the same root change, so `text` is one shared object. */
let amRootChange: Automerge.Change | undefined
function amRoot(): Automerge.Change {
  if (amRootChange === undefined) {
    const root = Automerge.from<{ text: string }>({ text: '' }, { actor: '00000000' })
    amRootChange = Automerge.getLastLocalChange(root)!
  }
  return amRootChange
}

const automergeEngine: ReplayEngine<AmReplica, Automerge.Change, null> = {
  name: 'automerge',
  create(agent) {
    const [doc] = Automerge.applyChanges(
      Automerge.init<{ text: string }>({ actor: actorFor(agent) }),
      [amRoot()],
    )
    return { doc }
  },
  mark: () => null,
  applyPatch(r, pos, del, ins) {
    r.doc = Automerge.change(r.doc, (d) => Automerge.splice(d, ['text'], pos, del, ins))
  },
  applyPatches(r, patches: readonly Patch[]) {
    r.doc = Automerge.change(r.doc, (d) => {
      for (const [pos, del, ins] of patches) Automerge.splice(d, ['text'], pos, del, ins)
    })
  },
  capture(r) {
    const change = Automerge.getLastLocalChange(r.doc)
    if (change === undefined) throw new Error('automerge: txn made no change')
    return change
  },
  applyUpdate(r, change) {
    ;[r.doc] = Automerge.applyChanges(r.doc, [change])
  },
  applyUpdates(r, changes) {
    ;[r.doc] = Automerge.applyChanges(r.doc, changes as Automerge.Change[])
  },
  text: (r) => r.doc.text,
}

export const automerge: Peer<AmDoc> = {
  name: 'automerge',
  replay(trace) {
    let doc = Automerge.from<{ text: string }>({ text: '' })
    for (const [pos, del, ins] of trace.patches) {
      doc = Automerge.change(doc, (d) => Automerge.splice(d, ['text'], pos, del, ins))
    }
    return doc
  },
  text: (doc) => doc.text,
  merges: [
    {
      label: 'applyChanges',
      encode: (doc) => Automerge.getAllChanges(doc),
      size: (changes) => (changes as Uint8Array[]).reduce((n, c) => n + c.byteLength, 0),
      decode: (changes) =>
        Automerge.applyChanges(
          Automerge.init<{ text: string }>(),
          changes as Automerge.Change[],
        )[0],
    },
  ],
  save: (doc) => Automerge.save(doc),
  saveLabel: 'save()',
  load: (bytes) => Automerge.load<{ text: string }>(bytes),
  engine: automergeEngine,
}

// ---------------------------------------------------------------- Loro

const loroEngine: ReplayEngine<LoroDoc, Uint8Array, LoroVersion> = {
  name: 'loro',
  create(agent) {
    const doc = new LoroDoc()
    doc.setPeerId(agent + 1)
    return doc
  },
  mark: (doc) => doc.oplogVersion(),
  applyPatch(doc, pos, del, ins) {
    const t = doc.getText('text')
    if (del > 0) t.delete(pos, del)
    if (ins !== '') t.insert(pos, ins)
  },
  capture(doc, before) {
    doc.commit()
    return doc.export({ mode: 'update', from: before })
  },
  applyUpdate: (doc, u) => void doc.import(u),
  applyUpdates: (doc, us) => void doc.importBatch(us as Uint8Array[]),
  text: (doc) => doc.getText('text').toString(),
}

export const loro: Peer<LoroDoc> = {
  name: 'loro',
  replay(trace) {
    const doc = new LoroDoc()
    const t = doc.getText('text')
    for (const [pos, del, ins] of trace.patches) {
      if (del > 0) t.delete(pos, del)
      if (ins !== '') t.insert(pos, ins)
    }
    doc.commit()
    return doc
  },
  text: (doc) => doc.getText('text').toString(),
  merges: [
    {
      label: 'update',
      encode: (doc) => doc.export({ mode: 'update' }),
      size: (u) => (u as Uint8Array).byteLength,
      decode(u) {
        const doc = new LoroDoc()
        doc.import(u as Uint8Array)
        return doc
      },
    },
  ],
  save: (doc) => doc.export({ mode: 'snapshot' }),
  saveLabel: 'snapshot',
  load(bytes) {
    const doc = new LoroDoc()
    doc.import(bytes)
    return doc
  },
  engine: loroEngine,
}

// ---------------------------------------------------------------- plain string floor

/** Plain JS string splice per patch: the floor (no CRDT, no history). */
export function replayPlainString(trace: SequentialTrace): string {
  let s = ''
  for (const [pos, del, ins] of trace.patches) s = s.slice(0, pos) + ins + s.slice(pos + del)
  return s
}

export const PEERS: readonly Peer<any>[] = [ours, yjs, automerge, loro]

/** Looks a peer up by name (throws on an unknown name). */
export function peerByName(name: string): Peer<any> {
  const peer = PEERS.find((p) => p.name === name)
  if (!peer) throw new Error(`unknown peer ${name}: one of ${PEERS.map((p) => p.name).join(', ')}`)
  return peer
}
