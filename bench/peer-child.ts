/**
 * Child process of the trace benchmark: every figure of one engine on one trace, alone in a
 * fresh Node. The main process uses it for Automerge (minutes on big traces, so it runs under a
 * time limit) and for the big concurrent traces (run only with `--big`).
 *
 * Usage: `node --expose-gc --import tsx bench/peer-child.ts PEER seq|conc TRACE RUNS BUDGET_MS
 * SAVEFILE`. Writes the engine's saved document to SAVEFILE (for bench/heap-child.ts) and
 * prints one JSON line: `{ replay, merges: [{ name, size, cell }], saveSize, load }`.
 */
import { writeFileSync } from 'node:fs'
import {
  concurrentContestant,
  loadContestant,
  mergeContestants,
  replicaDoc,
  sequentialContestant,
} from './figures.ts'
import { interleaved } from './measure.ts'
import { peerByName } from './peers.ts'
import { loadConcurrent, loadSequential } from '../test/support/traces.ts'

const [peerName, kind, traceName, runsArg, budgetArg, saveFile] = process.argv.slice(2)
const peer = peerByName(peerName)
const runs = Number(runsArg)
const budget = Number(budgetArg)
if (!(runs >= 1 && budget > 0 && saveFile)) {
  throw new Error('usage: peer-child.ts PEER seq|conc TRACE RUNS BUDGET_MS SAVEFILE')
}

let last: any
const base =
  kind === 'seq'
    ? sequentialContestant(peer, loadSequential(traceName))
    : concurrentContestant(peer, loadConcurrent(traceName))
const replay = (await interleaved([{ ...base, run: () => (last = base.run()) }], runs, budget)).get(
  peer.name,
)
const doc = kind === 'seq' ? last : replicaDoc(peer, last)
last = undefined

const { contestants, sizes } = mergeContestants(peer, doc)
const mergeCells = await interleaved(contestants, runs, budget)
const merges = contestants.map((c) => ({
  name: c.name,
  size: sizes.get(c.name),
  cell: mergeCells.get(c.name),
}))

const saved = peer.save(doc)
writeFileSync(saveFile, saved)
const load = (await interleaved([loadContestant(peer, saved, peer.text(doc))], runs, budget)).get(
  peer.name,
)

console.log(JSON.stringify({ replay, merges, saveSize: saved.byteLength, load }))
