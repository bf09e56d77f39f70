/**
 * `npm run bench`: Polyphony's TextDoc against Yjs, Automerge and Loro (and a plain string
 * floor) on the public editing traces. Prints one table per figure and writes bench/RESULTS.md.
 *
 * Figures: local replay (sequential traces), per-agent replay (concurrent traces), merge of a
 * whole history into an empty replica, saved size, load + toString, memory retained after load.
 * Each trace runs in a fresh process of its own (so no trace's figures depend on which traces
 * ran before it), where ours, Yjs, Loro and the string run interleaved, median of --runs.
 * Automerge runs in a child process per trace under a time limit (it needs minutes on some
 * traces), with fewer runs when slow; memory is measured in a fresh child per engine and trace.
 *
 * Flags: --trace NAME (one trace), --runs N (default 5), --quick (small traces, 3 runs),
 * --big (also node_nodecc and git-makefile per-agent: minutes each), --timeout S (per child,
 * default 60), --no-automerge, --out FILE (default bench/RESULTS.md for full runs only).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  concurrentContestant,
  loadContestant,
  mergeContestants,
  replicaDoc,
  sequentialContestant,
  type Contestant,
} from './figures.ts'
import { canGc, interleaved, none, okCell, runChild, runChildSafe, type Cell } from './measure.ts'
import { PEERS, replayPlainString } from './peers.ts'
import { renderHeader, renderTables, type TraceResult } from './report.ts'
import {
  listTraces,
  loadConcurrent,
  loadSequential,
  replayString,
  tracesDir,
} from '../test/support/traces.ts'

const BIG_CONCURRENT = new Set(['node_nodecc', 'git-makefile'])
const QUICK_SKIP = new Set(['automerge-paper', 'seph-blog1', 'egwalker', 'rustcode'])
/** Plain splice re-flattens the whole string per patch: ~50 s on egwalker's 2.3M chars. */
const CHUNKED_FLOOR = new Set(['egwalker'])

interface Options {
  trace?: string
  runs: number
  quick: boolean
  big: boolean
  timeoutMs: number
  automerge: boolean
  out?: string
  /** Internal: bench the one `--trace` here and print its result as JSON (a per-trace child). */
  oneJson: boolean
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    runs: 5,
    quick: false,
    big: false,
    timeoutMs: 60_000,
    automerge: true,
    oneJson: false,
  }
  let runsGiven = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--trace') o.trace = next()
    else if (a === '--runs') {
      o.runs = Number(next())
      runsGiven = true
      if (!(Number.isInteger(o.runs) && o.runs >= 1)) throw new Error('--runs needs an integer ≥ 1')
    } else if (a === '--quick') o.quick = true
    else if (a === '--big') o.big = true
    else if (a === '--timeout') o.timeoutMs = Number(next()) * 1000
    else if (a === '--no-automerge') o.automerge = false
    else if (a === '--out') o.out = next()
    else if (a === '--one-json') o.oneJson = true
    else throw new Error(`unknown flag ${a} (see the header of bench/traces.ts)`)
  }
  if (o.quick && !runsGiven) o.runs = 3
  return o
}

/** Automerge's budget per figure (its child also has the --timeout limit). */
const AUTOMERGE_BUDGET_MS = 5_000

/** A trace's own process (every engine and figure) is killed after this long. */
const TRACE_CHILD_TIMEOUT_MS = 30 * 60_000

/** Budget per contestant and figure: stop repeating once its runs add up past this. */
const BUDGET_MS = 12_000

async function automergeInChild(
  kind: 'seq' | 'conc',
  name: string,
  o: Options,
  tmp: string,
  r: TraceResult,
): Promise<string | undefined> {
  const file = join(tmp, `automerge-${name}.bin`)
  const res = await runChildSafe(
    'peer-child.ts',
    ['automerge', kind, name, String(o.runs), String(AUTOMERGE_BUDGET_MS), file],
    o.timeoutMs,
  )
  if (res.timedOut) {
    const why = `> ${o.timeoutMs / 1000} s`
    for (const fig of [r.replay, r.merge, r.save, r.load, r.heap]) fig.automerge = none(why)
    r.notes.push(
      `Automerge did not finish replay + merge + load in ${o.timeoutMs / 1000} s (killed).`,
    )
    return undefined
  }
  if ('failed' in res) {
    for (const fig of [r.replay, r.merge, r.save, r.load, r.heap]) fig.automerge = none('failed')
    r.notes.push(`Automerge failed: ${res.failed}`)
    return undefined
  }
  const { replay, merges, saveSize, load } = res.result
  r.replay.automerge = replay
  r.merge.automerge = merges[0].cell
  r.mergeSize.automerge = merges[0].size
  r.save.automerge = okCell([saveSize])
  r.load.automerge = load
  return file
}

async function heapFigures(files: Map<string, string>, o: Options, r: TraceResult): Promise<void> {
  if (!canGc) {
    for (const name of files.keys()) r.heap[name] = none('needs --expose-gc')
    return
  }
  for (const [name, file] of files) {
    const res = await runChildSafe('heap-child.ts', [name, file], o.timeoutMs)
    if (res.timedOut) r.heap[name] = none('timeout')
    else if ('failed' in res) r.heap[name] = none(`failed: ${res.failed}`)
    else r.heap[name] = okCell([res.result.retained])
  }
}

async function benchTrace(kind: 'seq' | 'conc', name: string, o: Options, tmp: string) {
  const r: TraceResult = {
    name,
    kind: kind === 'seq' ? 'sequential' : 'concurrent',
    ...{ replay: {}, merge: {}, mergeSize: {}, save: {}, load: {}, heap: {} },
    notes: [],
  }
  const inProcess = PEERS.filter((p) => p.name !== 'automerge')
  const docs = new Map<string, any>()
  const keep = <T>(peerName: string, c: Contestant<T>): Contestant<T> => ({
    ...c,
    run: () => {
      const v = c.run()
      docs.set(peerName, v)
      return v
    },
  })

  // Replay, interleaved.
  const contestants: Contestant<any>[] = []
  if (kind === 'seq') {
    const trace = loadSequential(name)
    for (const p of inProcess) contestants.push(keep(p.name, sequentialContestant(p, trace)))
    const floor = CHUNKED_FLOOR.has(name) ? replayString : replayPlainString
    contestants.push({
      name: 'string',
      run: () => floor(trace),
      check: (s: string) => {
        if (s !== trace.endContent) throw new Error(`string replay of ${name} is wrong`)
      },
    })
    if (CHUNKED_FLOOR.has(name)) r.notes.push('String floor: chunked string (1-2K chunks).')
  } else {
    const trace = loadConcurrent(name)
    for (const p of inProcess) contestants.push(keep(p.name, concurrentContestant(p, trace)))
  }
  for (const [k, cell] of await interleaved(contestants, o.runs, BUDGET_MS)) r.replay[k] = cell

  // Merge into an empty replica, interleaved.
  const merges: Contestant<any>[] = []
  for (const p of inProcess) {
    const doc = kind === 'seq' ? docs.get(p.name) : replicaDoc(p, docs.get(p.name))
    docs.set(p.name, doc)
    const m = mergeContestants(p, doc)
    merges.push(...m.contestants)
    for (const [k, size] of m.sizes) r.mergeSize[k] = size
  }
  for (const [k, cell] of await interleaved(merges, o.runs, BUDGET_MS)) {
    r.merge[k === 'yjs:v1 update' ? 'yjs v1' : k === 'yjs:v2 update' ? 'yjs v2' : k.split(':')[0]] =
      cell
  }

  // Save sizes and load, interleaved.
  const files = new Map<string, string>()
  const loads: Contestant<any>[] = []
  for (const p of inProcess) {
    const doc = docs.get(p.name)
    const bytes = p.save(doc)
    const file = join(tmp, `${p.name}-${name}.bin`)
    writeFileSync(file, bytes)
    files.set(p.name, file)
    r.save[p.name === 'yjs' ? 'yjs v2' : p.name] = okCell([bytes.byteLength])
    loads.push(loadContestant(p, bytes, p.text(doc)))
  }
  r.save['yjs v1'] = okCell([r.mergeSize['yjs:v1 update']])
  for (const [k, cell] of await interleaved(loads, o.runs, BUDGET_MS)) r.load[k] = cell
  docs.clear()

  if (o.automerge) {
    const file = await automergeInChild(kind, name, o, tmp, r)
    if (file) files.set('automerge', file)
  } else {
    for (const fig of [r.replay, r.merge, r.save, r.load, r.heap]) fig.automerge = none('not run')
  }
  await heapFigures(files, o, r)
  return r
}

/** The big concurrent traces: each engine once, alone, in a child under the time limit. */
async function benchBigConcurrent(name: string, o: Options, tmp: string): Promise<TraceResult> {
  const r: TraceResult = {
    name,
    kind: 'concurrent',
    ...{ replay: {}, merge: {}, mergeSize: {}, save: {}, load: {}, heap: {} },
    notes: [
      `${name}: each engine run once, alone in a child process (per-agent replay is minutes).`,
    ],
  }
  const files = new Map<string, string>()
  for (const p of PEERS) {
    if (p.name === 'automerge' && !o.automerge) {
      for (const fig of [r.replay, r.merge, r.save, r.load, r.heap]) fig.automerge = none('not run')
      continue
    }
    const file = join(tmp, `${p.name}-${name}.bin`)
    const res = await runChildSafe(
      'peer-child.ts',
      [p.name, 'conc', name, '1', '1', file],
      o.timeoutMs,
    )
    if (res.timedOut) {
      const why = none(`> ${o.timeoutMs / 1000} s`)
      for (const fig of [r.replay, r.merge, r.save, r.load, r.heap]) fig[p.name] = why
      if (p.name === 'yjs')
        r.merge['yjs v1'] = r.merge['yjs v2'] = r.save['yjs v1'] = r.save['yjs v2'] = why
      r.notes.push(
        `${p.name} did not finish the per-agent replay in ${o.timeoutMs / 1000} s (killed).`,
      )
      continue
    }
    if ('failed' in res) {
      const why = none('failed')
      for (const fig of [r.replay, r.merge, r.save, r.load, r.heap]) fig[p.name] = why
      if (p.name === 'yjs')
        r.merge['yjs v1'] = r.merge['yjs v2'] = r.save['yjs v1'] = r.save['yjs v2'] = why
      r.notes.push(`${p.name} failed: ${res.failed}`)
      continue
    }
    const { replay, merges, saveSize, load } = res.result
    r.replay[p.name] = replay
    for (const m of merges) {
      const key =
        m.name === 'yjs:v1 update' ? 'yjs v1' : m.name === 'yjs:v2 update' ? 'yjs v2' : p.name
      r.merge[key] = m.cell
      if (key === 'yjs v1') r.save['yjs v1'] = okCell([m.size])
    }
    r.save[p.name === 'yjs' ? 'yjs v2' : p.name] = okCell([saveSize])
    r.load[p.name] = load
    files.set(p.name, file)
  }
  await heapFigures(files, o, r)
  return r
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  if (tracesDir() === null) throw new Error('editing traces not found (set POLYPHONY_TRACES)')
  if (!canGc)
    console.warn('warning: run with node --expose-gc (npm run bench does) for memory figures')
  const { sequential, concurrent } = listTraces()
  let seq = sequential.filter((n) => !(o.quick && QUICK_SKIP.has(n)))
  let conc = concurrent.filter((n) => o.big || !BIG_CONCURRENT.has(n))
  if (o.trace !== undefined) {
    seq = sequential.filter((n) => n === o.trace)
    conc = concurrent.filter((n) => n === o.trace)
    if (seq.length + conc.length === 0) throw new Error(`no trace named ${o.trace}`)
  }
  if (o.oneJson) {
    if (o.trace === undefined) throw new Error('--one-json needs --trace')
    const tmp = mkdtempSync(join(tmpdir(), 'polyphony-bench-'))
    try {
      const r =
        seq.length > 0
          ? await benchTrace('seq', o.trace, o, tmp)
          : BIG_CONCURRENT.has(o.trace)
            ? await benchBigConcurrent(o.trace, o, tmp)
            : await benchTrace('conc', o.trace, o, tmp)
      console.log(JSON.stringify(r))
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
    return
  }
  const results: TraceResult[] = []
  const t0 = Date.now()
  const passOn = ['--runs', String(o.runs), '--timeout', String(o.timeoutMs / 1000)]
  if (!o.automerge) passOn.push('--no-automerge')
  for (const [kind, names] of [
    ['sequential', seq],
    ['concurrent', conc],
  ] as const) {
    for (const name of names) {
      console.error(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${kind} ${name}`)
      const res = await runChild(
        'traces.ts',
        ['--trace', name, ...passOn, '--one-json'],
        TRACE_CHILD_TIMEOUT_MS,
      )
      if (res.timedOut) throw new Error(`trace ${name} took over ${TRACE_CHILD_TIMEOUT_MS} ms`)
      results.push(res.result as TraceResult)
    }
  }
  const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`
  const notes = results.flatMap((r) => r.notes.map((n) => `- ${r.name}: ${n}`))
  const text = [
    renderHeader(command, o.runs),
    renderTables(results, o.runs),
    notes.length ? '### Notes\n\n' + notes.join('\n') + '\n' : '',
    `Total bench time: ${((Date.now() - t0) / 1000).toFixed(0)} s.`,
    '',
  ].join('\n')
  console.log(text)
  const full = o.trace === undefined && !o.quick
  const out =
    o.out ?? (full ? join(dirname(fileURLToPath(import.meta.url)), 'RESULTS.md') : undefined)
  if (out) {
    writeFileSync(out, text)
    console.error(`written to ${out}`)
  }
}

await main()
