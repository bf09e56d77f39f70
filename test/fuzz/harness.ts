/**
 * Seeds, time budgets and failure reports shared by the fuzzers (STYLE.md item 8).
 *
 * Owns: reading `FUZZ_SEED` / `FUZZ_MS`, running cases with fresh seeds until a budget is
 * spent, and turning a failing case into an Error that names its seed and the one command
 * that replays it; and each case's `save()` elision and history-chunking settings.
 *
 * - `FUZZ_SEED=N`: run exactly the case with seed N, once (replay).
 * - `FUZZ_MS=N`: the total time budget of all fuzzers, in ms (default 20000 under
 *   `npm test`, split between the fuzz test files by their `share`).
 * - `FUZZ_STEPS=N`: run only the first N steps of each case (the same steps as the full
 *   case, since the step count is drawn first): shrink a failing seed by lowering N.
 * - `FUZZ_TRACE=1`: a failure prints every step of the case, not the last 25.
 */
import { type Rng, seedFromEnv } from '../support/rng.ts'
import { elision, historyChunking } from '../../shared/text-doc.ts'

/** Default total budget of the fuzzers in `npm test`. */
export const DEFAULT_FUZZ_MS = 20_000

/**
 * Half the cases elide the text of every deleted character in `save()` (the defaults only do
 * so for documents bigger than a fuzz case makes): the other half keep the defaults. Half,
 * drawn apart, keep their saved history's chunks from the first event (the default only from
 * 4,096), so saves after saves and loads encode only what is new.
 */
export function pickElision(rng: Rng): void {
  const all = rng.chance(0.5)
  elision.from = all ? 1 : 64
  elision.minStretch = all ? 1 : 8
  historyChunking.keepFrom = rng.chance(0.5) ? 0 : 4096
}

/** `FUZZ_STEPS` as a number of steps, or undefined when unset. */
export function stepsFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.FUZZ_STEPS
  if (raw === undefined || raw === '') return undefined
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`FUZZ_STEPS must be a non-negative integer, got ${JSON.stringify(raw)}`)
  }
  return n
}

/** What one fuzz case reports back (for progress lines). */
export interface CaseStats {
  steps: number
}

/** A fuzz case: deterministic given its seed; throws on failure. */
export type FuzzCase = (seed: number) => CaseStats

/** Summary of a fuzz run. */
export interface RunSummary {
  cases: number
  steps: number
  ms: number
  seeds: number[]
}

/** The budget for one fuzzer taking `share` of `FUZZ_MS` (or of the default). */
export function budgetMs(share: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FUZZ_MS
  let total = DEFAULT_FUZZ_MS
  if (raw !== undefined && raw !== '') {
    total = Number(raw)
    if (!Number.isFinite(total) || total < 0) {
      throw new RangeError(
        `FUZZ_MS must be a non-negative number of ms, got ${JSON.stringify(raw)}`,
      )
    }
  }
  return Math.round(total * share)
}

/** The command that replays one case of a fuzz test file. */
export function replayCommand(file: string, seed: number): string {
  return `FUZZ_SEED=${seed} npx tsx ${file}`
}

/**
 * Runs `oneCase` with `seed` and rethrows any failure as an Error whose message starts
 * with the seed and the replay command (the original error is kept as `cause`).
 */
export function runCase(name: string, file: string, oneCase: FuzzCase, seed: number): CaseStats {
  try {
    return oneCase(seed)
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e)
    const err = new Error(
      `${name} failed with seed ${seed}\n  replay: ${replayCommand(file, seed)}\n  ${msg}`,
      { cause: e },
    )
    // the innermost cause has the frames where it was really thrown
    let root: unknown = e
    while (root instanceof Error && root.cause instanceof Error) root = root.cause
    if (root instanceof Error && root.stack) {
      const frames = root.stack.split('\n').filter((l) => /^\s+at /.test(l))
      err.stack = `${err.message}\n  where it was thrown:\n${frames.slice(0, 12).join('\n')}`
    }
    throw err
  }
}

/**
 * Runs the fuzzer: with `FUZZ_SEED` set, that one case; else cases with fresh seeds until
 * `ms` is spent (at least one case). Throws on the first failing case.
 */
export function runFuzz(
  name: string,
  file: string,
  oneCase: FuzzCase,
  ms: number,
  env: NodeJS.ProcessEnv = process.env,
): RunSummary {
  const start = Date.now()
  const summary: RunSummary = { cases: 0, steps: 0, ms: 0, seeds: [] }
  const fixed = env.FUZZ_SEED !== undefined && env.FUZZ_SEED !== ''
  do {
    const seed = seedFromEnv(env)
    const stats = runCase(name, file, oneCase, seed)
    summary.cases++
    summary.steps += stats.steps
    if (summary.seeds.length < 1000) summary.seeds.push(seed)
    if (fixed) break
  } while (Date.now() - start < ms)
  summary.ms = Date.now() - start
  return summary
}
