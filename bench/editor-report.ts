/**
 * The editor benchmark's tables: percentiles of per-keystroke times, ratios ours/y-prosemirror,
 * the target (p99 under 1 ms, local and remote), a breakdown by keystroke kind, and
 * update sizes. Markdown, printed by the runner and written to bench/editor-results.md.
 *
 * Percentiles are nearest-rank on all counted keystrokes of a run (no averaging across runs).
 */
import type { RunResult, SideSamples } from './editor-harness.ts'

export const OURS = 'polyphony'
export const PEER = 'y-prosemirror'
export const TARGET_MS = 1

/** Nearest-rank percentile of `xs` (p in 0..1). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!
}

interface Stats {
  p50: number
  p95: number
  p99: number
  max: number
  mean: number
}

function stats(xs: readonly number[]): Stats {
  return {
    p50: percentile(xs, 0.5),
    p95: percentile(xs, 0.95),
    p99: percentile(xs, 0.99),
    max: percentile(xs, 1),
    mean: xs.reduce((a, b) => a + b, 0) / xs.length,
  }
}

/** A time in ms with 3 significant digits (µs precision below 1 ms). */
export function ms(x: number): string {
  if (!Number.isFinite(x)) return '–'
  if (x >= 100) return x.toFixed(0)
  if (x >= 10) return x.toFixed(1)
  if (x >= 1) return x.toFixed(2)
  return x.toFixed(3)
}

function ratio(a: number, b: number): string {
  if (!(b > 0) || !Number.isFinite(a)) return '–'
  const r = a / b
  return r >= 10 ? r.toFixed(1) : r >= 0.1 ? r.toFixed(2) : r.toExponential(1)
}

const FIGURES: readonly { key: 'local' | 'remote'; label: string }[] = [
  { key: 'local', label: 'local (dispatch + update)' },
  { key: 'remote', label: 'remote (apply + editor)' },
]

/**
 * The main table: per figure, one row per side with p50/p95/p99/max/mean; on our rows the
 * ratios to y-prosemirror at p50 and p99 and the target (p99 under 1 ms).
 */
export function mainTable(r: RunResult): string {
  const ours = r.samples[OURS]
  const peer = r.samples[PEER]
  const lines = [
    '| figure | side | p50 | p95 | p99 | max | mean | ours/y-pm p50 | ours/y-pm p99 | p99 < 1 ms |',
    '|' + ' --- |'.repeat(10),
  ]
  for (const f of FIGURES) {
    const y = peer ? stats(peer[f.key]) : null
    for (const [side, S] of Object.entries(r.samples)) {
      const st = stats(S[f.key])
      const isOurs = S === ours
      const cells = [st.p50, st.p95, st.p99, st.max, st.mean].map(ms)
      const extra = isOurs
        ? [
            y ? ratio(st.p50, y.p50) : '–',
            y ? ratio(st.p99, y.p99) : '–',
            st.p99 < TARGET_MS ? 'pass' : 'MISS',
          ]
        : ['', '', '']
      const name = side === OURS ? `**${side}**` : side === 'plain' ? 'plain (no binding)' : side
      lines.push(`| ${f.label} | ${name} | ${[...cells, ...extra].join(' | ')} |`)
    }
  }
  return lines.join('\n')
}

/** Median and max per keystroke kind, local and remote, for each side. */
export function kindTable(r: RunResult): string {
  const kinds = [...new Set(r.keys)]
  const sides = Object.keys(r.samples)
  const lines = [
    '| kind | count | ' +
      sides.map((s) => `${s} local p50 / max | ${s} remote p50 / max`).join(' | ') +
      ' |',
    '|' + ' --- |'.repeat(2 + 2 * sides.length),
  ]
  for (const k of kinds) {
    const idx = r.keys.flatMap((x, i) => (x === k ? [i] : []))
    const cells = sides.flatMap((s) => {
      const S: SideSamples = r.samples[s]!
      return (['local', 'remote'] as const).map((f) => {
        const xs = idx.map((i) => S[f][i]!)
        return `${ms(percentile(xs, 0.5))} / ${ms(percentile(xs, 1))}`
      })
    })
    lines.push(`| ${k} | ${idx.length} | ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}

/** Update bytes per keystroke, per side. */
export function bytesLine(r: RunResult): string {
  return Object.entries(r.samples)
    .map(([s, S]) => {
      const mean = S.bytes.reduce((a, b) => a + b, 0) / S.bytes.length
      return `${s} median ${percentile(S.bytes, 0.5)} B, mean ${mean.toFixed(1)} B`
    })
    .join('; ')
}

/** The one-line summary for the console: p99s and ratios. */
export function summary(r: RunResult): string {
  const o = r.samples[OURS]
  const y = r.samples[PEER]
  return FIGURES.map((f) => {
    const op = o ? percentile(o[f.key], 0.99) : NaN
    const yp = y ? percentile(y[f.key], 0.99) : NaN
    return `${f.key} p99 ours ${ms(op)} ms, y-pm ${ms(yp)} ms, ours/y-pm ${ratio(op, yp)}`
  }).join('; ')
}

/** All repetitions' samples together (keystroke kinds repeated alike). */
export function pooled(rs: readonly RunResult[]): RunResult {
  const samples: Record<string, SideSamples> = {}
  for (const name of Object.keys(rs[0]!.samples))
    samples[name] = {
      local: rs.flatMap((r) => r.samples[name]!.local),
      remote: rs.flatMap((r) => r.samples[name]!.remote),
      bytes: rs.flatMap((r) => r.samples[name]!.bytes),
    }
  return { samples, keys: rs.flatMap((r) => r.keys), warmup: rs[0]!.warmup }
}

/**
 * Each keystroke's minimum over the repetitions (the script is deterministic, so keystroke i
 * is the same edit on the same document every time): what a keystroke costs when no other
 * process preempts it. A cost that hits the same keystroke every time (a slow path, a GC the
 * keystroke always triggers) stays.
 */
export function minimum(rs: readonly RunResult[]): RunResult {
  const samples: Record<string, SideSamples> = {}
  for (const name of Object.keys(rs[0]!.samples)) {
    const min = (f: 'local' | 'remote') =>
      rs[0]!.samples[name]![f].map((_, i) => Math.min(...rs.map((r) => r.samples[name]![f][i]!)))
    samples[name] = {
      local: min('local'),
      remote: min('remote'),
      bytes: rs[0]!.samples[name]!.bytes,
    }
  }
  return { samples, keys: rs[0]!.keys, warmup: rs[0]!.warmup }
}
