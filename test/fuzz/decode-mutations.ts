/**
 * Hostile-bytes checks of TextDoc's decoders (RELIABILITY.md C1-C3, E10), run in a child
 * process by test/core-decode.test.ts so that a decoder that hangs or allocates without
 * bound is killed by a timeout instead of hanging the test run.
 *
 * Owns: sample messages (updates and save() bytes) and the checks: every truncated prefix
 * is refused; random bytes, bit flips, byte mutations and huge varints either apply cleanly
 * or throw an Error that names the problem, leaving the document exactly as it was.
 *
 * Run directly: `npx tsx test/fuzz/decode-mutations.ts [category ...]`; categories are
 * truncate, random, mutate, huge (all by default). Prints one JSON line per category:
 * `{ category, cases, applied, refused, maxMs, failures: [...] }`. Exit code 1 on failures.
 */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TextDoc } from '../../shared/index.ts'
import { Rng } from '../support/rng.ts'
import { versionEntries } from '../support/reference.ts'

/** A named valid message: an update (applied to a target doc) or save() bytes (loaded). */
export interface Sample {
  readonly name: string
  readonly kind: 'update' | 'save'
  readonly bytes: Uint8Array
}

/** The result of one category. */
export interface CategoryResult {
  category: string
  cases: number
  applied: number
  refused: number
  maxMs: number
  failures: string[]
}

/** Messages produced by a crash, not by a validating decoder. */
const CRASH_MESSAGE =
  /Maximum call stack|Invalid (typed )?array length|Array buffer allocation|Cannot read|Cannot set|is not a function|is not iterable|of undefined|of null|out of memory/i

/** Builds the valid messages the checks start from, and the doc updates are applied to. */
export function buildSamples(): { samples: Sample[]; targetSave: Uint8Array } {
  const a = new TextDoc('alpha')
  const b = new TextDoc('beta')
  const c = new TextDoc('gamma')
  const single: Uint8Array[] = []
  const off = a.on('update', (u) => void single.push(u))
  a.insert(0, 'hello')
  off()
  b.applyUpdate(a.encodeUpdate())
  const baseVersion = b.version()
  a.insert(5, ' world 😀')
  b.insert(0, 'Über ')
  b.delete(6, 2)
  c.insert(0, '中文字')
  c.applyUpdate(b.encodeUpdate())
  c.delete(1, 1)
  a.applyUpdate(c.encodeUpdate(a.version()))
  a.insert(a.length, '!')
  const samples: Sample[] = [
    { name: 'single insert update', kind: 'update', bytes: single[0] },
    { name: 'full update (3 agents)', kind: 'update', bytes: a.encodeUpdate() },
    { name: 'update since a past version', kind: 'update', bytes: a.encodeUpdate(baseVersion) },
    { name: 'save() bytes', kind: 'save', bytes: a.save() },
    { name: 'save() of a loaded doc', kind: 'save', bytes: TextDoc.load(c.save()).save() },
  ]
  // the target already has part of the events and some of its own
  const target = new TextDoc('target')
  target.applyUpdate(single[0])
  target.insert(2, 'TT')
  return { samples, targetSave: target.save() }
}

interface Snapshot {
  text: string
  version: string
  pending: number
}

function snapshot(doc: TextDoc): Snapshot {
  return {
    text: doc.toString(),
    version: JSON.stringify(versionEntries(doc.version())),
    pending: doc.pendingCount,
  }
}

const RSS_LIMIT = 1.5 * 1024 * 1024 * 1024
const MS_LIMIT = 2000

/**
 * Tries one message. Returns null when the outcome is allowed (applied and consistent, or
 * refused with a proper Error and nothing changed), else a description of the failure.
 * `mustRefuse`: the bytes are invalid (e.g. truncated), so applying them is a failure too.
 */
function tryOne(
  sample: Sample,
  bytes: Uint8Array,
  targetSave: Uint8Array,
  mustRefuse: boolean,
  res: CategoryResult,
  what: string,
): void {
  res.cases++
  const target = sample.kind === 'update' ? TextDoc.load(targetSave, 'target') : null
  const before = target ? snapshot(target) : null
  let fired = 0
  if (target) {
    target.on('update', () => void fired++)
    target.on('change', () => void fired++)
  }
  const t0 = performance.now()
  let err: unknown = null
  let loaded: TextDoc | null = null
  try {
    if (target) target.applyUpdate(bytes)
    else loaded = TextDoc.load(bytes)
  } catch (e) {
    err = e
  }
  const ms = performance.now() - t0
  res.maxMs = Math.max(res.maxMs, ms)
  const where = `${sample.name}: ${what} (${bytes.length} bytes: ${hex(bytes)})`
  if (ms > MS_LIMIT) res.failures.push(`${where}: took ${ms.toFixed(0)} ms`)
  if (process.memoryUsage().rss > RSS_LIMIT) {
    res.failures.push(`${where}: rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`)
  }
  if (err !== null) {
    res.refused++
    if (!(err instanceof Error)) {
      res.failures.push(`${where}: threw a non-Error ${String(err)}`)
      return
    }
    if (
      err instanceof TypeError ||
      err instanceof ReferenceError ||
      CRASH_MESSAGE.test(err.message)
    ) {
      res.failures.push(`${where}: crashed with ${err.name}: ${err.message}`)
      return
    }
    if (err.message.trim().length < 8) {
      res.failures.push(`${where}: error message says nothing: ${JSON.stringify(err.message)}`)
    }
    if (target && before) {
      const after = snapshot(target)
      if (JSON.stringify(after) !== JSON.stringify(before)) {
        res.failures.push(
          `${where}: refused but the doc changed ${JSON.stringify({ before, after })}`,
        )
      }
      if (fired !== 0) res.failures.push(`${where}: refused but 'update' or 'change' fired`)
      try {
        target.checkInvariants()
      } catch (e) {
        res.failures.push(`${where}: refused, then checkInvariants failed: ${String(e)}`)
      }
    }
    return
  }
  res.applied++
  if (mustRefuse) {
    res.failures.push(`${where}: invalid bytes were accepted`)
    return
  }
  const doc = target ?? loaded
  if (doc === null) return
  try {
    doc.checkInvariants()
    const text = doc.toString()
    if (text.length !== doc.length) throw new Error(`length ${doc.length} != text ${text.length}`)
    const copy = TextDoc.load(doc.save())
    if (copy.toString() !== text) throw new Error('save/load after accepting changed the text')
    // the history must agree with the text (a snapshot's history may be decoded lazily)
    const replay = new TextDoc('replay')
    replay.applyUpdate(doc.encodeUpdate())
    if (replay.toString() !== text) {
      throw new Error(
        `its history replays to ${JSON.stringify(replay.toString())}, text is ${JSON.stringify(text)}`,
      )
    }
  } catch (e) {
    res.failures.push(`${where}: accepted, then inconsistent: ${String(e)}`)
  }
}

function hex(bytes: Uint8Array): string {
  const head = Array.from(bytes.subarray(0, 48), (b) => b.toString(16).padStart(2, '0')).join('')
  return bytes.length > 48 ? `${head}…` : head
}

function newResult(category: string): CategoryResult {
  return { category, cases: 0, applied: 0, refused: 0, maxMs: 0, failures: [] }
}

/** Every proper prefix of every sample must be refused. */
export function checkTruncations(samples: Sample[], targetSave: Uint8Array): CategoryResult {
  const res = newResult('truncate')
  for (const s of samples) {
    for (let n = 0; n < s.bytes.length; n++) {
      tryOne(s, s.bytes.slice(0, n), targetSave, true, res, `prefix of ${n}`)
    }
  }
  return res
}

/** Random byte strings, and random bytes after a valid message's first bytes. */
export function checkRandom(samples: Sample[], targetSave: Uint8Array, rng: Rng): CategoryResult {
  const res = newResult('random')
  for (let i = 0; i < 600; i++) {
    const s = rng.pick(samples)
    const n = rng.int(0, 96)
    const bytes = new Uint8Array(n)
    for (let k = 0; k < n; k++) bytes[k] = rng.int(0, 255)
    if (rng.chance(0.5) && n > 0) bytes.set(s.bytes.subarray(0, rng.int(1, Math.min(n, 6))))
    tryOne(s, bytes, targetSave, false, res, `random bytes #${i}`)
  }
  return res
}

/** Bit flips, byte replacements, insertions and deletions in valid messages. */
export function checkMutations(
  samples: Sample[],
  targetSave: Uint8Array,
  rng: Rng,
): CategoryResult {
  const res = newResult('mutate')
  for (const s of samples) {
    const len = s.bytes.length
    for (let i = 0; i < len; i++) {
      const bit = s.bytes.slice()
      bit[i] ^= 1 << rng.int(0, 7)
      tryOne(s, bit, targetSave, false, res, `bit flip at ${i}`)
    }
    for (let k = 0; k < 150; k++) {
      const bytes = Array.from(s.bytes)
      const edits = rng.int(1, 3)
      for (let e = 0; e < edits; e++) {
        const at = rng.int(0, Math.max(0, bytes.length - 1))
        const r = rng.int(0, 2)
        if (r === 0) bytes[at] = rng.int(0, 255)
        else if (r === 1) bytes.splice(at, 0, rng.int(0, 255))
        else bytes.splice(at, 1)
      }
      tryOne(s, Uint8Array.from(bytes), targetSave, false, res, `byte mutation #${k}`)
    }
  }
  return res
}

/** LEB128 varints claiming huge counts or lengths, and over-long varints. */
const HUGE: number[][] = [
  [0x80, 0x80, 0x80, 0x80, 0x08], // 2^31
  [0xff, 0xff, 0xff, 0xff, 0x0f], // 2^32 - 1
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], // 2^53 - 1
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // past 2^64
  [0xff, 0xff, 0xff, 0x7f], // 2^28 - 1
]

/** Every byte of every sample replaced by (and preceded by) each huge varint. */
export function checkHugeLengths(samples: Sample[], targetSave: Uint8Array): CategoryResult {
  const res = newResult('huge')
  for (const s of samples) {
    for (let i = 0; i < s.bytes.length; i++) {
      for (const h of HUGE) {
        const before = Array.from(s.bytes.subarray(0, i))
        const after = Array.from(s.bytes.subarray(i + 1))
        const replaced = Uint8Array.from([...before, ...h, ...after])
        tryOne(
          s,
          replaced,
          targetSave,
          false,
          res,
          `byte ${i} replaced by varint ${hex(Uint8Array.from(h))}`,
        )
      }
      const inserted = Uint8Array.from([
        ...s.bytes.subarray(0, i),
        ...HUGE[2],
        ...s.bytes.subarray(i),
      ])
      tryOne(s, inserted, targetSave, false, res, `varint 2^53-1 inserted at ${i}`)
    }
  }
  return res
}

/** Runs the named categories; returns one result per category. */
export function runDecodeChecks(categories: readonly string[], seed: number): CategoryResult[] {
  const { samples, targetSave } = buildSamples()
  const rng = new Rng(seed)
  const out: CategoryResult[] = []
  for (const c of categories) {
    let r: CategoryResult
    if (c === 'truncate') r = checkTruncations(samples, targetSave)
    else if (c === 'random') r = checkRandom(samples, targetSave, rng)
    else if (c === 'mutate') r = checkMutations(samples, targetSave, rng)
    else if (c === 'huge') r = checkHugeLengths(samples, targetSave)
    else throw new Error(`unknown category ${c}`)
    r.failures = r.failures
      .slice(0, 20)
      .concat(r.failures.length > 20 ? [`… ${r.failures.length - 20} more`] : [])
    out.push(r)
    console.log(JSON.stringify(r))
  }
  return out
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const cats = process.argv.slice(2)
  const seed = Number(process.env.FUZZ_SEED ?? 1)
  const results = runDecodeChecks(
    cats.length > 0 ? cats : ['truncate', 'random', 'mutate', 'huge'],
    seed,
  )
  process.exitCode = results.some((r) => r.failures.length > 0) ? 1 : 0
}
