/**
 * The public editing traces (../shared/traces, or POLYPHONY_TRACES) through TextDoc:
 * every sequential trace replayed with insert/delete ends at its endContent; every
 * concurrent trace replayed with one TextDoc per agent converges on every replica to its
 * endContent. git-makefile is not a correctness check for exact text (see the traces
 * README): there every replica must converge and hold the same multiset of characters as
 * endContent. Without the traces folder this file prints one skip line, unless
 * POLYPHONY_REQUIRE_TRACES=1, which makes it fail.
 *
 * node_nodecc and git-makefile have 204 and 375 agents: one TextDoc per agent means ~10^5
 * remote applies, many of them merges, which takes many minutes. By default they are
 * replayed on a causally closed prefix of their first PREFIX_TXNS txns (agents renumbered,
 * order kept), checking that every replica converges; POLYPHONY_FULL_TRACES=1 replays them
 * whole against endContent.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/index.ts'
import {
  type ConcurrentTrace,
  listTraces,
  loadConcurrent,
  loadSequential,
  replayConcurrent,
  textDocEngine,
  tracesDir,
} from './support/traces.ts'

/** Traces whose exact endContent is not reproducible by design (see the traces README). */
const MULTISET_ONLY = new Set(['git-makefile'])
/** Traces too large to replay with one TextDoc per agent in `npm test`. */
const LARGE = new Set(['node_nodecc', 'git-makefile'])
const PREFIX_TXNS = 100
const FULL = process.env.POLYPHONY_FULL_TRACES === '1'

/**
 * The first `n` txns of a trace (causally closed: parents point backwards), with agents
 * renumbered in order of first appearance so the relative order of agent ids is kept, and
 * one last empty txn by an extra agent that merges every head, so that every replica ends
 * at the version holding all of them. Its endContent is unknown ('').
 */
function prefixOf(trace: ConcurrentTrace, n: number): ConcurrentTrace {
  const txns = trace.txns.slice(0, n)
  const used = [...new Set(txns.map((t) => t.agent))].sort((a, b) => a - b)
  const index = new Map(used.map((a, i) => [a, i]))
  const hasChild = new Set(txns.flatMap((t) => t.parents))
  const heads = txns.map((_, i) => i).filter((i) => !hasChild.has(i))
  return {
    name: `${trace.name}[0..${n})`,
    numAgents: used.length + 1,
    txns: [
      ...txns.map((t) => ({ ...t, agent: index.get(t.agent)! })),
      { parents: heads, agent: used.length, patches: [] },
    ],
    endContent: '',
  }
}

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
    const partial = LARGE.has(name) && !FULL
    const title = partial
      ? `concurrent ${name}, first ${PREFIX_TXNS} txns: one TextDoc per agent, replicas converge`
      : `concurrent ${name}: one TextDoc per agent, every replica converges`
    test(title, () => {
      const whole = loadConcurrent(name)
      const trace = partial ? prefixOf(whole, PREFIX_TXNS) : whole
      const exact = !partial && !MULTISET_ONLY.has(name)
      const t0 = Date.now()
      const texts = new Set<string>()
      let checked = 0
      replayConcurrent(trace, textDocEngine(TextDoc), {
        keepReplicas: false,
        onReplicaDone(doc, agent) {
          const text = doc.toString()
          texts.add(text)
          if (exact) {
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
      assert.is(texts.size, 1, `${trace.name}: replicas diverged (${texts.size} different texts)`)
      const [text] = texts
      if (!partial && MULTISET_ONLY.has(name)) {
        assert.is(text.length, trace.endContent.length, `${name}: length`)
        assert.ok(sortedChars(text) === sortedChars(trace.endContent), `${name}: multiset of chars`)
      }
      if (partial) assert.ok(text.length > 0, `${trace.name}: the prefix produced some text`)
      if (process.env.POLYPHONY_TRACE_TIMES === '1') {
        console.log(`  ${trace.name}: ${trace.numAgents} replicas, ${Date.now() - t0} ms`)
      }
    })
  }
  if (!FULL) {
    console.log(
      `  core-traces: ${[...LARGE].join(', ')} replayed on their first ${PREFIX_TXNS} txns ` +
        '(convergence only); POLYPHONY_FULL_TRACES=1 replays them whole (many minutes)',
    )
  }
}

test.run()
