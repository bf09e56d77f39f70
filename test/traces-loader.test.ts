/**
 * The trace loader and the concurrent replay harness (test/support/traces.ts): code-point to
 * UTF-16 conversion (unit cases and every sequential trace replayed on plain strings, the
 * egwalker astral trace included), concurrent loading, and the harness's causal delivery
 * checked with a fake engine on random event graphs and on a real trace, then with Yjs
 * reproducing a concurrent trace's endContent. Trace-based cases are skipped (with a line)
 * when the traces folder is absent, unless POLYPHONY_REQUIRE_TRACES=1.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import {
  CodePointConverter,
  listTraces,
  loadConcurrent,
  loadSequential,
  replayConcurrent,
  replayString,
  tracesDir,
  txnVersionVectors,
  type ConcurrentTrace,
  type ConcurrentTxn,
  type ReplayEngine,
} from './support/traces.ts'

test('converter: BMP-only patches pass through unchanged', () => {
  const c = new CodePointConverter()
  assert.equal(c.convert(0, 0, 'hello'), [0, 0, 'hello'])
  assert.equal(c.convert(1, 2, 'EY'), [1, 2, 'EY'])
  assert.is(c.length, 5)
})

test('converter: positions and lengths after astral chars count UTF-16 units', () => {
  const c = new CodePointConverter()
  assert.equal(c.convert(0, 0, 'a😀b😀c'), [0, 0, 'a😀b😀c']) // cp: a 😀 b 😀 c
  assert.equal(c.convert(2, 0, 'X'), [3, 0, 'X']) // before b: after one astral
  assert.equal(c.convert(1, 1, ''), [1, 2, '']) // delete the first 😀
  assert.equal(c.convert(3, 2, 'Z'), [3, 3, 'Z']) // now a X b 😀 c: delete 😀 c
  assert.is(c.length, 4) // a X b Z
  assert.equal(c.convert(4, 0, '!'), [4, 0, '!'])
})

test('converter: a patch past the end is a RangeError with the numbers', () => {
  const c = new CodePointConverter()
  c.convert(0, 0, 'ab😀')
  assert.throws(
    () => c.convert(2, 2, ''),
    (e: unknown) => {
      return e instanceof RangeError && /\[2, 2\].*3 code points/.test(e.message)
    },
  )
})

/** A random causal graph: each txn builds on its agent's last txn plus random others. */
function randomTrace(seed: number, numAgents: number, n: number): ConcurrentTrace {
  let s = seed
  const rnd = (k: number) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    return (s >>> 8) % k
  }
  const last = new Array<number>(numAgents).fill(-1)
  const txns: ConcurrentTxn[] = []
  for (let i = 0; i < n; i++) {
    const agent = i === n - 1 ? 0 : rnd(numAgents)
    const parents = new Set<number>()
    if (i === n - 1) {
      for (const l of last) if (l >= 0) parents.add(l)
    } else {
      if (last[agent] >= 0) parents.add(last[agent])
      for (let k = rnd(3); k > 0 && i > 0; k--) parents.add(rnd(i))
    }
    // Keep the agent's own order: no parent may come after its own last txn by the same agent.
    const ps = [...parents].filter((p) => txns[p].agent !== agent || p === last[agent])
    txns.push({ parents: ps.sort((a, b) => a - b), agent, patches: [[0, 0, 'x']] })
    last[agent] = i
  }
  return { name: `random-${seed}`, numAgents, txns, endContent: '' }
}

function closure(trace: ConcurrentTrace, roots: readonly number[]): Set<number> {
  const seen = new Set<number>()
  const stack = [...roots]
  while (stack.length) {
    const t = stack.pop()!
    if (seen.has(t)) continue
    seen.add(t)
    stack.push(...trace.txns[t].parents)
  }
  return seen
}

/**
 * A fake engine whose replicas are the sets of txns they hold; updates are txn numbers. It
 * asserts causal delivery, no duplicates, and (when `exact`) that a replica holds exactly
 * the causal closure of a txn's parents when the txn is made.
 */
function fakeEngine(trace: ConcurrentTrace, exact: boolean) {
  let made = 0
  let applied = 0
  const engine: ReplayEngine<{ agent: number; held: Set<number> }, number, number> = {
    name: 'fake',
    create: (agent) => ({ agent, held: new Set() }),
    mark(r) {
      const txn = trace.txns[made]
      assert.is(r.agent, txn.agent, `txn ${made} made on the wrong replica`)
      if (exact)
        assert.equal(
          [...r.held].sort((a, b) => a - b),
          [...closure(trace, txn.parents)].sort((a, b) => a - b),
        )
      return made
    },
    applyPatch() {},
    capture(r, i) {
      r.held.add(i)
      return made++
    },
    applyUpdate(r, i) {
      assert.not.ok(r.held.has(i), `txn ${i} delivered twice to replica ${r.agent}`)
      for (const p of trace.txns[i].parents) {
        assert.ok(r.held.has(p), `txn ${i} delivered to ${r.agent} before its parent ${p}`)
      }
      r.held.add(i)
      applied++
    },
    text: () => '',
  }
  return { engine, stats: () => ({ made, applied }) }
}

test('harness: fake engine on random graphs gets exact causal states, then everything', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const trace = randomTrace(seed, 1 + (seed % 5), 120)
    const { engine, stats } = fakeEngine(trace, true)
    const { replicas, updates } = replayConcurrent(trace, engine)
    assert.is(stats().made, trace.txns.length)
    assert.is(updates.length, trace.txns.length)
    for (const r of replicas) assert.is(r!.held.size, trace.txns.length)
    const vv = txnVersionVectors(trace)
    const counts = new Array(trace.numAgents).fill(0)
    for (const t of trace.txns) counts[t.agent]++
    assert.equal([...vv[trace.txns.length - 1]], counts)
  }
})

test("harness: a txn whose parents skip its agent's own earlier txn is rejected", () => {
  const trace: ConcurrentTrace = {
    name: 'bad',
    numAgents: 1,
    endContent: '',
    txns: [
      { parents: [], agent: 0, patches: [] },
      { parents: [], agent: 0, patches: [] },
    ],
  }
  assert.throws(() => txnVersionVectors(trace), /totally ordered/)
})

const dir = tracesDir()
if (dir === null) {
  console.log('  traces-loader: trace cases SKIPPED, no traces folder (POLYPHONY_TRACES)')
} else {
  const { sequential, concurrent } = listTraces()

  test('listTraces finds the sequential and concurrent traces', () => {
    assert.ok(sequential.includes('egwalker') && sequential.includes('automerge-paper'))
    assert.ok(concurrent.includes('friendsforever') && concurrent.includes('node_nodecc'))
  })

  for (const name of sequential) {
    test(`sequential ${name}: converted patches replay to endContent on strings`, () => {
      const trace = loadSequential(name)
      assert.is(trace.txnEnds[trace.txnEnds.length - 1], trace.patches.length)
      assert.ok(replayString(trace) === trace.endContent, `${name}: replay differs`)
    })
  }

  test('egwalker: has astral chars, and patches after them were shifted to UTF-16', () => {
    const trace = loadSequential('egwalker')
    assert.ok(
      trace.patches.some((p) => /[\uD800-\uDFFF]/.test(p[2])),
      'no astral chars inserted',
    )
    const raw = JSON.parse(
      gunzipSync(readFileSync(join(dir, 'sequential/egwalker.json.gz'))).toString(),
    )
    const rawPatches: [number, number, string][] = raw.txns.flatMap((t: any) => t.patches)
    assert.is(rawPatches.length, trace.patches.length)
    const shifted = rawPatches.filter((p, i) => p[0] !== trace.patches[i][0]).length
    assert.ok(shifted > 0, 'no position was converted')
  })

  test('concurrent traces load; the last txn contains every txn', () => {
    for (const name of concurrent) {
      const trace = loadConcurrent(name)
      const vv = txnVersionVectors(trace)
      const counts = new Array(trace.numAgents).fill(0)
      for (const t of trace.txns) counts[t.agent]++
      assert.equal([...vv[trace.txns.length - 1]], counts, name)
    }
  })

  test('harness: fake engine on clownschool delivers causally, each txn once', () => {
    const trace = loadConcurrent('clownschool')
    const { engine, stats } = fakeEngine(trace, false)
    const { replicas } = replayConcurrent(trace, engine)
    for (const r of replicas) assert.is(r!.held.size, trace.txns.length)
    assert.ok(stats().applied <= trace.txns.length * trace.numAgents)
  })

  test('harness: Yjs replicas of friendsforever all reach endContent', () => {
    const trace = loadConcurrent('friendsforever')
    const yjs: ReplayEngine<Y.Doc, Uint8Array, Uint8Array> = {
      name: 'yjs',
      create(agent) {
        const doc = new Y.Doc()
        doc.clientID = agent + 1
        return doc
      },
      mark: (doc) => Y.encodeStateVector(doc),
      applyPatch(doc, pos, del, ins) {
        if (del > 0) doc.getText().delete(pos, del)
        if (ins !== '') doc.getText().insert(pos, ins)
      },
      capture: (doc, sv) => Y.encodeStateAsUpdate(doc, sv),
      applyUpdate: (doc, u) => Y.applyUpdate(doc, u),
      text: (doc) => doc.getText().toString(),
    }
    let done = 0
    replayConcurrent(trace, yjs, {
      keepReplicas: false,
      onReplicaDone(doc, agent) {
        assert.ok(yjs.text(doc) === trace.endContent, `replica ${agent} differs`)
        done++
      },
    })
    assert.is(done, trace.numAgents)
  })
}

test.run()
