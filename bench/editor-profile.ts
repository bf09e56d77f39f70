/**
 * Summarises a V8 CPU profile (Chrome DevTools protocol `Profiler.stop`, or a `.cpuprofile`
 * from `node --cpu-prof`): where the time of one side's run goes, by function.
 *
 * Self time: samples whose top frame is the function. Total time: samples with the function
 * anywhere on the stack, counted once per sample (recursion does not double count). Both as a
 * share of the busy samples (idle, program and GC reported apart). Functions are keyed by
 * name and source location, so the report names them as the bundle or the source does.
 * `locate` names a function's place from its script URL and 0-based line (the runner maps bundle
 * lines to the bundled module; anonymous functions also show their script line). `within` keeps only the samples whose stack (function names, innermost first) it accepts:
 * the runner uses it to split the timed local dispatches from the remote deliveries.
 */

export interface CpuProfile {
  nodes: {
    id: number
    callFrame: { functionName: string; url: string; lineNumber: number }
    children?: number[]
  }[]
  samples: number[]
}

export interface ProfileRow {
  fn: string
  self: number
  total: number
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)'])

/** Top functions by self and by total time, as shares of busy samples (0..1). */
export function summarizeProfile(
  p: CpuProfile,
  top = 15,
  within: (names: readonly string[]) => boolean = () => true,
  locate: (url: string, line: number) => string = (url) => url.split('/').pop() ?? '',
): { bySelf: ProfileRow[]; byTotal: ProfileRow[]; busy: number; idle: number; gc: number } {
  const parent = new Map<number, number>()
  const key = new Map<number, string>()
  const name = new Map<number, string>()
  for (const n of p.nodes) {
    name.set(n.id, n.callFrame.functionName)
    for (const c of n.children ?? []) parent.set(c, n.id)
    const f = n.callFrame
    const where = locate(f.url, f.lineNumber)
    key.set(
      n.id,
      SPECIAL.has(f.functionName)
        ? f.functionName
        : f.functionName === ''
          ? `(anonymous) ${where} @${f.lineNumber + 1}`
          : `${f.functionName} ${where}`,
    )
  }
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  let busy = 0
  let idle = 0
  let gc = 0
  for (const id of p.samples) {
    const k = key.get(id)!
    if (k === '(idle)' || k === '(program)') {
      idle++
      continue
    }
    const names: string[] = []
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n))
      names.push(name.get(n)!)
    if (!within(names)) continue
    if (k === '(garbage collector)') gc++
    busy++
    self.set(k, (self.get(k) ?? 0) + 1)
    const seen = new Set<string>()
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const kk = key.get(n)!
      if (kk === '(root)' || seen.has(kk)) continue
      seen.add(kk)
      total.set(kk, (total.get(kk) ?? 0) + 1)
    }
  }
  const rows = [...total.keys()].map((fn) => ({
    fn,
    self: (self.get(fn) ?? 0) / busy,
    total: total.get(fn)! / busy,
  }))
  return {
    bySelf: [...rows].sort((a, b) => b.self - a.self).slice(0, top),
    byTotal: [...rows].sort((a, b) => b.total - a.total).slice(0, top),
    busy,
    idle,
    gc,
  }
}

/** The summary as a markdown table. */
export function profileTable(rows: readonly ProfileRow[]): string {
  const pct = (x: number) => (100 * x).toFixed(1) + ' %'
  return [
    '| function | self | total |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| \`${r.fn.replace(/\|/g, '\\|')}\` | ${pct(r.self)} | ${pct(r.total)} |`),
  ].join('\n')
}

/**
 * Maps lines of an unminified esbuild bundle to the module they come from (esbuild starts each
 * module with a `// path` comment): `locate(url, line)` for `summarizeProfile`. Packages are
 * named by package (`prosemirror-view`), our files by path (`shared/rich-doc.ts`).
 */
export function bundleLocator(js: string): (url: string, line: number) => string {
  const starts: [number, string][] = []
  js.split('\n').forEach((l, i) => {
    const m = /^\/\/ (\S+\.(?:ts|js|mjs|cjs))$/.exec(l)
    if (m) starts.push([i, m[1]!])
  })
  return (url, line) => {
    if (!url.endsWith('.js') || starts.length === 0) return url.split('/').pop() ?? ''
    let lo = 0
    for (let hi = starts.length - 1; lo < hi;) {
      const mid = (lo + hi + 1) >> 1
      if (starts[mid]![0] <= line) lo = mid
      else hi = mid - 1
    }
    const path = starts[lo]![1]
    const pkg = /^node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path)
    if (!pkg) return path
    const rest = pkg[2]!.replace(/^(dist|src)\//, '')
    return /^(index|[^/]*\.m?js)$/.test(rest) && !rest.includes('plugin')
      ? pkg[1]!
      : `${pkg[1]}/${rest}`
  }
}
