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
 * converged state, valid for the schema; `ids` holds the id of token i.
 * A mirror of the causal graph answers "was this character made after that
 * formatting op" (Peritext's concurrency test).
 * Before a local edit on tokens the projection does not match one to one, the
 * projection is materialized (made-up tokens inserted, ignored ones deleted).
 *
 * Complexity: fast paths keep `doc` without re-projecting when the result is
 * provably the same (checkInvariants compares with a full projection): a local
 * replace on exact tokens (deletes only while no formatting op exists), and a
 * remote non-concurrent keystroke (insert of characters; delete of tokens while
 * no formatting op exists). Everything else re-projects, O(tokens). Ids of new
 * remote tokens come from the core's anchors, O(runs) each.
 */
import { type Node, type Schema, Mark, type Attrs, type Fragment, Slice } from 'prosemirror-model'
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
  Mapping,
} from 'prosemirror-transform'
import { TextDoc, type VersionVector } from './text-doc.ts'
import { CausalMirror } from './rich-causal.ts'
import { Emitter } from './emitter.ts'
import {
  type TokenInit,
  LEAF,
  MAX_RICH_DEPTH,
  REC,
  RichDepthError,
  RESERVED,
  SEP,
  fragmentDepth,
  fragmentTokens,
  project,
  sliceTokens,
  splitsPair,
} from './rich-tokens.ts'
import {
  type IdRun,
  type MarkOp,
  type RichRecord,
  RichRecords,
  encodeRecord,
  initItems,
  sameMarks,
  valueNestsDeeper,
  wholeRecords,
} from './rich-records.ts'
import { tokenMarks } from './rich-marks.ts'
import { TokenIds } from './rich-ids.ts'
import { diffSteps } from './rich-diff.ts'
import { tokenSlice } from './rich-slice.ts'
import { mergeMapping, projectionMap } from './rich-mapping.ts'

/** The agent of the genesis event every RichDoc of a schema shares. */
export const GENESIS_AGENT = '~genesis'
const genesisCache = new WeakMap<Schema, Uint8Array>()

export class RichDoc {
  readonly schema: Schema
  /** This replica's agent id. */
  readonly agent: string
  private readonly inner: TextDoc
  private readonly records: RichRecords
  private readonly mirror = new CausalMirror()
  private readonly ids = new TokenIds()
  private sepPos = 0
  /** The projected document; `rawOf` null when the raw tokens are exactly its tokens. */
  private proj: { doc: Node; rawOf: Int32Array | null }
  private local = false
  private collected: [Uint8Array, unknown][] = []
  private readonly emitter = new Emitter<{
    update: [update: Uint8Array, origin: unknown]
    change: [steps: Step[], origin: unknown, mapping: Mapping]
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
    this.checkFailure()
    this.proj = this.computeProjection()
  }

  /** A document saved with `save()`. */
  static load(schema: Schema, bytes: Uint8Array, agent?: string): RichDoc {
    const doc = new RichDoc(schema, agent)
    doc.inner.applyUpdate(bytes)
    doc.checkFailure()
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
  /**
   * 'change': how `doc` changed, as steps from the old doc to the new one, and a mapping
   * of positions that follows each token (after a concurrent merge the steps may replace
   * a whole range, while the mapping keeps surviving content's positions exact: use it
   * for selections, cursors and undo history).
   */
  on(
    event: 'change',
    handler: (steps: Step[], origin: unknown, mapping: Mapping) => void,
  ): () => void
  on(event: 'update' | 'change', handler: (...args: never[]) => void): () => void {
    if (event !== 'update' && event !== 'change')
      throw new TypeError(`unknown event ${String(event)}`)
    return this.emitter.on(event, handler as never)
  }

  /**
   * Applies local steps, each made against the document the previous one
   * produced. A step that does not apply throws RangeError and nothing changes;
   * one that would nest nodes, or attribute values, deeper than `MAX_RICH_DEPTH`
   * throws `RichDepthError` (a RangeError) and nothing changes.
   */
  applySteps(steps: readonly Step[]): void {
    let d = this.doc
    for (const step of steps) {
      if (!(step instanceof Step)) throw new TypeError('applySteps takes prosemirror Steps')
      // Before apply: ProseMirror would walk an over-deep slice recursively.
      if (sliceTooDeep(d, step)) throw new RichDepthError()
      if (attrsTooDeep(step)) throw new RichDepthError('attribute values')
      const r = step.apply(d)
      if (r.failed !== null || r.doc === null)
        throw new RangeError(`step does not apply: ${r.failed}`)
      if (resultTooDeep(d, step, r.doc)) throw new RichDepthError()
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
        // A replace is a splice of tokens: on exact tokens it projects to its own result,
        // unless a deletion lets concurrent formatting reach other text.
        const splice = step instanceof ReplaceStep || step instanceof ReplaceAroundStep
        const pureInsert = step instanceof ReplaceStep && step.from === step.to
        // (The depth checks are O(1) for typing; they matter only if `cur` is not the author's doc.)
        const fast =
          this.isIdentity() &&
          splice &&
          (pureInsert || this.records.markOps.length === 0) &&
          !sliceTooDeep(cur, step) &&
          !resultTooDeep(cur, step, r.doc)
        this.applyStep(step, cur)
        if (fast) this.proj = { doc: r.doc, rawOf: null }
        else {
          this.proj = this.computeProjection()
          this.reconcile(r.doc)
        }
      }
    } finally {
      this.local = false
    }
    const after = this.doc
    const changes = after.eq(d) ? steps.slice() : diffSteps(before, after)
    if (changes.length > 0)
      this.emitter.emit('change', changes, undefined, new Mapping(changes.map((c) => c.getMap())))
    this.emitter.emit('update', this.inner.encodeUpdate(vv), undefined)
  }

  /**
   * Merges an update (idempotent, order-free, missing parents wait). Malformed
   * bytes throw and change nothing.
   */
  applyUpdate(update: Uint8Array, origin?: unknown): void {
    this.collected = []
    const before = this.doc
    const rawBefore = this.proj.rawOf
    const sepBefore = this.sepPos
    const mark = this.mirror.mark()
    const identity = this.isIdentity()
    const changes = this.records.changes
    const inits = this.records.initLog.length
    this.captured = []
    this.captureLost = false
    try {
      this.inner.applyUpdate(update, origin)
    } finally {
      this.lastCaptured = this.captured
      this.captured = null
    }
    this.checkFailure()
    const got = this.collected
    this.collected = []
    if (got.length === 0) return
    const fast =
      identity && this.records.changes === changes ? this.remoteFast(before, mark, inits) : null
    let steps: Step[]
    let mapping: Mapping | null = null
    if (fast !== null) {
      this.proj = { doc: fast.doc, rawOf: null }
      steps = [fast.step]
    } else {
      this.proj = this.computeProjection()
      steps = diffSteps(before, this.doc)
      if (steps.length > 0 && !this.captureLost && this.emitter.has('change')) {
        const from = rawBefore === null ? null : projectionMap(rawBefore, sepBefore)
        const rawAfter = this.proj.rawOf
        const to = rawAfter === null ? null : projectionMap(rawAfter, this.sepPos)
        mapping = mergeMapping(from, this.lastCaptured, to)
      }
    }
    if (steps.length > 0)
      this.emitter.emit(
        'change',
        steps,
        origin,
        mapping ?? new Mapping(steps.map((x) => x.getMap())),
      )
    for (const [u, o] of got) this.emitter.emit('update', u, o)
  }

  /**
   * The fast path for a remote keystroke: events made on exactly what we had
   * (no concurrency), one insert of plain characters into a textblock or one
   * delete of any tokens (Backspace joining blocks too), on exact tokens. Returns the step and document the full
   * projection would give, or null to take the full projection.
   */
  private remoteFast(
    before: Node,
    mark: { heads: number[]; next: number },
    inits: number,
  ): { doc: Node; step: Step } | null {
    const ops = this.lastCaptured
    if (ops.length !== 1 || !this.mirror.descendAll(mark)) return null
    const op = ops[0]
    if (op.index > before.content.size) return null
    let step: Step
    if ('insert' in op) {
      const n = op.insert.length
      const agent = this.ids.agent(op.index)
      const seq = this.ids.seq(op.index)
      for (let k = 1; k < n; k++)
        if (this.ids.agent(op.index + k) !== agent || this.ids.seq(op.index + k) !== seq + k)
          return null
      const log = this.records.initLog
      for (let k = inits; k < log.length; k++)
        if (log[k][0] !== agent || log[k][1] < seq || log[k][2] > seq + n) return null
      // Characters typed, or structure (Enter is CLOSE, OPEN): the slice those tokens make.
      const slice = tokenSlice(this.schema, before.resolve(op.index), op.insert, {
        node: (k) => this.records.node(agent, seq + k),
        marks: (k) => this.records.initMarks(agent, seq + k),
      })
      if (slice === null) return null
      step = new ReplaceStep(op.index, op.index, slice)
    } else {
      if (this.records.markOps.length > 0 || this.records.initLog.length !== inits) return null
      const end = op.index + op.delete
      if (end > before.content.size) return null
      step = new ReplaceStep(op.index, end, Slice.empty)
    }
    // A replace that fits is a splice of exactly these tokens (the author made it on this doc).
    const r = step.apply(before)
    if (r.doc === null) return null
    const delta = 'insert' in op ? op.insert.length : -op.delete
    if (r.doc.content.size !== before.content.size + delta) return null
    return { doc: r.doc, step }
  }

  /**
   * The id of the token at position `pos` of `doc` (a cursor there sits before it), which
   * follows that token through concurrent edits; null at the end of the content. A position
   * on a node the projection made up anchors to the next real token. RangeError outside
   * `[0, doc.content.size]`. O(1) when the projection is exact, else O(tokens).
   */
  anchorAt(pos: number): { agent: string; seq: number } | null {
    const size = this.doc.content.size
    if (!Number.isInteger(pos) || pos < 0 || pos > size)
      throw new RangeError(`anchor position ${pos} is outside [0, ${size}]`)
    const r = this.raw(pos)
    if (r >= this.sepPos) return null
    return { agent: this.ids.agent(r), seq: this.ids.seq(r) }
  }

  /**
   * Where an anchor's token is now in `doc` (where it was, if deleted: the same on every
   * replica holding the same events); the end of the content for null; null when this
   * replica does not hold that token's event (or it is not a token). O(runs) in the core.
   */
  positionOf(anchor: { readonly agent: string; readonly seq: number } | null): number | null {
    const size = this.doc.content.size
    if (anchor === null) return size
    const at = this.inner.positionOf(anchor)
    if (at === null) return null
    // The separator and the records after it are not tokens of the document.
    if (at > this.sepPos) return null
    if (at === this.sepPos) {
      const sep = this.inner.anchorAt(at)!
      if (sep.agent === anchor.agent && sep.seq === anchor.seq) return null
    }
    const rawOf = this.proj.rawOf
    if (rawOf === null) return Math.min(at, size)
    for (let p = 0; p < rawOf.length; p++) if (rawOf[p] >= at) return p
    return size
  }

  /** Throws when the structures disagree (for tests): tokens ids, records, projection, inner doc. */
  checkInvariants(): void {
    this.inner.checkInvariants()
    this.doc.check()
    const s = this.inner.toString()
    if (s[this.sepPos] !== SEP) throw new Error(`separator not at ${this.sepPos}`)
    for (let i = 0; i < this.sepPos; i++) {
      const id = this.idAt(s, i, i)
      if (id.agent !== this.ids.agent(i) || id.seq !== this.ids.seq(i))
        throw new Error(
          `token ${i} id ${this.ids.agent(i)}:${this.ids.seq(i)}, anchor says ${id.agent}:${id.seq}`,
        )
    }
    const full = this.computeProjection()
    if (!full.doc.eq(this.doc))
      throw new Error(`fast path gave ${this.doc}, projection ${full.doc}`)
    const fresh = RichDoc.load(this.schema, this.save(), '~check')
    if (!fresh.doc.eq(this.doc))
      throw new Error('document differs from a reload of the same events')
  }

  // ---- local steps -> token ops and records ------------------------------

  private applyStep(step: Step, cur: Node): void {
    if (step instanceof ReplaceStep) {
      const rf = this.raw(step.from)
      const rt = this.raw(step.to)
      if (rt > rf) this.deleteTokens(rf, rt - rf)
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
      if (rTo > rGapTo) this.deleteTokens(rGapTo, rTo - rGapTo)
      const before = { text: tok.text.slice(0, at), init: tok.init.slice(0, at) }
      this.insertTokens(rFrom, before)
      const n = before.text.length
      if (rGapFrom > rFrom) this.deleteTokens(rFrom + n, rGapFrom - rFrom)
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
      const r = this.rawAt(step.pos)
      if (r < 0) return // a node the projection made up has no token to hold attributes
      const id = [this.ids.agent(r), this.ids.seq(r)] as const
      this.record({
        k: 'a',
        a: this.agent,
        l: this.records.clock + 1,
        id,
        key: step.attr,
        v: step.value,
      })
    } else if (step instanceof AddNodeMarkStep || step instanceof RemoveNodeMarkStep) {
      const r = this.rawAt(step.pos)
      if (r < 0) return
      const id = [this.ids.agent(r), this.ids.seq(r)] as const
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
    return this.proj.rawOf === null
  }

  /** The raw token behind position `pos` of the projection, -1 for one it made up. */
  private rawAt(pos: number): number {
    const rawOf = this.proj.rawOf
    return rawOf === null ? pos : rawOf[pos]
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
    if (rawOf === null) return
    const tok = fragmentTokens(this.proj.doc.content)
    let r = this.sepPos - 1
    for (let p = rawOf.length - 1; p >= 0; p--) {
      const at = rawOf[p]
      if (at >= 0) {
        if (r > at) this.deleteTokens(at + 1, r - at)
        r = at - 1
      } else this.insertTokens(r + 1, { text: tok.text[p], init: [tok.init[p]] })
    }
    if (r >= 0) this.deleteTokens(0, r + 1)
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
    if (rawOf === null) return pos
    for (let p = pos; p < rawOf.length; p++) if (rawOf[p] >= 0) return rawOf[p]
    return this.sepPos
  }

  private idRuns(from: number, to: number): IdRun[] {
    const runs: [string, number, number][] = []
    for (let i = from; i < to; i++) {
      const last = runs[runs.length - 1]
      if (
        last !== undefined &&
        last[0] === this.ids.agent(i) &&
        last[1] + last[2] === this.ids.seq(i)
      )
        last[2]++
      else runs.push([this.ids.agent(i), this.ids.seq(i), 1])
    }
    return runs
  }

  private insertTokens(at: number, tok: { text: string; init: TokenInit[] }): void {
    if (tok.text.length === 0) return
    const s = this.inner.version()[this.agent] ?? 0
    this.expect = { kind: 'tokens', seq: s }
    try {
      this.inner.insert(at, tok.text)
    } finally {
      this.expect = null
    }
    this.checkFailure()
    const it = initItems(tok.init)
    if (it.length > 0) this.record({ k: 'i', a: this.agent, s, it })
  }

  private record(r: RichRecord): void {
    this.expect = { kind: 'record', seq: 0 }
    try {
      this.inner.insert(this.inner.length, encodeRecord(r))
    } finally {
      this.expect = null
    }
    this.checkFailure()
  }

  private deleteTokens(at: number, len: number): void {
    this.inner.delete(at, len)
    this.checkFailure()
  }

  // ---- inner document -> tokens, records, projection ---------------------

  private onInnerUpdate(u: Uint8Array, origin: unknown): void {
    try {
      this.mirror.add(u)
    } catch (e) {
      this.failure ??= e instanceof Error ? e : new Error(String(e))
    }
    if (!this.local) this.collected.push([u, origin])
  }

  private onInnerChange(
    ops: ({ index: number; insert: string } | { index: number; delete: number })[],
  ): void {
    try {
      this.trackChange(ops)
    } catch (e) {
      // The emitter would only report it asynchronously: keep it for the caller.
      this.failure ??= e instanceof Error ? e : new Error(String(e))
    }
  }

  /** Rethrows an error raised inside an inner-document listener. */
  private checkFailure(): void {
    const f = this.failure
    if (f === null) return
    this.failure = null
    throw f
  }

  private failure: Error | null = null
  /** Set while this replica inserts tokens or a record itself: their ids are known. */
  private expect: { kind: 'tokens' | 'record'; seq: number } | null = null

  private trackChange(
    ops: ({ index: number; insert: string } | { index: number; delete: number })[],
  ): void {
    let fresh = false
    let meta = false
    const unknown: [start: number, len: number, text: string | null][] = []
    let rescan = false
    for (const op of ops) {
      if ('insert' in op) {
        const n = op.insert.length
        if (this.sepPos === 0 && this.ids.length === 0 && op.insert.includes(SEP)) {
          fresh = true // the genesis (or a whole snapshot): find everything from scratch
          continue
        }
        if (op.index > this.sepPos) {
          if (this.expect?.kind === 'record' || wholeRecords(op.insert))
            this.records.ingest(op.insert)
          else meta = true
          continue
        }
        const i = op.index
        this.captured?.push(op)
        this.tokenText = null
        this.sepPos += n
        if (this.expect?.kind === 'tokens') {
          this.ids.insert(i, n, this.agent, this.expect.seq)
        } else {
          for (const r of unknown) if (r[0] >= i) r[0] += n
          unknown.push([i, n, op.insert])
          this.ids.insert(i, n, null, 0)
        }
      } else {
        const i = op.index
        const n = op.delete
        if (i + n > this.sepPos) {
          fresh = true // only a foreign replica deletes records or the separator: start over
          continue
        }
        this.captured?.push(op)
        this.tokenText = null
        this.ids.delete(i, n)
        this.sepPos -= n
        if (unknown.length > 0) rescan = true
      }
    }
    if (fresh) {
      this.captureLost = true
      const text = this.inner.toString()
      this.sepPos = Math.max(0, text.indexOf(SEP))
      this.tokenText = null
      this.ids.clear(this.sepPos)
      unknown.length = 0
      unknown.push([0, this.sepPos, null])
      meta = true
    }
    if (rescan || unknown.length > 1) {
      unknown.length = 0
      for (let i = 0; i < this.sepPos; i++) if (this.ids.seq(i) < 0) unknown.push([i, 1, null])
    }
    for (const [start, len, text] of unknown) {
      // Inserted text is well-formed, so a pair's halves are both in `text` when it is known.
      const t = text ?? this.tokens()
      const base = text === null ? 0 : start
      for (let i = start; i < start + len; i++) {
        const id = this.idAt(t, i - base, i)
        this.ids.set(i, id.agent, id.seq)
      }
    }
    if (meta) this.records.ingest(this.inner.toString().slice(this.sepPos + 1))
  }

  /** Document-region ops of the inner change being tracked, when a remote merge wants them. */
  private captured:
    ({ index: number; insert: string } | { index: number; delete: number })[] | null = null

  private lastCaptured: ({ index: number; insert: string } | { index: number; delete: number })[] =
    []

  /** Set when a merge restarted token tracking from scratch: its ops are not all captured. */
  private captureLost = false

  /** The document's tokens (the inner content before `SEP`), read when a full projection needs them. */
  private tokens(): string {
    return (this.tokenText ??= this.inner.toString().slice(0, this.sepPos))
  }

  private tokenText: string | null = null

  /** The id of token i (`text[k]` is that token); a low surrogate is its high half's next event. */
  private idAt(text: string, k: number, i: number): { agent: string; seq: number } {
    const c = text.charCodeAt(k)
    const prev = k > 0 ? text.charCodeAt(k - 1) : 0
    if (c >= 0xdc00 && c < 0xe000 && prev >= 0xd800 && prev < 0xdc00) {
      const id = this.inner.anchorAt(i - 1)!
      return { agent: id.agent, seq: id.seq + 1 }
    }
    return this.inner.anchorAt(i)!
  }

  private computeProjection(): { doc: Node; rawOf: Int32Array | null } {
    const schema = this.schema
    const tokens = this.tokens()
    const ids = {
      tokens,
      agent: (i: number) => this.ids.agent(i),
      seq: (i: number) => this.ids.seq(i),
    }
    const memo = new Map<MarkOp, Map<string, number>>()
    const base = (i: number) =>
      tokens[i] === LEAF
        ? this.records.node(this.ids.agent(i), this.ids.seq(i)).marks
        : this.records.initMarks(this.ids.agent(i), this.ids.seq(i))
    const marks = tokenMarks(ids, this.records, base, (i, op) => this.madeAfter(i, op, memo))
    const docAttrs: { [k: string]: unknown } = {}
    for (const [k, r] of this.records.docAttrs) docAttrs[k] = r.v
    const proj = project(
      schema,
      tokens,
      {
        node: (i) => {
          const n = this.records.node(this.ids.agent(i), this.ids.seq(i))
          const type =
            n.type !== null && Object.hasOwn(schema.nodes, n.type) ? schema.nodes[n.type] : null
          return { type, attrs: n.attrs, marks: tokens[i] === LEAF ? marks[i] : n.marks }
        },
        marks: (i) => marks[i] as readonly Mark[],
      },
      docAttrs as Attrs,
    )
    const rawOf = proj.rawOf
    let identity = rawOf.length === this.sepPos
    for (let p = 0; identity && p < rawOf.length; p++) if (rawOf[p] !== p) identity = false
    return { doc: proj.doc, rawOf: identity ? null : rawOf }
  }

  /**
   * Whether token i was inserted by an event that had `op` in its history. One
   * agent's events form a chain, so per (op, agent) this is a seq threshold,
   * found by binary search over the agent's events the op had not seen.
   */
  private madeAfter(i: number, op: MarkOp, memo: Map<MarkOp, Map<string, number>>): boolean {
    let m = memo.get(op)
    if (m === undefined) memo.set(op, (m = new Map()))
    const agent = this.ids.agent(i)
    let threshold = m.get(agent)
    if (threshold === undefined) {
      const from = Object.hasOwn(op.vv, agent) ? op.vv[agent] : 0
      threshold = this.mirror.firstAfter(op.agent, op.seq, agent, from)
      m.set(agent, threshold)
    }
    return this.ids.seq(i) >= threshold
  }
}

/**
 * Whether a replace step's slice would put nodes deeper than `MAX_RICH_DEPTH` (the projection
 * would flatten them). O(slice nodes); O(1) for typed text.
 */
function sliceTooDeep(doc: Node, step: Step): boolean {
  if (!(step instanceof ReplaceStep || step instanceof ReplaceAroundStep)) return false
  const s = step.slice
  if (step.from < 0 || step.from > doc.content.size) return false // does not apply
  // The slice's top-level nodes become children of the node at this depth.
  const base = doc.resolve(step.from).depth - s.openStart
  const budget = MAX_RICH_DEPTH - base
  // 0: inline content only (typing), which nests nothing new, even where it is already deep.
  const depth = fragmentDepth(s.content, Math.max(budget, 0))
  return depth > 0 && depth > budget
}

/**
 * Whether a step would record attribute values (of nodes, marks, the document) nesting
 * deeper than `MAX_RICH_DEPTH`: replicas ignore such records. O(slice nodes and marks).
 */
function attrsTooDeep(step: Step): boolean {
  const deep = (v: unknown) => valueNestsDeeper(v, MAX_RICH_DEPTH)
  const marksDeep = (marks: readonly Mark[]) => marks.some((m) => deep(m.attrs))
  if (step instanceof AttrStep || step instanceof DocAttrStep) return deep(step.value)
  if (
    step instanceof AddMarkStep ||
    step instanceof RemoveMarkStep ||
    step instanceof AddNodeMarkStep ||
    step instanceof RemoveNodeMarkStep
  )
    return deep(step.mark.attrs)
  if (!(step instanceof ReplaceStep || step instanceof ReplaceAroundStep)) return false
  // Iterative (sliceTooDeep ran first, so this slice is not deep anyway).
  const stack: Fragment[] = [step.slice.content]
  while (stack.length > 0) {
    const f = stack.pop()!
    for (let i = 0; i < f.childCount; i++) {
      const n = f.child(i)
      if (marksDeep(n.marks) || (!n.isText && deep(n.attrs))) return true
      if (n.childCount > 0) stack.push(n.content)
    }
  }
  return false
}

/**
 * Whether a step that moves content into new nodes (ReplaceAroundStep, e.g. wrapping; any
 * step type RichDoc does not know) made positions deeper than `MAX_RICH_DEPTH` where they
 * were not before. O(range) for a ReplaceAroundStep, O(document) for an unknown step type.
 */
function resultTooDeep(before: Node, step: Step, after: Node): boolean {
  if (step instanceof ReplaceStep) return false // covered by sliceTooDeep
  if (
    step instanceof AddMarkStep ||
    step instanceof RemoveMarkStep ||
    step instanceof AttrStep ||
    step instanceof DocAttrStep ||
    step instanceof AddNodeMarkStep ||
    step instanceof RemoveNodeMarkStep
  )
    return false // no structure changes
  let from = 0
  let to = before.content.size
  let toAfter = after.content.size
  if (step instanceof ReplaceAroundStep) {
    from = step.from
    to = step.to
    toAfter = step.getMap().map(step.to)
  }
  if (rangeDepth(after, from, toAfter, MAX_RICH_DEPTH) <= MAX_RICH_DEPTH) return false
  // Over the limit: refused unless it was already (content a remote peer nested too deeply).
  return rangeDepth(after, from, toAfter, Infinity) > rangeDepth(before, from, to, Infinity)
}

/**
 * The depth of the deepest position inside nodes overlapping `[from, to]` of `doc` (iterative),
 * stopping as soon as it exceeds `limit`.
 */
function rangeDepth(doc: Node, from: number, to: number, limit: number): number {
  let max = 0
  const stack: { node: Node; start: number; depth: number }[] = [{ node: doc, start: 0, depth: 0 }]
  while (stack.length > 0) {
    const { node, start, depth } = stack.pop()!
    let pos = start
    for (let i = 0; i < node.childCount && pos <= to; i++) {
      const child = node.child(i)
      const end = pos + child.nodeSize
      if (end >= from && !child.isLeaf) {
        if (depth + 1 > max && (max = depth + 1) > limit) return max
        stack.push({ node: child, start: pos + 1, depth: depth + 1 })
      }
      pos = end
    }
  }
  return max
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
