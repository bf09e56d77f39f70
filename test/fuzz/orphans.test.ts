/**
 * Orphan events over random topologies: 3-6 TextDocs linked in a star, line, ring or mesh
 * (relay tree on, off or mixed; gapTimeoutMs 30) take a source document's updates out of
 * causal order from raw peers that then leave, amid local edits and links closing and
 * reopening; every replica must end with the same text and version as a reference that holds
 * everything delivered.
 *
 * Why: events whose parents are missing wait in the pending buffer, and a link whose message
 * waits asks its peer for the gap (NEED). Once an update releases them, every replica must
 * still get them, even when the raw peer that sent them is gone and the peer whose update
 * released them sends nothing more (before 5ed7fe6 such replicas could miss them for good).
 *
 * Real time, so a rerun need not fail the same way. Seeds 1..60 by default, four at a time
 * (a few seconds each at most); `ORPHAN_SEEDS=1..400` or `ORPHAN_SEEDS=7,8,10` runs others, and
 * `FUZZ_TRACE=1` adds each failing seed's actions to its report.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  TextDoc,
  link,
  memoryPair,
  type Channel,
  type Link,
  type LinkOptions,
  type VersionVector,
} from '../../shared/index.ts'
import { RawPeer } from '../support/raw-peer.ts'
import { Rng, splitsSurrogate } from '../support/rng.ts'
import { describeEdit, randomEdit, type Edit } from './edits.ts'

const DEFAULT_SEEDS = '1..60'
/** How long the replicas get to converge once the last action is done. */
const WAIT_MS = 3000
/** Trials at a time: they mostly sleep, so a few share a process well. */
const PARALLEL = 4

/** `ORPHAN_SEEDS` (`a..b` ranges and single seeds, comma-separated), else DEFAULT_SEEDS. */
function seedsFromEnv(env: NodeJS.ProcessEnv = process.env): number[] {
  const raw =
    env.ORPHAN_SEEDS === undefined || env.ORPHAN_SEEDS === '' ? DEFAULT_SEEDS : env.ORPHAN_SEEDS
  const seeds: number[] = []
  for (const part of raw.split(',')) {
    const m = /^\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?$/.exec(part)
    const from = Number(m?.[1])
    const to = m?.[2] === undefined ? from : Number(m[2])
    if (!m || !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to < from) {
      throw new RangeError(
        `ORPHAN_SEEDS: expected seeds like 1..40 or 7,8,10, got ${JSON.stringify(raw)}`,
      )
    }
    for (let s = from; s <= to; s++) seeds.push(s)
  }
  return seeds
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** A version as a comparable key (agents sorted, zero entries left out). */
function vvKey(vv: VersionVector): string {
  return Object.keys(vv)
    .filter((a) => (vv[a] ?? 0) > 0)
    .sort()
    .map((a) => `${a}:${vv[a]}`)
    .join(',')
}

/** What `mine` lacks or has beyond `want`, agent by agent. */
function vvDiff(mine: VersionVector, want: VersionVector): string {
  const out: string[] = []
  for (const a of new Set([...Object.keys(mine), ...Object.keys(want)])) {
    const m = mine[a] ?? 0
    const w = want[a] ?? 0
    if (m < w) out.push(`lacks ${a}[${m}..${w})`)
    else if (m > w) out.push(`extra ${a}[${w}..${m})`)
  }
  return out.join(' ')
}

/**
 * One random edit on `doc` (the fuzzers' `randomEdit`), or now and then a long insert, whose
 * text, once deleted, is elided in updates; returns its log line.
 */
function randomDocEdit(rng: Rng, doc: TextDoc, tag: string): string {
  const text = doc.toString()
  let edit: Edit
  if (rng.chance(0.1)) {
    let pos = rng.int(0, text.length)
    while (splitsSurrogate(text, pos)) pos--
    edit = { kind: 'insert', pos, text: rng.text(rng.int(40, 99)) }
  } else edit = randomEdit(rng, text)
  if (edit.kind === 'insert') doc.insert(edit.pos, edit.text)
  else doc.delete(edit.pos, edit.len)
  return `${tag} ${describeEdit(edit)}`
}

/** An update of a source document, and whether a raw peer has sent it to some replica. */
interface Slice {
  id: string
  bytes: Uint8Array
  delivered: boolean
}

/** A link pair between replicas `a` and `b`; `la` is a's end. */
interface Edge {
  a: number
  b: number
  optsA: LinkOptions
  optsB: LinkOptions
  delayMs: number
  la: Link
  lb: Link
  down: boolean
}

interface Outcome {
  seed: number
  /** Time from the last action to convergence (WAIT_MS when it never came). */
  ms: number
  failure?: string
}

/**
 * Uncaught errors and unhandled rejections go to every trial running when they happen (the
 * trials share the process, so one cannot tell whose it was).
 */
const errorSinks = new Set<string[]>()
const strayErrors: string[] = []
function onAsyncError(kind: string) {
  return (e: unknown) => {
    const msg = `${kind}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`
    if (errorSinks.size === 0) strayErrors.push(msg)
    for (const sink of errorSinks) sink.push(msg)
  }
}

async function trial(seed: number): Promise<Outcome> {
  const rng = new Rng(seed)
  const log: string[] = []
  const errors: string[] = []
  const asyncErrors: string[] = []
  const links: Link[] = []
  const channels: Channel[] = []
  errorSinks.add(asyncErrors)
  try {
    const n = rng.int(3, 6)
    const topo = rng.pick(['star', 'line', 'ring', 'mesh'] as const)
    const treeMode = rng.pick(['off', 'on', 'mixed'] as const)
    const withhold = rng.chance(0.3) // some slices never reach any replica
    const docs: TextDoc[] = []
    for (let i = 0; i < n; i++) docs.push(new TextDoc(`r${i}`))
    if (rng.chance(0.5)) docs[0].insert(0, 'seed text ' + rng.text(rng.int(1, 60)))

    const pairs: [number, number][] = []
    if (topo === 'star') {
      for (let i = 1; i < n; i++) pairs.push([0, i])
    } else if (topo === 'line' || topo === 'ring') {
      for (let i = 0; i + 1 < n; i++) pairs.push([i, i + 1])
      if (topo === 'ring') pairs.push([n - 1, 0])
    } else {
      const full = rng.chance(0.5)
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          if (full || j === i + 1 || rng.chance(0.4)) pairs.push([i, j])
        }
      }
    }
    const randomOptions = (): LinkOptions => ({
      gapTimeoutMs: 30,
      treeRelay: treeMode === 'on' ? true : treeMode === 'off' ? false : rng.chance(0.5),
      batchDelayMs: rng.pick([0, 1, 5, 20]),
      maxBatchDelayMs: rng.pick([20, 50, 100]),
      lazyDelayMs: rng.pick([30, 100]),
      graftDelayMs: rng.pick([60, 150, 300]),
      deflate: rng.chance(0.7),
      alignBatches: rng.chance(0.2),
      batchGrowth: rng.chance(0.3) ? 'backlog' : 'traffic',
    })
    const watch = (l: Link, what: string): Link => {
      links.push(l)
      l.on('error', (e) => errors.push(`${what}: ${e.message}`))
      return l
    }
    const connect = (e: Omit<Edge, 'la' | 'lb' | 'down'>): [Link, Link] => {
      const [ca, cb] = memoryPair({ delayMs: e.delayMs })
      channels.push(ca, cb)
      return [
        watch(link(docs[e.a], ca, e.optsA), `r${e.a}->r${e.b}`),
        watch(link(docs[e.b], cb, e.optsB), `r${e.b}->r${e.a}`),
      ]
    }
    const edges: Edge[] = pairs.map(([a, b]) => {
      const spec = {
        a,
        b,
        optsA: randomOptions(),
        optsB: randomOptions(),
        delayMs: rng.pick([0, 0, 1, 3]),
      }
      const [la, lb] = connect(spec)
      return { ...spec, la, lb, down: false }
    })
    const reopen = (e: Edge) => {
      ;[e.la, e.lb] = connect(e)
      e.down = false
    }

    // Sources: documents linked to no one; raw peers inject their updates.
    const nSources = rng.int(1, 2)
    const sources: TextDoc[] = []
    for (let k = 0; k < nSources; k++) sources.push(new TextDoc(`s${k}`))
    const slices: Slice[] = []
    const sourceStep = (k: number) => {
      const src = sources[k]
      const before = src.version()
      const parts: string[] = []
      if (rng.chance(0.35)) {
        const r = rng.int(0, n - 1)
        src.applyUpdate(docs[r].encodeUpdate(src.version()))
        parts.push(`absorbs r${r}`)
      }
      if (nSources > 1 && rng.chance(0.25)) {
        const o = (k + 1) % nSources
        src.applyUpdate(sources[o].encodeUpdate(src.version()))
        parts.push(`absorbs s${o}`)
      }
      const edits = rng.int(1, 3)
      for (let i = 0; i < edits; i++) parts.push(randomDocEdit(rng, src, ''))
      const id = `s${k}#${slices.filter((s) => s.id.startsWith(`s${k}#`)).length}`
      slices.push({ id, bytes: src.encodeUpdate(before), delivered: false })
      log.push(`${id}: ${parts.join('; ')}`)
    }
    /** A raw peer connects to replica `t`, sends `list` in that order, then leaves. */
    const inject = async (t: number, list: Slice[]) => {
      const [c, rc] = memoryPair({ delayMs: rng.pick([0, 1]) })
      channels.push(c, rc)
      watch(link(docs[t], c, randomOptions()), `r${t}->raw`)
      const raw = new RawPeer(rc)
      raw.hello({})
      for (const s of list) {
        raw.events(s.bytes, {})
        s.delivered = true
      }
      log.push(`raw -> r${t}: ${list.map((s) => s.id).join(' ')}`)
      const linger = rng.pick([0, 0, 5, 40])
      if (linger > 0) await sleep(linger)
      rc.close()
    }

    const steps = rng.int(20, 59)
    for (let step = 0; step < steps; step++) {
      const x = rng.float()
      if (x < 0.25) {
        const r = rng.int(0, n - 1)
        log.push(randomDocEdit(rng, docs[r], `r${r}`))
      } else if (x < 0.45) {
        sourceStep(rng.int(0, nSources - 1))
      } else if (x < 0.65 && slices.length > 0) {
        // A few slices (mostly undelivered, the newest: children first) to one replica.
        const fresh = slices.filter((s) => !s.delivered)
        const pool = fresh.length > 0 && rng.chance(0.8) ? fresh : slices
        const k = rng.int(1, Math.min(4, pool.length))
        let list = pool.slice(-k)
        list = rng.chance(0.5) ? list.reverse() : rng.shuffle(list)
        if (withhold && list.length > 1 && rng.chance(0.5))
          list.splice(rng.int(0, list.length - 1), 1)
        await inject(rng.int(0, n - 1), list)
      } else if (x < 0.75 && slices.length > 1) {
        // The newest chain of slices, children first, each to a different replica at once.
        const fresh = slices.filter((s) => !s.delivered)
        const list = (fresh.length >= 2 ? fresh : slices).slice(-rng.int(2, 4)).reverse()
        await Promise.all(list.map((s) => inject(rng.int(0, n - 1), [s])))
      } else if (x < 0.9) {
        const e = rng.pick(edges)
        if (e.down) {
          reopen(e)
          log.push(`reopen r${e.a}-r${e.b}`)
        } else {
          ;(rng.chance(0.5) ? e.la : e.lb).close()
          e.down = true
          log.push(`close r${e.a}-r${e.b}`)
        }
      } else {
        await sleep(rng.int(0, 59))
      }
      await sleep(rng.int(0, 11))
    }
    // Unless withholding, every slice reaches some replica at the end (children first).
    if (!withhold) {
      const rest = slices.filter((s) => !s.delivered).reverse()
      await Promise.all(rest.map((s) => inject(rng.int(0, n - 1), [s])))
    }
    // Every link up again (also one an error closed).
    for (const e of edges) {
      if (e.down || e.la.closed || e.lb.closed) {
        reopen(e)
        log.push(`reopen r${e.a}-r${e.b} (end)`)
      }
    }
    await sleep(5)

    // The end state: every event a replica holds or was sent (integrated or pending there).
    const ref = new TextDoc(`ref${seed}`)
    for (const s of slices) if (s.delivered) ref.applyUpdate(s.bytes)
    for (const d of docs) ref.applyUpdate(d.encodeUpdate())
    const want = ref.version()
    const wantKey = vvKey(want)
    const wantText = ref.toString()
    const wantPending = ref.pendingCount
    const converged = () =>
      docs.every(
        (d) =>
          vvKey(d.version()) === wantKey &&
          d.toString() === wantText &&
          (wantPending > 0 || d.pendingCount === 0),
      )
    const t0 = Date.now()
    let ok = converged()
    while (!ok && Date.now() - t0 < WAIT_MS) {
      await sleep(10)
      ok = converged()
    }
    const ms = Date.now() - t0

    const problems: string[] = []
    if (!ok) problems.push(`not converged within ${WAIT_MS} ms`)
    if (errors.length > 0) problems.push(`link errors: ${[...new Set(errors)].join(' | ')}`)
    if (asyncErrors.length > 0) problems.push(`async errors: ${asyncErrors.join(' | ')}`)
    if (!withhold && wantPending > 0) {
      problems.push('test bug: the reference has pending events, yet every slice was delivered')
    }
    if (problems.length === 0) return { seed, ms }

    const replicas = docs.map((d, i) => {
      const ends = edges
        .filter((e) => e.a === i || e.b === i)
        .map((e) => {
          const [other, l] = e.a === i ? [e.b, e.la] : [e.a, e.lb]
          return `${other}:${l.closed ? 'closed' : l.tree}`
        })
      const diff = vvDiff(d.version(), want) || 'version ok'
      const text = d.toString() === wantText ? '' : ', text differs'
      return `    r${i}: ${diff}${text}, pending ${d.pendingCount}, links [${ends.join(' ')}]`
    })
    const delivered = slices.filter((s) => s.delivered).length
    const failure = [
      `seed ${seed}: ${problems.join('; ')}`,
      `  n=${n} ${topo} edges ${pairs.map(([a, b]) => `${a}-${b}`).join(',')} tree=${treeMode}` +
        ` withhold=${withhold} slices ${delivered}/${slices.length} delivered,` +
        ` reference pending ${wantPending}`,
      `  want ${wantKey}`,
      ...replicas,
      ...(process.env.FUZZ_TRACE === '1' ? ['  actions:', ...log.map((l) => `    ${l}`)] : []),
    ].join('\n')
    return { seed, ms, failure }
  } finally {
    errorSinks.delete(asyncErrors)
    for (const l of links) l.close()
    for (const c of channels) c.close()
    await sleep(10) // the channels' last deliveries and closes
  }
}

test('orphan events released from the pending buffer reach every replica', async () => {
  const seeds = seedsFromEnv()
  const onUncaught = onAsyncError('uncaught')
  const onRejection = onAsyncError('unhandled rejection')
  process.on('uncaughtException', onUncaught)
  process.on('unhandledRejection', onRejection)
  const started = Date.now()
  const outcomes: Outcome[] = []
  try {
    let next = 0
    const worker = async () => {
      while (next < seeds.length) {
        const seed = seeds[next++]
        try {
          outcomes.push(await trial(seed))
        } catch (e) {
          const msg = e instanceof Error ? (e.stack ?? e.message) : String(e)
          outcomes.push({ seed, ms: 0, failure: `seed ${seed}: threw ${msg}` })
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(PARALLEL, seeds.length) }, worker))
  } finally {
    process.off('uncaughtException', onUncaught)
    process.off('unhandledRejection', onRejection)
  }
  outcomes.sort((x, y) => x.seed - y.seed)
  const failures = outcomes.filter((o) => o.failure !== undefined)
  const slowest = outcomes.reduce((s, o) => (o.failure === undefined && o.ms > s.ms ? o : s), {
    seed: 0,
    ms: 0,
  })
  console.log(
    `  orphans: ${outcomes.length} seeds (${seeds[0]}..${seeds[seeds.length - 1]}) in ` +
      `${Date.now() - started} ms, ${failures.length} failed; slowest convergence ` +
      `${slowest.ms} ms (seed ${slowest.seed})`,
  )
  for (const f of failures) console.log(f.failure)
  assert.equal(strayErrors, [], 'errors while no trial ran')
  assert.equal(
    failures.map((f) => f.seed),
    [],
    `${failures.length} of ${outcomes.length} seeds failed (above); rerun one with ` +
      'ORPHAN_SEEDS=N FUZZ_TRACE=1 npx tsx test/fuzz/orphans.test.ts',
  )
})

test.run()
