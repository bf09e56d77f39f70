/**
 * Measuring helpers for the trace benchmark: timing with medians, memory snapshots, and child
 * processes with a time limit (for work that is too slow or too memory-polluting to run in the
 * main process).
 *
 * Invariants: every timed call runs after a full GC (when `--expose-gc` is on) so one
 * engine's garbage is not collected on another's clock (`fullGc`); calls under 5 ms are
 * repeated for 25 ms and averaged (`timeOnce`). Retained memory is read after forced
 * collections (`collectAll`), which free the most. Memory is `heapUsed + external`, where
 * Node's `external` already includes `arrayBuffers` and WebAssembly memory (Loro and
 * Automerge live there), so nothing is left out and nothing is counted twice.
 */
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

type Gc = (options?: {
  type: 'major' | 'minor'
  execution: 'sync' | 'async'
}) => void | Promise<void>
const gc: Gc | undefined = (globalThis as { gc?: Gc }).gc

/**
 * Runs a major GC as V8 runs them (twice, to also collect what finalizers freed). It must be
 * the async form: on Node 20 (V8 11.3) `gc({ type: 'major', execution: 'sync' })` runs a
 * scavenge only (`--trace-gc` shows it), which left old garbage for whoever ran next.
 */
export async function fullGc(): Promise<void> {
  if (gc === undefined) return
  await gc({ type: 'major', execution: 'async' })
  await gc({ type: 'major', execution: 'async' })
}

/**
 * Collects everything that can be (V8's forced collection, twice), before reading retained
 * memory: it also drops caches that a figure of memory kept should not count.
 */
export function collectAll(): void {
  if (gc === undefined) return
  gc()
  gc()
}

/** True when `--expose-gc` is on (heap figures need it). */
export const canGc = gc !== undefined

/** Bytes in use by this process's JS heap plus everything outside it that JS objects hold. */
export function memoryInUse(): number {
  const u = process.memoryUsage()
  return u.heapUsed + u.external
}

/** A timed call shorter than this is repeated (see `timeOnce`). */
const SHORT_MS = 5
/** How long the repetitions of a short call run together. */
const BATCH_MS = 25

/**
 * Milliseconds taken by `fn` (after a GC, which is not timed) and what its first call
 * returned. A call under `SHORT_MS` is repeated until the calls together took `BATCH_MS`,
 * and the figure is their mean: a sub-millisecond figure then measures the operation, not
 * the timer or what the first call after a full GC pays once (native zlib's first stream
 * after one takes 0.1-0.4 ms to set up, against 0.05 when warm).
 */
export async function timeOnce<T>(fn: () => T): Promise<{ ms: number; value: T }> {
  await fullGc()
  const t0 = performance.now()
  const value = fn()
  const ms = performance.now() - t0
  if (ms >= SHORT_MS) return { ms, value }
  let calls = 1
  while (performance.now() - t0 < BATCH_MS) {
    fn()
    calls++
  }
  return { ms: (performance.now() - t0) / calls, value }
}

/** The median of a non-empty list of numbers. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of an empty list')
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

/** A measured figure: the median and how many runs it came from, or why there is none. */
export type Cell = { kind: 'ok'; value: number; runs: number } | { kind: 'none'; reason: string }

export const none = (reason: string): Cell => ({ kind: 'none', reason })
export const okCell = (values: readonly number[]): Cell => ({
  kind: 'ok',
  value: median(values),
  runs: values.length,
})

/**
 * Times several contestants interleaved: run r times each contestant once, in an order
 * rotated per run, so drift (thermal, JIT, GC pressure) spreads over all of them. A
 * contestant whose runs so far add up past `budgetMs` stops early (at least one run).
 * `check` validates the first run's result (outside the timing) and throws if it is wrong.
 * When that first run took under a second (and runs > 1) it starts an untimed warm-up, repeated
 * until the warm-up took 0.5 s or 20 runs (each trace runs in a fresh process, where nothing
 * else warmed the code); slower first runs are kept as samples (JIT warm-up is a small part).
 */
export async function interleaved<T>(
  contestants: readonly { name: string; run: () => T; check?: (value: T) => void }[],
  runs: number,
  budgetMs: number,
): Promise<Map<string, Cell>> {
  const times = new Map<string, number[]>(contestants.map((c) => [c.name, []]))
  const checked = new Set<string>()
  for (let r = 0; r <= runs; r++) {
    for (let k = 0; k < contestants.length; k++) {
      const c = contestants[(k + r) % contestants.length]
      const list = times.get(c.name)!
      if (list.length >= runs) continue
      if (list.length > 0 && list.reduce((a, b) => a + b, 0) > budgetMs) continue
      const { ms, value } = await timeOnce(c.run)
      if (!checked.has(c.name)) {
        checked.add(c.name)
        c.check?.(value)
        // A quick first run starts a warm-up (JIT, WebAssembly tiers), untimed.
        if (ms < WARMUP_MAX_MS && runs > 1) {
          warmUp(c.run, ms)
          continue
        }
      }
      list.push(ms)
    }
  }
  return new Map([...times].map(([name, list]) => [name, okCell(list)]))
}

const WARMUP_MAX_MS = 1000
/** A warm-up repeats a quick run until its runs took this long, or this many runs. */
const WARMUP_MS = 500
const WARMUP_RUNS = 20

function warmUp(run: () => unknown, firstMs: number): void {
  let spent = firstMs
  for (let n = 1; n < WARMUP_RUNS && spent < WARMUP_MS; n++) {
    const t0 = performance.now()
    run()
    spent += performance.now() - t0
  }
}

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))

/**
 * Like {@link runChild}, but a failing child (an engine that crashes or runs out of memory)
 * resolves `{ failed }` with the first line of its error instead of rejecting.
 */
export async function runChildSafe(
  script: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<
  { timedOut: true } | { timedOut: false; failed: string } | { timedOut: false; result: any }
> {
  try {
    return await runChild(script, args, timeoutMs)
  } catch (e) {
    const msg = String((e as Error).message)
    const line = msg.split('\n').find((l) => /Error:/.test(l) && !l.includes('exited with')) ?? msg
    return { timedOut: false, failed: line.replace(/^.*?Error: /, '').slice(0, 80) }
  }
}

/**
 * Runs `bench/<script>` in a fresh Node (with `--expose-gc` and tsx) and parses the JSON it
 * prints on its last stdout line. Resolves `{ timedOut: true }` when it takes longer than
 * `timeoutMs` (the child is killed), and rejects when it fails.
 */
export function runChild(
  script: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ timedOut: true } | { timedOut: false; result: any }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', join(BENCH_DIR, script), ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    let err = ''
    let timedOut = false
    child.stdout.on('data', (b) => (out += b))
    child.stderr.on('data', (b) => (err += b))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      if (timedOut) return resolve({ timedOut: true })
      if (code !== 0) {
        return reject(new Error(`${script} ${args.join(' ')} exited with ${code}: ${err.trim()}`))
      }
      const lines = out.trim().split('\n')
      try {
        resolve({ timedOut: false, result: JSON.parse(lines[lines.length - 1]) })
      } catch {
        reject(new Error(`${script} ${args.join(' ')} printed no JSON result: ${out}${err}`))
      }
    })
  })
}
