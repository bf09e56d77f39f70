/**
 * Tables of the trace benchmark: one Markdown table per figure (rows = traces, columns = our
 * figure, each peer's figure and the ratio ours/peer), the issue's targets with pass/miss per
 * line, and the RESULTS.md header (machine, Node, peers' versions, date).
 *
 * Invariants: a missing figure shows why ("timeout > 90 s", "not run"); a median over fewer
 * runs than asked shows its run count; ratios are only printed between two measured figures.
 */
import { readFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Cell } from './measure.ts'

/** All figures measured on one trace. Keys are engine names ('yjs v2' for variants). */
export interface TraceResult {
  name: string
  kind: 'sequential' | 'concurrent'
  replay: Record<string, Cell>
  merge: Record<string, Cell>
  mergeSize: Record<string, number>
  save: Record<string, Cell>
  load: Record<string, Cell>
  heap: Record<string, Cell>
  notes: string[]
}

export const OURS = 'polyphony'
export const PEER_NAMES = ['yjs', 'automerge', 'loro'] as const

function fmtMs(ms: number): string {
  if (ms < 10) return ms.toFixed(2)
  if (ms < 100) return ms.toFixed(1)
  return ms.toFixed(0)
}

function fmtBytes(b: number): string {
  if (b < 10_000) return `${b} B`
  if (b < 10_000_000) return `${(b / 1024).toFixed(1)} KiB`
  return `${(b / 1048576).toFixed(1)} MiB`
}

function fmtCell(cell: Cell | undefined, fmt: (v: number) => string, runs: number): string {
  if (cell === undefined) return '–'
  if (cell.kind === 'none') return `– (${cell.reason})`
  return runs > 0 && cell.runs < runs ? `${fmt(cell.value)} (${cell.runs}×)` : fmt(cell.value)
}

function val(cell: Cell | undefined): number | undefined {
  return cell !== undefined && cell.kind === 'ok' ? cell.value : undefined
}

function ratio(ours: Cell | undefined, peer: Cell | undefined): string {
  const a = val(ours)
  const b = val(peer)
  if (a === undefined || b === undefined || b === 0) return ''
  const r = a / b
  return r < 0.01 ? r.toExponential(1) : r.toFixed(r < 1 ? 3 : 2)
}

/** A target on one line: pass/miss, or '?' when a figure it needs is missing. */
type Target = (r: TraceResult) => string

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? '?' : ok ? 'pass' : 'MISS'
}

function fastestPeer(cells: Record<string, Cell>): number | undefined {
  const vs = PEER_NAMES.map((p) => val(cells[p])).filter((v): v is number => v !== undefined)
  return vs.length ? Math.min(...vs) : undefined
}

const replayTarget: Target = (r) => {
  const ours = val(r.replay[OURS])
  const best = fastestPeer(r.replay)
  return verdict(ours === undefined || best === undefined ? undefined : ours <= 0.25 * best)
}

const mergeTarget: Target = (r) => {
  const ours = val(r.merge[OURS])
  const ys = [val(r.merge['yjs v1']), val(r.merge['yjs v2'])].filter((v) => v !== undefined)
  const lo = val(r.merge.loro)
  if (ours === undefined || ys.length === 0 || lo === undefined) return '?'
  const vsYjs = ours <= Math.min(...(ys as number[]))
  const vsLoro = ours <= 0.1 * lo
  return `${verdict(vsYjs)} / ${verdict(vsLoro)}`
}

const vsTarget =
  (figure: keyof TraceResult, peer: string, factor: number): Target =>
  (r) => {
    const cells = r[figure] as Record<string, Cell>
    const ours = val(cells[OURS])
    const p = val(cells[peer])
    return verdict(ours === undefined || p === undefined ? undefined : ours <= factor * p)
  }

interface Section {
  title: string
  figure: 'replay' | 'merge' | 'save' | 'load' | 'heap'
  columns: string[]
  fmt: (v: number) => string
  target: { label: string; fn: Target }
  kinds: ('sequential' | 'concurrent')[]
}

const SECTIONS: Section[] = [
  {
    title: 'Local replay of sequential traces (ms)',
    figure: 'replay',
    columns: ['yjs', 'automerge', 'loro', 'string'],
    fmt: fmtMs,
    target: { label: '≤ 0.25 × fastest peer', fn: replayTarget },
    kinds: ['sequential'],
  },
  {
    title: 'Concurrent traces, one replica per agent (ms)',
    figure: 'replay',
    columns: ['yjs', 'automerge', 'loro'],
    fmt: fmtMs,
    target: { label: '≤ 0.25 × fastest peer', fn: replayTarget },
    kinds: ['concurrent'],
  },
  {
    title: 'Merge of the whole history into an empty replica (ms, text included)',
    figure: 'merge',
    columns: ['yjs v1', 'yjs v2', 'automerge', 'loro'],
    fmt: fmtMs,
    target: { label: '≤ Yjs / ≤ 0.1 × Loro', fn: mergeTarget },
    kinds: ['sequential', 'concurrent'],
  },
  {
    title: 'Saved size (ours: save() with full history)',
    figure: 'save',
    columns: ['yjs v2', 'yjs v1', 'automerge', 'loro'],
    fmt: fmtBytes,
    target: { label: '≤ Yjs v2', fn: vsTarget('save', 'yjs v2', 1) },
    kinds: ['sequential', 'concurrent'],
  },
  {
    title: 'Load of the saved document + toString (ms)',
    figure: 'load',
    columns: ['yjs', 'automerge', 'loro'],
    fmt: fmtMs,
    target: { label: '≤ Loro', fn: vsTarget('load', 'loro', 1) },
    kinds: ['sequential', 'concurrent'],
  },
  {
    title: 'Memory retained by the loaded document (heapUsed + external, fresh process)',
    figure: 'heap',
    columns: ['yjs', 'automerge', 'loro'],
    fmt: fmtBytes,
    target: { label: '≤ 0.25 × Yjs', fn: vsTarget('heap', 'yjs', 0.25) },
    kinds: ['sequential', 'concurrent'],
  },
]

/** The Markdown tables for every figure, and a pass/miss count per target. */
export function renderTables(results: readonly TraceResult[], runs: number): string {
  const out: string[] = []
  for (const s of SECTIONS) {
    const rows = results.filter((r) => s.kinds.includes(r.kind))
    if (rows.length === 0) continue
    const head = ['trace', OURS]
    for (const c of s.columns) head.push(c, ...(c === 'string' ? [] : [`ours/${c}`]))
    head.push(s.target.label)
    out.push(
      `### ${s.title}`,
      '',
      `| ${head.join(' | ')} |`,
      `|${head.map(() => '---').join('|')}|`,
    )
    let pass = 0
    let miss = 0
    for (const r of rows) {
      const cells = r[s.figure]
      const n = s.fmt === fmtMs ? runs : 0 // sizes are measured once: no run count
      const line = [r.name, fmtCell(cells[OURS], s.fmt, n)]
      for (const c of s.columns) {
        line.push(fmtCell(cells[c], s.fmt, n))
        if (c !== 'string') line.push(ratio(cells[OURS], cells[c]))
      }
      const v = s.target.fn(r)
      pass += (v.match(/pass/g) ?? []).length
      miss += (v.match(/MISS/g) ?? []).length
      line.push(v)
      out.push(`| ${line.join(' | ')} |`)
    }
    out.push('', `Target ${s.target.label}: ${pass} pass, ${miss} miss.`, '')
  }
  return out.join('\n')
}

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Installed version of an npm package (from its package.json). */
function versionOf(pkg: string): string {
  try {
    return JSON.parse(readFileSync(join(REPO, 'node_modules', pkg, 'package.json'), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

/** The RESULTS.md header: date, machine, Node, peers' versions and how the run was made. */
export function renderHeader(command: string, runs: number): string {
  const cpu = cpus()
  return [
    '# Trace benchmark results',
    '',
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${cpu.length} cores, ${cpu[0]?.model ?? 'unknown CPU'}, ${process.platform} ${process.arch}`,
    `- Node ${process.version}; load average at the end ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} (other processes share these cores: see the README on noise)`,
    `- Peers: yjs ${versionOf('yjs')}, @automerge/automerge ${versionOf('@automerge/automerge')}, loro-crdt ${versionOf('loro-crdt')}`,
    `- Command: \`${command}\`; medians of ${runs} runs unless a cell says (n×)`,
    '',
  ].join('\n')
}
