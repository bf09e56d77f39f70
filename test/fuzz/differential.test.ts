/**
 * Differential fuzzer: TextDoc against the naive reference replica, under `npm test` for
 * half of FUZZ_MS (default 20 s in total). Replay a failure with the command it prints,
 * e.g. `FUZZ_SEED=123 npx tsx test/fuzz/differential.test.ts`.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { differentialCase } from './differential.ts'
import { budgetMs, runFuzz } from './harness.ts'

test('TextDoc matches the reference replica after every step', () => {
  const summary = runFuzz(
    'differential fuzzer',
    'test/fuzz/differential.test.ts',
    differentialCase,
    budgetMs(0.5),
  )
  assert.ok(summary.cases > 0)
  console.log(
    `  differential: ${summary.cases} cases, ${summary.steps} steps in ${summary.ms} ms ` +
      `(seeds ${summary.seeds.slice(0, 3).join(', ')}${summary.cases > 3 ? ', …' : ''})`,
  )
})

test.run()
