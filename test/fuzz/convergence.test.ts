/**
 * Convergence fuzzer: 2-8 TextDocs over a lossy, reordering, duplicating network with
 * partitions, under `npm test` for half of FUZZ_MS (default 20 s in total). Replay a
 * failure with the command it prints, e.g. `FUZZ_SEED=123 npx tsx test/fuzz/convergence.test.ts`.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { convergenceCase } from './convergence.ts'
import { budgetMs, runFuzz } from './harness.ts'

test('replicas converge: same text and version everywhere, nothing pending', () => {
  const summary = runFuzz(
    'convergence fuzzer',
    'test/fuzz/convergence.test.ts',
    convergenceCase,
    budgetMs(0.5),
  )
  assert.ok(summary.cases > 0)
  console.log(
    `  convergence: ${summary.cases} cases, ${summary.steps} steps in ${summary.ms} ms ` +
      `(seeds ${summary.seeds.slice(0, 3).join(', ')}${summary.cases > 3 ? ', …' : ''})`,
  )
})

test.run()
