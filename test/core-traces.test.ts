/**
 * The public editing traces (../shared/traces, or POLYPHONY_TRACES) through TextDoc:
 * every sequential trace replayed with insert/delete ends at its endContent; every
 * concurrent trace replayed with one TextDoc per agent converges on every replica to its
 * endContent. git-makefile is not a correctness check for exact text (see the traces
 * README): there every replica must converge and hold the same multiset of characters as
 * endContent. Without the traces folder this file prints one skip line, unless
 * POLYPHONY_REQUIRE_TRACES=1, which makes it fail.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/index.ts'
import {
  listTraces,
  loadConcurrent,
  loadSequential,
  replayConcurrent,
  textDocEngine,
  tracesDir,
} from './support/traces.ts'

/** Traces whose exact endContent is not reproducible by design (see the traces README). */
const MULTISET_ONLY = new Set(['git-makefile'])

function sortedChars(s: string): string {
  return Array.from(s).sort().join('')
}

const dir = tracesDir() // throws when POLYPHONY_REQUIRE_TRACES=1 and the folder is missing

if (dir === null) {
  console.log(
    '  core-traces: SKIPPED, no editing traces found (set POLYPHONY_TRACES, or POLYPHONY_REQUIRE_TRACES=1 to fail)',
  )
  test('traces folder missing: skipped', () => {
    assert.is(process.env.POLYPHONY_REQUIRE_TRACES === '1', false)
  })
} else {
  const { sequential, concurrent } = listTraces()
  const ascii = sequential.map((n) => `ascii_only/${n}`)

  test('the traces folder lists traces', () => {
    assert.ok(sequential.length > 0, `no sequential traces in ${dir}`)
    assert.ok(concurrent.length > 0, `no concurrent traces in ${dir}`)
  })

  for (const name of [...sequential, ...ascii]) {
    test(`sequential ${name}: insert/delete replay ends at endContent`, () => {
      let trace
      try {
        trace = loadSequential(name)
      } catch (e) {
        if (name.startsWith('ascii_only/') && /no sequential trace/.test(String(e))) return
        throw e
      }
      const t0 = Date.now()
      const doc = new TextDoc('trace')
      for (const [pos, del, ins] of trace.patches) {
        if (del > 0) doc.delete(pos, del)
        if (ins !== '') doc.insert(pos, ins)
      }
      const ms = Date.now() - t0
      assert.is(doc.length, trace.endContent.length, `${name}: length`)
      assert.ok(doc.toString() === trace.endContent, `${name}: text differs from endContent`)
      doc.checkInvariants()
      const loaded = TextDoc.load(doc.save())
      assert.ok(loaded.toString() === trace.endContent, `${name}: save/load`)
      if (process.env.POLYPHONY_TRACE_TIMES === '1') console.log(`  ${name}: ${ms} ms`)
    })
  }

  for (const name of concurrent) {
    test(`concurrent ${name}: one TextDoc per agent, every replica converges`, () => {
      const trace = loadConcurrent(name)
      const t0 = Date.now()
      const texts = new Set<string>()
      let checked = 0
      replayConcurrent(trace, textDocEngine(TextDoc), {
        keepReplicas: false,
        onReplicaDone(doc, agent) {
          const text = doc.toString()
          texts.add(text)
          if (!MULTISET_ONLY.has(name)) {
            assert.ok(
              text === trace.endContent,
              `${name}: replica ${agent} differs from endContent`,
            )
          }
          if (agent === 0) {
            doc.checkInvariants()
            assert.is(doc.pendingCount, 0)
          }
          checked++
        },
      })
      assert.is(checked, trace.numAgents)
      assert.is(texts.size, 1, `${name}: replicas diverged (${texts.size} different texts)`)
      const [text] = texts
      if (MULTISET_ONLY.has(name)) {
        assert.is(text.length, trace.endContent.length, `${name}: length`)
        assert.ok(sortedChars(text) === sortedChars(trace.endContent), `${name}: multiset of chars`)
      }
      if (process.env.POLYPHONY_TRACE_TIMES === '1') console.log(`  ${name}: ${Date.now() - t0} ms`)
    })
  }
}

test.run()
