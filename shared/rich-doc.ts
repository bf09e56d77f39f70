/**
 * `RichDoc`: a ProseMirror document replicated by the text core (API.md, "Core:
 * RichDoc").
 *
 * Owns: an inner `TextDoc` whose content is the document's flat token sequence
 * (rich-tokens.ts), then `SEP`, then replicated records (rich-records.ts): each
 * token's type/attrs/marks, attribute and mark registers, formatting ops. Every
 * replica starts from the same genesis event (agent `~genesis`: the schema's
 * empty document), so the separator exists exactly once. Steps become token
 * inserts/deletes plus records, all in the inner doc's events, so versions,
 * updates, pending events, save/load and `link` work as for text.
 *
 * Invariants: `doc` is `project(tokens, records)`, a pure function of the
 * converged state, valid for the schema; `agents/seqs[i]` is the id of token i.
 * A mirror of the causal graph answers "was this character made after that
 * formatting op" (Peritext's concurrency test).
 * Complexity: every change re-projects the document, O(tokens); anchors of new
 * remote tokens cost O(runs) each.
 */
import { type Node, type Schema, Mark, type Attrs } from 'prosemirror-model'
import {
  AddMarkStep,
  AddNodeMarkStep,
  AttrStep,
  DocAttrStep,
  RemoveMarkStep,
  RemoveNodeMarkStep,
  ReplaceAroundStep,
  ReplaceStep,
  Step,
  Transform,
} from 'prosemirror-transform'
import { TextDoc, type VersionVector } from './text-doc.ts'
import { type CausalGraph, addEvents, createGraph, nextSeq, rawToLv } from './causal-graph.ts'
import { diff } from './graph-diff.ts'
import {
  KIND_SNAPSHOT,
  MAX_SNAPSHOT_BODY,
  decodeSnapshot,
  decodeUpdate,
  messageKind,
} from './encoding.ts'
import { Emitter } from './emitter.ts'
import {
  type Projection,
  type TokenInit,
  LEAF,
  RESERVED,
  SEP,
  fragmentTokens,
  project,
  sliceTokens,
} from './rich-tokens.ts'
import {
  type IdRun,
  type MarkOp,
  type RichRecord,
  RichRecords,
  encodeRecord,
} from './rich-records.ts'
import { tokenMarks } from './rich-marks.ts'
import { diffSteps } from './rich-diff.ts'

/** The agent of the genesis event every RichDoc of a schema shares. */
export const GENESIS_AGENT = '~genesis'
const genesisCache = new WeakMap<Schema, Uint8Array>()

export class RichDoc {
  readonly schema: Schema
  /** This replica's agent id. */
  readonly agent: string
  private readonly inner: TextDoc
  private readonly records: RichRecords
  private readonly mirror: CausalGraph = createGraph()
  private agents: string[] = []
  private seqs: number[] = []
  private sepPos = 0
  private metaDirty = false
  private proj: Projection
  private local = false
  private collected: [Uint8Array, unknown][] = []
  private readonly emitter = new Emitter<{
    update: [update: Uint8Array, origin: unknown]
    change: [steps: Step[], origin: unknown]
  }>()

  /** An empty document of `schema` (`topNodeType.createAndFill()`); a random agent when omitted. */
  constructor(schema: Schema, agent?: string) {
    if (agent === GENESIS_AGENT) throw new TypeError(`agent ${GENESIS_AGENT} is reserved`)
    this.schema = schema
    this.inner = new TextDoc(agent)
    this.agent = this.inner.agent
    this.records = new RichRecords(schema)
    this.inner.on('update', (u, origin) => this.onInnerUpdate(u, origin))
    this.inner.on('change', (ops) => this.onInnerChange(ops))
    this.inner.applyUpdate(genesis(schema))
    this.proj = this.computeProjection()
  }

  /** A document saved with `save()`. */
  static load(schema: Schema, bytes: Uint8Array, agent?: string): RichDoc {
    const doc = new RichDoc(schema, agent)
    doc.inner.applyUpdate(bytes)
    doc.collected = []
    doc.proj = doc.computeProjection()
    return doc
  }

  /** The current document: the deterministic projection of the converged tokens. */
  get doc(): Node {
    return this.proj.doc
  }

  /** Events held back because their parents are missing. */
  get pendingCount(): number {
    return this.inner.pendingCount
  }

  version(): VersionVector {
    return this.inner.version()
  }

  encodeUpdate(since?: VersionVector): Uint8Array {
    return this.inner.encodeUpdate(since)
  }

  save(): Uint8Array {
    return this.inner.save()
  }

  on(event: 'update', handler: (update: Uint8Array, origin: unknown) => void): () => void
  on(event: 'change', handler: (steps: Step[], origin: unknown) => void): () => void
  on(event: 'update' | 'change', handler: (...args: never[]) => void): () => void {
    if (event !== 'update' && event !== 'change')
      throw new TypeError(`unknown event ${String(event)}`)
    return this.emitter.on(event, handler as never)
  }

  /**
   * Applies local steps, each made against the document the previous one
   * produced. A step that does not apply throws RangeError and nothing changes.
   */
  applySteps(steps: readonly Step[]): void {
    let d = this.doc
    for (const step of steps) {
      if (!(step instanceof Step)) throw new TypeError('applySteps takes prosemirror Steps')
      const r = step.apply(d)
      if (r.failed !== null || r.doc === null)
        throw new RangeError(`step does not apply: ${r.failed}`)
      if (step instanceof ReplaceStep || step instanceof ReplaceAroundStep) {
        const at = [step.from, step.to]
        if (step instanceof ReplaceAroundStep) at.push(step.gapFrom, step.gapTo)
        for (const pos of at)
          if (splitsPair(d, pos)) throw new RangeError(`position ${pos} is inside a surrogate pair`)
        let bad = false
        step.slice.content.descendants((n) => {
          if (n.isText && RESERVED.test(n.text!)) bad = true
          return !bad
        })
        if (bad) throw new RangeError('text contains a reserved noncharacter (U+FDD0..U+FDEF)')
      }
      d = r.doc
    }
    if (steps.length === 0) return
    const before = this.doc
    const vv = this.inner.version()
    this.local = true
    try {
      if (!this.isIdentity()) {
        this.materialize()
        this.reconcile(before)
      }
      for (const step of steps) {
        const cur = this.proj.doc
        const r = step.apply(cur)
        if (r.doc === null) continue // the projection differed from the author's doc: skip
        this.applyStep(step, cur)
        this.proj = this.computeProjection()
        this.reconcile(r.doc)
      }
    } finally {
      this.local = false
    }
    const after = this.doc
    const changes = after.eq(d) ? steps.slice() : diffSteps(before, after)
    if (changes.length > 0) this.emitter.emit('change', changes, undefined)
    this.emitter.emit('update', this.inner.encodeUpdate(vv), undefined)
  }

  /**
   * Merges an update (idempotent, order-free, missing parents wait). Malformed
   * bytes throw and change nothing.
   */
  applyUpdate(update: Uint8Array, origin?: unknown): void {
    this.collected = []
    const before = this.doc
    this.inner.applyUpdate(update, origin)
    const got = this.collected
    this.collected = []
    if (got.length === 0) return
    this.proj = this.computeProjection()
    const steps = diffSteps(before, this.doc)
    if (steps.length > 0) this.emitter.emit('change', steps, origin)
    for (const [u, o] of got) this.emitter.emit('update', u, o)
  }

  /** Throws when the structures disagree (for tests): tokens ids, records, projection, inner doc. */
  checkInvariants(): void {
    this.inner.checkInvariants()
    this.doc.check()
    const s = this.inner.toString()
    if (s[this.sepPos] !== SEP) throw new Error(`separator not at ${this.sepPos}`)
    for (let i = 0; i < this.sepPos; i++) {
      const id = this.idAt(s, i)
      if (id.agent !== this.agents[i] || id.seq !== this.seqs[i])
        throw new Error(
          `token ${i} id ${this.agents[i]}:${this.seqs[i]}, anchor says ${id.agent}:${id.seq}`,
        )
    }
    const fresh = RichDoc.load(this.schema, this.save(), '~check')
    if (!fresh.doc.eq(this.doc))
      throw new Error('document differs from a reload of the same events')
  }

  // ---- local steps -> token ops and records ------------------------------

  private applyStep(step: Step, cur: Node): void {
    if (step instanceof ReplaceStep) {
      const rf = this.raw(step.from)
      const rt = this.raw(step.to)
      if (rt > rf) this.inner.delete(rf, rt - rf)
      const s = step.slice
      this.insertTokens(rf, sliceTokens(s.content, s.openStart, s.openEnd))
    } else if (step instanceof ReplaceAroundStep) {
      const s = step.slice
      const tok = sliceTokens(s.content, s.openStart, s.openEnd)
      const at = step.insert
      const rFrom = this.raw(step.from)
      const rGapFrom = this.raw(step.gapFrom)
      const rGapTo = this.raw(step.gapTo)
      const rTo = this.raw(step.to)
      // New edge tokens go outside the ones they replace, so text typed concurrently
      // at the start or end of the wrapped content stays inside it.
      const after = { text: tok.text.slice(at), init: tok.init.slice(at) }
      this.insertTokens(rTo, after)
      if (rTo > rGapTo) this.inner.delete(rGapTo, rTo - rGapTo)
      const before = { text: tok.text.slice(0, at), init: tok.init.slice(0, at) }
      this.insertTokens(rFrom, before)
      const n = before.text.length
      if (rGapFrom > rFrom) this.inner.delete(rFrom + n, rGapFrom - rFrom)
    } else if (step instanceof AddMarkStep || step instanceof RemoveMarkStep) {
      const ids = this.idRuns(this.raw(step.from), this.raw(step.to))
      const vv = { ...this.inner.version() }
      this.record({
        k: 'm',
        a: this.agent,
        s: vv[this.agent] ?? 0,
        l: this.records.clock + 1,
        add: step instanceof AddMarkStep ? 1 : 0,
        mk: step.mark.toJSON(),
        ids,
        vv,
      })
    } else if (step instanceof AttrStep) {
      const r = this.proj.rawOf[step.pos]
      if (r < 0) return // a node the projection made up has no token to hold attributes
      const id = [this.agents[r], this.seqs[r]] as const
      this.record({
        k: 'a',
        a: this.agent,
        l: this.records.clock + 1,
        id,
        key: step.attr,
        v: step.value,
      })
    } else if (step instanceof AddNodeMarkStep || step instanceof RemoveNodeMarkStep) {
      const r = this.proj.rawOf[step.pos]
      if (r < 0) return
      const id = [this.agents[r], this.seqs[r]] as const
      const add = step instanceof AddNodeMarkStep ? 1 : 0
      this.record({
        k: 'n',
        a: this.agent,
        l: this.records.clock + 1,
        id,
        add,
        mk: step.mark.toJSON(),
      })
    } else if (step instanceof DocAttrStep) {
      this.record({
        k: 'd',
        a: this.agent,
        l: this.records.clock + 1,
        key: step.attr,
        v: step.value,
      })
    } else {
      // Any other step type: apply it as the replace that turns the document into its result.
      const next = step.apply(cur).doc!
      for (const s of diffSteps(cur, next)) this.applyStep(s, this.proj.doc)
    }
  }

  /** Whether the raw tokens are exactly the projected document's tokens. */
  private isIdentity(): boolean {
    const rawOf = this.proj.rawOf
    if (rawOf.length !== this.sepPos) return false
    for (let p = 0; p < rawOf.length; p++) if (rawOf[p] !== p) return false
    return true
  }

  /**
   * Makes the raw tokens those of the projected document (local events): tokens
   * the projection made up are inserted, tokens it ignored are deleted, so the
   * local steps that follow map one to one. Done before local edits only; two
   * replicas doing it concurrently may both add a token, which the projection
   * again resolves alike everywhere.
   */
  private materialize(): void {
    const rawOf = this.proj.rawOf
    const tok = fragmentTokens(this.proj.doc.content)
    let r = this.sepPos - 1
    for (let p = rawOf.length - 1; p >= 0; p--) {
      const at = rawOf[p]
      if (at >= 0) {
        if (r > at) this.inner.delete(at + 1, r - at)
        r = at - 1
      } else this.insertTokens(r + 1, { text: tok.text[p], init: [tok.init[p]] })
    }
    if (r >= 0) this.inner.delete(0, r + 1)
    this.proj = this.computeProjection()
  }

  /**
   * When the projection has the same tokens as `want` but other marks or attrs
   * (a deletion let a concurrent op's formatting reach new text), records the
   * difference as local ops, so a local edit shows exactly what its steps made.
   */
  private reconcile(want: Node): void {
    const got = this.proj.doc
    if (got.eq(want) || got.content.size !== want.content.size) return
    const tr = new Transform(got)
    let same = true
    want.descendants((n, pos) => {
      const end = pos + n.nodeSize
      const g = got.nodeAt(pos)
      const text = n.isText ? got.textBetween(pos, end) : null
      if (g === null || (n.isText ? text !== n.text : g.type !== n.type)) {
        same = false
        return false
      }
      if (!n.isText) {
        for (const key of Object.keys(n.attrs))
          if (n.attrs[key] !== g.attrs[key]) tr.setNodeAttribute(pos, key, n.attrs[key])
      }
      if (n.isInline) {
        let differs = false
        got.nodesBetween(pos, end, (x) => {
          if (x.isInline && !Mark.sameSet(x.marks, n.marks)) differs = true
        })
        if (differs) {
          tr.removeMark(pos, end, null)
          for (const m of n.marks) tr.addMark(pos, end, m)
        }
      }
      return true
    })
    if (!same) return
    for (const step of tr.steps) {
      this.applyStep(step, this.proj.doc)
      this.proj = this.computeProjection()
    }
  }

  /** The raw token index where ProseMirror position `pos` of the projection is. */
  private raw(pos: number): number {
    const rawOf = this.proj.rawOf
    for (let p = pos; p < rawOf.length; p++) if (rawOf[p] >= 0) return rawOf[p]
    return this.sepPos
  }

  private idRuns(from: number, to: number): IdRun[] {
    const runs: [string, number, number][] = []
    for (let i = from; i < to; i++) {
      const last = runs[runs.length - 1]
      if (last !== undefined && last[0] === this.agents[i] && last[1] + last[2] === this.seqs[i])
        last[2]++
      else runs.push([this.agents[i], this.seqs[i], 1])
    }
    return runs
  }

  private insertTokens(at: number, tok: { text: string; init: TokenInit[] }): void {
    if (tok.text.length === 0) return
    const s = this.inner.version()[this.agent] ?? 0
    this.inner.insert(at, tok.text)
    const it = initItems(tok.init)
    if (it.length > 0) this.record({ k: 'i', a: this.agent, s, it })
  }

  private record(r: RichRecord): void {
    this.inner.insert(this.inner.length, encodeRecord(r))
  }

  // ---- inner document -> tokens, records, projection ---------------------

  private onInnerUpdate(u: Uint8Array, origin: unknown): void {
    const dec =
      messageKind(u) === KIND_SNAPSHOT
        ? decodeUpdate(decodeSnapshot(u).history, MAX_SNAPSHOT_BODY)
        : decodeUpdate(u)
    const cg = this.mirror
    for (const sp of dec.spans) {
      const have = nextSeq(cg, sp.agent)
      if (sp.seq + sp.len <= have) continue
      const skip = Math.max(0, have - sp.seq)
      const parents =
        skip > 0
          ? [rawToLv(cg, sp.agent, have - 1)]
          : sp.parents.map(([a, s]) => rawToLv(cg, a, s)).sort((x, y) => x - y)
      if (parents.some((p) => p < 0)) throw new Error('causal mirror lacks a parent')
      addEvents(cg, sp.agent, sp.seq + skip, sp.len - skip, parents)
    }
    if (!this.local) this.collected.push([u, origin])
  }

  private onInnerChange(
    ops: ({ index: number; insert: string } | { index: number; delete: number })[],
  ): void {
    let fresh = false
    for (const op of ops) {
      if ('insert' in op) {
        if (this.sepPos === 0 && this.agents.length === 0 && op.insert.includes(SEP)) {
          // The genesis (or a whole snapshot): find everything from scratch.
          this.metaDirty = true
          fresh = true
          continue
        }
        if (op.index <= this.sepPos) {
          const n = op.insert.length
          this.agents.splice(op.index, 0, ...new Array<string>(n).fill(''))
          this.seqs.splice(op.index, 0, ...new Array<number>(n).fill(-1))
          this.sepPos += n
        } else this.metaDirty = true
      } else {
        if (op.index + op.delete <= this.sepPos) {
          this.agents.splice(op.index, op.delete)
          this.seqs.splice(op.index, op.delete)
          this.sepPos -= op.delete
        } else {
          // Only a foreign replica deletes records or the separator: start over.
          fresh = true
          this.metaDirty = true
        }
      }
    }
    const text = this.inner.toString()
    if (fresh) {
      this.sepPos = Math.max(0, text.indexOf(SEP))
      this.agents = new Array<string>(this.sepPos).fill('')
      this.seqs = new Array<number>(this.sepPos).fill(-1)
    }
    for (let i = 0; i < this.sepPos; i++) {
      if (this.seqs[i] >= 0) continue
      const id = this.idAt(text, i)
      this.agents[i] = id.agent
      this.seqs[i] = id.seq
    }
    if (this.metaDirty) {
      this.metaDirty = false
      this.records.ingest(text.slice(this.sepPos + 1))
    }
    this.lastText = text
  }

  private lastText = ''

  /** The id of token i (`text` is the inner content); a low surrogate is its high half's next event. */
  private idAt(text: string, i: number): { agent: string; seq: number } {
    const c = text.charCodeAt(i)
    const prev = text.charCodeAt(i - 1)
    if (c >= 0xdc00 && c < 0xe000 && prev >= 0xd800 && prev < 0xdc00) {
      const id = this.inner.anchorAt(i - 1)!
      return { agent: id.agent, seq: id.seq + 1 }
    }
    return this.inner.anchorAt(i)!
  }

  private computeProjection(): Projection {
    const schema = this.schema
    const tokens = this.lastText.slice(0, this.sepPos)
    const ids = { tokens, agents: this.agents, seqs: this.seqs }
    const memo = new Map<MarkOp, Map<string, number>>()
    const base = (i: number) =>
      tokens[i] === LEAF
        ? this.records.node(this.agents[i], this.seqs[i]).marks
        : this.records.initMarks(this.agents[i], this.seqs[i])
    const marks = tokenMarks(ids, this.records, base, (i, op) => this.madeAfter(i, op, memo))
    const docAttrs: { [k: string]: unknown } = {}
    for (const [k, r] of this.records.docAttrs) docAttrs[k] = r.v
    return project(
      schema,
      tokens,
      {
        node: (i) => {
          const n = this.records.node(this.agents[i], this.seqs[i])
          const type =
            n.type !== null && Object.hasOwn(schema.nodes, n.type) ? schema.nodes[n.type] : null
          return { type, attrs: n.attrs, marks: tokens[i] === LEAF ? marks[i] : n.marks }
        },
        marks: (i) => marks[i] as readonly Mark[],
      },
      docAttrs as Attrs,
    )
  }

  /**
   * Whether token i was inserted by an event that had `op` in its history. One
   * agent's events form a chain, so per (op, agent) this is a seq threshold,
   * found by binary search over the agent's events the op had not seen.
   */
  private madeAfter(i: number, op: MarkOp, memo: Map<MarkOp, Map<string, number>>): boolean {
    let m = memo.get(op)
    if (m === undefined) memo.set(op, (m = new Map()))
    const agent = this.agents[i]
    let threshold = m.get(agent)
    if (threshold === undefined) {
      const cg = this.mirror
      const lvOp = rawToLv(cg, op.agent, op.seq)
      let lo = Object.hasOwn(op.vv, agent) ? op.vv[agent] : 0
      let hi = nextSeq(cg, agent)
      if (lvOp >= 0) {
        while (lo < hi) {
          const mid = (lo + hi) >>> 1
          const lv = rawToLv(cg, agent, mid)
          if (diff(cg, [lvOp], [lv]).aOnly.length === 0) hi = mid
          else lo = mid + 1
        }
      } else lo = Infinity
      threshold = lo
      m.set(agent, threshold)
    }
    return this.seqs[i] >= threshold
  }
}

/** The shared first event: the schema's empty document, its separator and its records. */
function genesis(schema: Schema): Uint8Array {
  const cached = genesisCache.get(schema)
  if (cached !== undefined) return cached
  const g = new TextDoc(GENESIS_AGENT)
  const tok = fragmentTokens(schema.topNodeType.createAndFill()!.content)
  const rec: RichRecord = { k: 'i', a: GENESIS_AGENT, s: 0, it: initItems(tok.init) }
  g.insert(0, tok.text + SEP + encodeRecord(rec))
  const bytes = g.save()
  genesisCache.set(schema, bytes)
  return bytes
}

/** Record items for a run of token inits: nodes one by one, characters grouped by marks. */
function initItems(init: TokenInit[]): Extract<RichRecord, { k: 'i' }>['it'] {
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

/** Whether `pos` falls between the two halves of a surrogate pair in `doc`'s text. */
function splitsPair(doc: Node, pos: number): boolean {
  const $pos = doc.resolve(pos)
  const before = $pos.nodeBefore
  const after = $pos.nodeAfter
  if (before === null || after === null || !before.isText || !after.isText) return false
  const hi = before.text!.charCodeAt(before.text!.length - 1)
  const lo = after.text!.charCodeAt(0)
  return hi >= 0xd800 && hi < 0xdc00 && lo >= 0xdc00 && lo < 0xe000
}

function sameMarks(a: readonly Mark[], b: readonly Mark[]): boolean {
  return a.length === b.length && a.every((m, i) => m.eq(b[i]))
}
