/**
 * The replicated side state of a `RichDoc`: records stored after the token
 * sequence (each `REC` + JSON) and what they mean.
 *
 * Owns: the record shapes, their tolerant decoding (a malformed or foreign
 * record is ignored, the same way on every replica; so is one whose JSON nests
 * deeper than `MAX_RECORD_DEPTH`), and the registers built
 * from them: each token's initial node (type, attrs, marks) or character marks,
 * attribute and node-mark registers (last writer wins by Lamport order, ties by
 * agent), document attributes, and the list of formatting ops in Lamport order.
 *
 * Invariant: the state is a function of the *set* of records, not of their order.
 */
import type { Attrs, Mark, Schema } from 'prosemirror-model'
import { MAX_RICH_DEPTH, REC, type TokenInit } from './rich-tokens.ts'

/**
 * How deep a record's JSON may nest: attribute values up to `MAX_RICH_DEPTH` (what
 * `RichDoc.applySteps` accepts) inside the record's own few levels. Deeper ones are
 * ignored: ProseMirror compares and serializes attrs recursively.
 */
export const MAX_RECORD_DEPTH = MAX_RICH_DEPTH + 16

/** A token's id: the inner event `(agent, seq)` that inserted it. */
export type TokenId = readonly [agent: string, seq: number]
/** A run of token ids `(agent, seq .. seq+len)`. */
export type IdRun = readonly [agent: string, seq: number, len: number]

type MarkJSON = { type: string; attrs?: Attrs }
type NodeInit = { t: string; at: Attrs; m: MarkJSON[] }

/** Records, as stored (short keys: they are replicated for ever). */
export type RichRecord =
  /** Initial state of tokens `(a, s + o .. s + o + n)`: a node, or character marks. */
  | { k: 'i'; a: string; s: number; it: [o: number, n: number, v: NodeInit | MarkJSON[]][] }
  /** Add (`add` 1) or remove a mark over the tokens `ids`; `vv` is what the author had seen. */
  | {
      k: 'm'
      a: string
      s: number
      l: number
      add: 0 | 1
      mk: MarkJSON
      ids: IdRun[]
      vv: { [agent: string]: number }
    }
  /** Sets attribute `key` of the node opened by token `id`. */
  | { k: 'a'; a: string; l: number; id: TokenId; key: string; v: unknown }
  /** Adds or removes a mark of the node whose token is `id`. */
  | { k: 'n'; a: string; l: number; id: TokenId; add: 0 | 1; mk: MarkJSON }
  /** Sets a document attribute. */
  | { k: 'd'; a: string; l: number; key: string; v: unknown }

/** Encodes a record for the token stream (reserved code units escaped). */
export function encodeRecord(r: RichRecord): string {
  return (
    REC + JSON.stringify(r).replace(/[\uFDD0-\uFDEF]/g, (c) => '\\u' + c.charCodeAt(0).toString(16))
  )
}

export const idKey = (agent: string, seq: number): string => seq + '@' + agent

/** A formatting op, decoded against the schema. */
export interface MarkOp {
  readonly agent: string
  readonly seq: number
  readonly lamport: number
  readonly add: boolean
  readonly mark: Mark
  readonly ids: readonly IdRun[]
  readonly vv: { readonly [agent: string]: number }
}

/** The state the records describe. */
export class RichRecords {
  /** Highest Lamport timestamp seen. */
  clock = 0
  private readonly inits = new Map<string, { node?: NodeInit; marks?: readonly Mark[] }>()
  private readonly attrs = new Map<string, Map<string, { l: number; a: string; v: unknown }>>()
  private readonly nodeMarks = new Map<string, { l: number; a: string; add: boolean; mk: Mark }[]>()
  readonly docAttrs = new Map<string, { l: number; a: string; v: unknown }>()
  /** Formatting ops sorted by (Lamport, agent). */
  markOps: MarkOp[] = []
  private readonly seen = new Set<string>()
  /** Counts records other than token inits (formatting, attrs): any of them may change anything. */
  changes = 0
  /** Token ranges `(agent, seq .. end)` given an init, in the order they arrived. */
  readonly initLog: [agent: string, seq: number, end: number][] = []

  constructor(private readonly schema: Schema) {}

  /** Adds every record of `region` (the text after `SEP`) not seen before. */
  ingest(region: string): boolean {
    let changed = false
    let sortOps = false
    for (const raw of region.split(REC)) {
      if (raw.length === 0 || this.seen.has(raw)) continue
      this.seen.add(raw)
      if (jsonNestsDeeper(raw, MAX_RECORD_DEPTH)) continue
      let r: RichRecord
      try {
        r = JSON.parse(raw) as RichRecord
      } catch {
        continue
      }
      if (r === null || typeof r !== 'object' || typeof r.a !== 'string') continue
      changed = true
      if ('l' in r && Number.isSafeInteger(r.l)) this.clock = Math.max(this.clock, r.l)
      try {
        if (this.apply(r)) sortOps = true
      } catch {
        // Foreign or malformed record (unknown mark type, bad shape): ignored everywhere alike.
      }
    }
    if (sortOps)
      this.markOps.sort((x, y) =>
        x.lamport !== y.lamport
          ? x.lamport - y.lamport
          : x.agent < y.agent
            ? -1
            : x.agent > y.agent
              ? 1
              : 0,
      )
    return changed
  }

  private apply(r: RichRecord): boolean {
    const schema = this.schema
    if (r.k !== 'i') this.changes++
    switch (r.k) {
      case 'i':
        for (const [o, n, v] of r.it) {
          this.initLog.push([r.a, r.s + o, r.s + o + n])
          if (Array.isArray(v)) {
            const marks = toMarks(schema, v)
            for (let k = 0; k < n; k++) this.inits.set(idKey(r.a, r.s + o + k), { marks })
          } else this.inits.set(idKey(r.a, r.s + o), { node: v })
        }
        return false
      case 'm':
        this.markOps.push({
          agent: r.a,
          seq: r.s,
          lamport: r.l,
          add: r.add === 1,
          mark: schema.markFromJSON(r.mk),
          ids: r.ids,
          vv: r.vv,
        })
        return true
      case 'a': {
        const key = idKey(r.id[0], r.id[1])
        let m = this.attrs.get(key)
        if (m === undefined) this.attrs.set(key, (m = new Map()))
        const cur = m.get(r.key)
        if (cur === undefined || later(r.l, r.a, cur.l, cur.a))
          m.set(r.key, { l: r.l, a: r.a, v: r.v })
        return false
      }
      case 'n': {
        const key = idKey(r.id[0], r.id[1])
        let list = this.nodeMarks.get(key)
        if (list === undefined) this.nodeMarks.set(key, (list = []))
        list.push({ l: r.l, a: r.a, add: r.add === 1, mk: schema.markFromJSON(r.mk) })
        list.sort((x, y) => (later(x.l, x.a, y.l, y.a) ? 1 : -1))
        return false
      }
      case 'd': {
        const cur = this.docAttrs.get(r.key)
        if (cur === undefined || later(r.l, r.a, cur.l, cur.a))
          this.docAttrs.set(r.key, { l: r.l, a: r.a, v: r.v })
        return false
      }
    }
    return false
  }

  /** The node a token opens: type (null when unknown), attrs and marks after every register. */
  node(agent: string, seq: number): { type: string | null; attrs: Attrs; marks: readonly Mark[] } {
    const key = idKey(agent, seq)
    const init = this.inits.get(key)?.node
    if (init === undefined) return { type: null, attrs: {}, marks: [] }
    let attrs: Attrs = init.at
    const regs = this.attrs.get(key)
    if (regs !== undefined) {
      const copy: { [k: string]: unknown } = { ...init.at }
      for (const [k, r] of regs) copy[k] = r.v
      attrs = copy
    }
    let marks: readonly Mark[]
    try {
      marks = toMarks(this.schema, init.m)
    } catch {
      marks = []
    }
    for (const op of this.nodeMarks.get(key) ?? [])
      marks = op.add ? op.mk.addToSet(marks) : op.mk.removeFromSet(marks)
    return { type: init.t, attrs, marks }
  }

  /** The marks a character was inserted with. */
  initMarks(agent: string, seq: number): readonly Mark[] {
    return this.inits.get(idKey(agent, seq))?.marks ?? []
  }
}

function later(l1: number, a1: string, l2: number, a2: string): boolean {
  return l1 !== l2 ? l1 > l2 : a1 > a2
}

function toMarks(schema: Schema, json: MarkJSON[]): readonly Mark[] {
  let set: readonly Mark[] = []
  for (const j of json) set = schema.markFromJSON(j).addToSet(set)
  return set
}

/** Record items for a run of token inits: nodes one by one, characters grouped by marks. */
export function initItems(init: TokenInit[]): Extract<RichRecord, { k: 'i' }>['it'] {
  const it: Extract<RichRecord, { k: 'i' }>['it'] = []
  for (let o = 0; o < init.length; o++) {
    const x = init[o]
    if (x === null) continue
    if ('node' in x) {
      const n = x.node
      it.push([o, 1, { t: n.type, at: n.attrs as Attrs, m: n.marks.map((m) => m.toJSON()) }])
      continue
    }
    const json = x.marks.map((m) => m.toJSON())
    const last = it[it.length - 1]
    if (
      last !== undefined &&
      Array.isArray(last[2]) &&
      last[0] + last[1] === o &&
      init[o - 1] !== null &&
      init[o - 1] !== undefined &&
      'marks' in init[o - 1]! &&
      sameMarks((init[o - 1] as { marks: readonly Mark[] }).marks, x.marks)
    )
      last[1]++
    else it.push([o, 1, json])
  }
  return it
}

/** Whether JSON text nests arrays and objects deeper than `limit`. O(length), no parsing. */
export function jsonNestsDeeper(text: string, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c)
        i++ // a backslash escapes the next code unit
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
}

/** Whether a JSON-like value nests arrays and objects deeper than `limit`. Iterative. */
export function valueNestsDeeper(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (v === null || typeof v !== 'object') continue
    if (depth + 1 > limit) return true
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, depth + 1])
  }
  return false
}

/** Whether `text` is a run of complete records (so it can be read on its own). */
export function wholeRecords(text: string): boolean {
  if (text[0] !== REC) return false
  for (const piece of text.slice(1).split(REC)) {
    try {
      JSON.parse(piece)
    } catch {
      return false
    }
  }
  return true
}

export function sameMarks(a: readonly Mark[], b: readonly Mark[]): boolean {
  return a.length === b.length && a.every((m, i) => m.eq(b[i]))
}
