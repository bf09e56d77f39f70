/**
 * Editing-trace loader and concurrent replay harness (tests and benchmarks).
 *
 * Owns: finding ../shared/traces, reading its gzipped JSON, converting code-point positions
 * to UTF-16 code units, and replaying a concurrent trace with one replica per agent on any
 * engine (ours or a peer's).
 *
 * Invariants: every patch handed out is `[pos, del, ins]` in UTF-16 code units, valid on the
 * document produced by the patches before it (sequential) or on its agent's copy
 * (concurrent). Loaded traces are cached and shared: treat them as read-only.
 *
 * Cost: sequential conversion is O(astral chars in the document) per patch plus the inserted
 * text; concurrent replay computes one version vector per txn (O(txns × agents) ints).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gunzipSync } from 'node:zlib'

/** One edit: delete `del` code units at `pos`, then insert `ins` there (UTF-16 units). */
export type Patch = readonly [pos: number, del: number, ins: string]

/** A linear history starting from the empty document. */
export interface SequentialTrace {
  readonly name: string
  /** Every patch of every txn, in order. */
  readonly patches: readonly Patch[]
  /** `txnEnds[t]` = index in `patches` one past txn t's last patch. */
  readonly txnEnds: readonly number[]
  readonly endContent: string
}

/** One txn of a concurrent trace: patches made by `agent` on its copy at version `parents`. */
export interface ConcurrentTxn {
  readonly parents: readonly number[]
  readonly agent: number
  readonly patches: readonly Patch[]
}

/** A causal graph of txns by agents 0..numAgents-1, in topological order. */
export interface ConcurrentTrace {
  readonly name: string
  readonly numAgents: number
  readonly txns: readonly ConcurrentTxn[]
  readonly endContent: string
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/**
 * The traces folder: `POLYPHONY_TRACES`, else `<repo>/../shared/traces`. Returns null when it
 * does not exist, unless `POLYPHONY_REQUIRE_TRACES=1`, in which case it throws.
 */
export function tracesDir(): string | null {
  const dir = process.env.POLYPHONY_TRACES || resolve(REPO_ROOT, '../shared/traces')
  if (existsSync(join(dir, 'sequential')) && existsSync(join(dir, 'concurrent'))) return dir
  if (process.env.POLYPHONY_REQUIRE_TRACES === '1') {
    throw new Error(
      `editing traces not found at ${dir} (expected sequential/ and concurrent/ there); ` +
        'set POLYPHONY_TRACES to the traces folder, or unset POLYPHONY_REQUIRE_TRACES',
    )
  }
  return null
}

function requireDir(): string {
  const dir = tracesDir()
  if (dir === null) {
    throw new Error(
      'editing traces not found: set POLYPHONY_TRACES or place them at ../shared/traces',
    )
  }
  return dir
}

/** Names of the top-level sequential and concurrent traces (without `.json.gz`). */
export function listTraces(): { sequential: string[]; concurrent: string[] } {
  const dir = tracesDir()
  if (dir === null) return { sequential: [], concurrent: [] }
  const names = (sub: string) =>
    readdirSync(join(dir, sub))
      .filter((f) => f.endsWith('.json.gz'))
      .map((f) => f.slice(0, -'.json.gz'.length))
      .sort()
  return { sequential: names('sequential'), concurrent: names('concurrent') }
}

function readJson(kind: 'sequential' | 'concurrent', name: string): any {
  if (!/^(ascii_only\/)?[\w.-]+$/.test(name)) throw new Error(`bad trace name: ${name}`)
  const file = join(requireDir(), kind, `${name}.json.gz`)
  if (!existsSync(file)) throw new Error(`no ${kind} trace named ${name} (${file})`)
  return JSON.parse(gunzipSync(readFileSync(file)).toString('utf8'))
}

const SURROGATE = /[\uD800-\uDFFF]/

/**
 * Converts code-point patches of one linear document to UTF-16 patches. Keeps the sorted
 * code-point positions of the astral chars currently in the document, so each patch costs
 * O(astral chars) plus its inserted text, and O(1) extra while the document has none.
 */
export class CodePointConverter {
  private astral: number[] = []
  /** Current document length in code points. */
  length = 0

  /** Converts one patch (code points) and advances the tracked document. */
  convert(pos: number, del: number, ins: string): Patch {
    if (!(pos >= 0 && del >= 0 && pos + del <= this.length)) {
      throw new RangeError(
        `patch [${pos}, ${del}] out of range: document has ${this.length} code points`,
      )
    }
    const astral = this.astral
    if (astral.length === 0 && !SURROGATE.test(ins)) {
      this.length += ins.length - del
      return [pos, del, ins]
    }
    let i = 0
    while (i < astral.length && astral[i] < pos) i++
    let j = i
    while (j < astral.length && astral[j] < pos + del) j++
    const inserted: number[] = []
    let cpLen = 0
    for (const ch of ins) {
      if (ch.length === 2) inserted.push(pos + cpLen)
      cpLen++
    }
    const shift = cpLen - del
    const next = astral.slice(0, i)
    for (const p of inserted) next.push(p)
    for (let k = j; k < astral.length; k++) next.push(astral[k] + shift)
    this.astral = next
    this.length += shift
    return [pos + i, del + (j - i), ins]
  }
}

const seqCache = new Map<string, SequentialTrace>()
const concCache = new Map<string, ConcurrentTrace>()

/**
 * Loads `sequential/NAME.json.gz` (NAME may be `ascii_only/...`), positions converted to
 * UTF-16 code units. Throws when the traces folder or the file is missing.
 */
export function loadSequential(name: string): SequentialTrace {
  const cached = seqCache.get(name)
  if (cached) return cached
  const raw = readJson('sequential', name)
  if (raw.startContent !== undefined && raw.startContent !== '') {
    throw new Error(`trace ${name}: non-empty startContent is not supported`)
  }
  const conv = new CodePointConverter()
  const patches: Patch[] = []
  const txnEnds: number[] = []
  for (const txn of raw.txns) {
    for (const [pos, del, ins] of txn.patches) patches.push(conv.convert(pos, del, ins))
    txnEnds.push(patches.length)
  }
  const trace: SequentialTrace = { name, patches, txnEnds, endContent: raw.endContent }
  seqCache.set(name, trace)
  return trace
}

/**
 * Loads `concurrent/NAME.json.gz`. No concurrent trace contains astral chars (checked here:
 * it throws if one does), so code points and UTF-16 units coincide and patches are kept as is.
 */
export function loadConcurrent(name: string): ConcurrentTrace {
  const cached = concCache.get(name)
  if (cached) return cached
  const raw = readJson('concurrent', name)
  const numAgents: number = raw.numAgents
  const txns: ConcurrentTxn[] = []
  raw.txns.forEach((txn: any, i: number) => {
    if (!(Number.isInteger(txn.agent) && txn.agent >= 0 && txn.agent < numAgents)) {
      throw new RangeError(`trace ${name} txn ${i}: agent ${txn.agent} not in [0, ${numAgents})`)
    }
    for (const p of txn.parents) {
      if (!(Number.isInteger(p) && p >= 0 && p < i)) {
        throw new RangeError(`trace ${name} txn ${i}: parent ${p} not in [0, ${i})`)
      }
    }
    for (const patch of txn.patches) {
      if (SURROGATE.test(patch[2])) {
        throw new Error(
          `trace ${name} txn ${i}: astral chars in a concurrent trace are not supported`,
        )
      }
    }
    txns.push({ parents: txn.parents, agent: txn.agent, patches: txn.patches })
  })
  if (SURROGATE.test(raw.endContent)) {
    throw new Error(`trace ${name}: astral chars in a concurrent trace are not supported`)
  }
  const trace: ConcurrentTrace = { name, numAgents, txns, endContent: raw.endContent }
  concCache.set(name, trace)
  return trace
}

/**
 * What the concurrent harness needs from an engine. `R` is a mutable replica (wrap immutable
 * documents such as Automerge's in an object), `U` an update, `M` a mark of the state before
 * a txn (e.g. a version vector).
 */
export interface ReplayEngine<R, U, M = unknown> {
  readonly name: string
  /** A new empty replica for agent `agent` (ids must order like the agent numbers). */
  create(agent: number, numAgents: number): R
  /** Remembers the replica's state before a local txn. */
  mark(replica: R): M
  /** Applies one local patch (UTF-16 units). */
  applyPatch(replica: R, pos: number, del: number, ins: string): void
  /** Optional: applies a whole txn's patches at once (e.g. one Automerge change). */
  applyPatches?(replica: R, patches: readonly Patch[]): void
  /** The update holding exactly the local changes made since `before`. */
  capture(replica: R, before: M): U
  /** Integrates a remote update. */
  applyUpdate(replica: R, update: U): void
  /** Optional: integrates several remote updates given in causal order. */
  applyUpdates?(replica: R, updates: readonly U[]): void
  /** The replica's current text. */
  text(replica: R): string
}

/** Options of {@link replayConcurrent}. */
export interface ReplayOptions<R> {
  /** Called for each replica once it holds the final version (agent order). */
  onReplicaDone?: (replica: R, agent: number) => void
  /** false: drop each replica after `onReplicaDone` (saves memory); default true. */
  keepReplicas?: boolean
}

/** Per-txn version vectors: `vv[i][b]` = how many of agent b's txns txn i includes (itself too). */
export function txnVersionVectors(trace: ConcurrentTrace): Int32Array[] {
  const { numAgents, txns } = trace
  const count = new Int32Array(numAgents)
  const vv: Int32Array[] = []
  txns.forEach((txn, i) => {
    const v = new Int32Array(numAgents)
    for (const p of txn.parents) {
      const pv = vv[p]
      for (let b = 0; b < numAgents; b++) if (pv[b] > v[b]) v[b] = pv[b]
    }
    if (v[txn.agent] !== count[txn.agent]) {
      throw new Error(
        `trace ${trace.name} txn ${i}: agent ${txn.agent} has ${count[txn.agent]} earlier txns ` +
          `but the parents include ${v[txn.agent]} (an agent's txns must be totally ordered)`,
      )
    }
    v[txn.agent] = ++count[txn.agent]
    vv.push(v)
  })
  return vv
}

/**
 * Replays a concurrent trace with one replica per agent: before each txn, its agent's replica
 * receives the captured updates of exactly the txns it lacks from the txn's parents' causal
 * closure (in trace order, so parents come first); then the txn's patches are applied locally
 * and its update captured. At the end every replica is brought to the final txn's version.
 * Returns the replicas (agent order; entries are undefined when `keepReplicas` is false).
 */
export function replayConcurrent<R, U, M>(
  trace: ConcurrentTrace,
  engine: ReplayEngine<R, U, M>,
  opts: ReplayOptions<R> = {},
): { replicas: (R | undefined)[]; updates: U[] } {
  const { numAgents, txns } = trace
  if (txns.length === 0) throw new Error(`trace ${trace.name} has no txns`)
  const vv = txnVersionVectors(trace)
  const agentTxns: number[][] = Array.from({ length: numAgents }, () => [])
  txns.forEach((txn, i) => agentTxns[txn.agent].push(i))
  const replicas: (R | undefined)[] = new Array(numAgents).fill(undefined)
  const have: Int32Array[] = Array.from({ length: numAgents }, () => new Int32Array(numAgents))
  const updates: U[] = []

  const catchUp = (agent: number, target: Int32Array) => {
    let replica = replicas[agent]
    if (replica === undefined) replica = replicas[agent] = engine.create(agent, numAgents)
    const h = have[agent]
    const needed: number[] = []
    for (let b = 0; b < numAgents; b++) {
      if (h[b] > target[b]) {
        throw new Error(
          `trace ${trace.name}: replica ${agent} holds ${h[b]} txns of agent ${b}, ` +
            `more than the ${target[b]} of the version it must reach`,
        )
      }
      const list = agentTxns[b]
      for (let k = h[b]; k < target[b]; k++) needed.push(list[k])
      h[b] = target[b]
    }
    if (needed.length === 0) return replica
    needed.sort((x, y) => x - y)
    if (engine.applyUpdates)
      engine.applyUpdates(
        replica,
        needed.map((t) => updates[t]),
      )
    else for (const t of needed) engine.applyUpdate(replica, updates[t])
    return replica
  }

  const target = new Int32Array(numAgents)
  txns.forEach((txn, i) => {
    target.fill(0)
    for (const p of txn.parents) {
      const pv = vv[p]
      for (let b = 0; b < numAgents; b++) if (pv[b] > target[b]) target[b] = pv[b]
    }
    const replica = catchUp(txn.agent, target)
    const before = engine.mark(replica)
    if (engine.applyPatches) engine.applyPatches(replica, txn.patches)
    else for (const [pos, del, ins] of txn.patches) engine.applyPatch(replica, pos, del, ins)
    updates.push(engine.capture(replica, before))
    have[txn.agent][txn.agent]++
  })

  const final = vv[txns.length - 1]
  for (let a = 0; a < numAgents; a++) {
    const replica = catchUp(a, final)
    opts.onReplicaDone?.(replica, a)
    if (opts.keepReplicas === false) replicas[a] = undefined
  }
  return { replicas, updates }
}

/** What {@link textDocEngine} needs from TextDoc (the API.md contract). */
export interface TextDocLike {
  insert(pos: number, text: string): void
  delete(pos: number, length: number): void
  version(): Record<string, number>
  encodeUpdate(since?: Record<string, number>): Uint8Array
  applyUpdate(update: Uint8Array): void
  toString(): string
}

/**
 * Agent names for trace agents: zero-padded so that string order equals number order
 * (the traces' tie-break expects lower agent numbers first).
 */
export function agentName(agent: number): string {
  return `agent${String(agent).padStart(6, '0')}`
}

/**
 * The harness engine for our TextDoc (pass the class from `shared/index.ts`): updates are
 * `encodeUpdate(versionBefore)`.
 */
export function textDocEngine<D extends TextDocLike>(
  TextDoc: new (agent?: string) => D,
): ReplayEngine<D, Uint8Array, Record<string, number>> {
  return {
    name: 'polyphony',
    create: (agent) => new TextDoc(agentName(agent)),
    mark: (doc) => doc.version(),
    applyPatch(doc, pos, del, ins) {
      if (del > 0) doc.delete(pos, del)
      if (ins !== '') doc.insert(pos, ins)
    },
    capture: (doc, before) => doc.encodeUpdate(before),
    applyUpdate: (doc, update) => doc.applyUpdate(update),
    text: (doc) => doc.toString(),
  }
}

/**
 * Replays a sequential trace on plain JS strings (the reference result). The text is kept as
 * chunks of about 1-2K code units so each patch costs O(chunks + chunk size), not O(length):
 * a single string re-flattened per patch takes ~50 s on egwalker.
 */
export function replayString(trace: SequentialTrace): string {
  const CHUNK = 1024
  const chunks: string[] = ['']
  for (const [pos, del, ins] of trace.patches) {
    let i = 0
    let off = pos
    while (i < chunks.length - 1 && off > chunks[i].length) off -= chunks[i++].length
    let k = i
    let region = chunks[i]
    while (region.length < off + del && k < chunks.length - 1) region += chunks[++k]
    if (off + del > region.length) {
      throw new RangeError(`patch [${pos}, ${del}] past the end of the ${trace.name} replay`)
    }
    const result = region.slice(0, off) + ins + region.slice(off + del)
    if (result.length <= 2 * CHUNK) {
      if (result.length > 0) chunks.splice(i, k - i + 1, result)
      else if (chunks.splice(i, k - i + 1).length && chunks.length === 0) chunks.push('')
    } else {
      const pieces: string[] = []
      for (let p = 0; p < result.length; p += CHUNK) pieces.push(result.slice(p, p + CHUNK))
      chunks.splice(i, k - i + 1, ...pieces)
    }
  }
  return chunks.join('')
}
