/**
 * Long fuzzing run (`npm run test:fuzz`): the differential and convergence fuzzers with
 * fresh seeds, alternating, for FUZZ_MS in total (default 10 minutes), printing progress
 * every few seconds. Stops at the first failure, printing its seed and replay command, and
 * exits with code 1. `FUZZ_SEED=N` replays seed N on both fuzzers once.
 */
import { convergenceCase } from './convergence.ts'
import { differentialCase } from './differential.ts'
import { runCase, type FuzzCase } from './harness.ts'
import { seedFromEnv } from '../support/rng.ts'

const DEFAULT_MS = 10 * 60_000

const fuzzers: { name: string; file: string; run: FuzzCase }[] = [
  { name: 'differential', file: 'test/fuzz/differential.test.ts', run: differentialCase },
  { name: 'convergence', file: 'test/fuzz/convergence.test.ts', run: convergenceCase },
]

function main(): number {
  const raw = process.env.FUZZ_MS
  const ms = raw === undefined || raw === '' ? DEFAULT_MS : Number(raw)
  if (!Number.isFinite(ms) || ms < 0) {
    console.error(`FUZZ_MS must be a non-negative number of ms, got ${JSON.stringify(raw)}`)
    return 2
  }
  const fixed = process.env.FUZZ_SEED !== undefined && process.env.FUZZ_SEED !== ''
  const start = Date.now()
  const counts = fuzzers.map(() => ({ cases: 0, steps: 0 }))
  let lastReport = start
  console.log(`fuzzing for ${Math.round(ms / 1000)} s (FUZZ_MS=${ms})`)
  try {
    for (let round = 0; ; round++) {
      for (let f = 0; f < fuzzers.length; f++) {
        const seed = seedFromEnv()
        const stats = runCase(fuzzers[f].name, fuzzers[f].file, fuzzers[f].run, seed)
        counts[f].cases++
        counts[f].steps += stats.steps
      }
      const now = Date.now()
      if (now - lastReport >= 5000) {
        lastReport = now
        const parts = fuzzers.map((fz, f) => `${fz.name} ${counts[f].cases} cases`)
        console.log(`  ${Math.round((now - start) / 1000)} s: ${parts.join(', ')}`)
      }
      if (fixed || now - start >= ms) break
    }
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e))
    return 1
  }
  const parts = fuzzers.map(
    (fz, f) => `${fz.name} ${counts[f].cases} cases / ${counts[f].steps} steps`,
  )
  console.log(
    `done in ${Math.round((Date.now() - start) / 1000)} s, no failure: ${parts.join(', ')}`,
  )
  return 0
}

process.exitCode = main()
