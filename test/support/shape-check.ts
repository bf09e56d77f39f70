/**
 * Child process of test/shape-anchors.test.ts (run with `--allow-natives-syntax`): a busy
 * concurrent session (eight replicas typing and deleting, updates delivered late and in
 * batches, a save and a load), then, for each hidden-class anchor of shared/shape-anchors.ts,
 * whether it still has the hidden class a fresh instance of its class gets. Prints one JSON
 * line: `{ "anchors": n, "stale": [constructor names] }`.
 */
import { TextDoc } from '../../shared/text-doc.ts'
import { anchorPairs } from '../../shared/shape-anchors.ts'
import { Rng } from './rng.ts'

const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (
  a: object,
  b: object,
) => boolean

const rng = new Rng(7)
const docs = Array.from({ length: 8 }, (_, i) => new TextDoc(`agent-${i}`))
/** Updates in flight to each replica, oldest first. */
const inbox: Uint8Array[][] = docs.map(() => [])
for (let step = 0; step < 3000; step++) {
  const i = rng.int(0, docs.length - 1)
  const doc = docs[i]!
  const before = doc.version()
  if (doc.length > 0 && rng.chance(0.3)) {
    const at = rng.int(0, doc.length - 1)
    doc.delete(at, Math.min(doc.length - at, rng.int(1, 4)))
  } else doc.insert(rng.int(0, doc.length), rng.chance(0.5) ? 'abc' : 'x')
  const update = doc.encodeUpdate(before)
  for (let j = 0; j < docs.length; j++) if (j !== i) inbox[j]!.push(update)
  // Each replica takes its mail now and then, so edits keep arriving concurrently.
  const j = rng.int(0, docs.length - 1)
  if (rng.chance(0.4)) for (const u of inbox[j]!.splice(0)) docs[j]!.applyUpdate(u)
}
for (let j = 0; j < docs.length; j++) for (const u of inbox[j]!.splice(0)) docs[j]!.applyUpdate(u)
const loaded = TextDoc.load(docs[0]!.save())
if (docs.some((d) => d.toString() !== loaded.toString())) throw new Error('replicas diverged')

const pairs = anchorPairs()
const stale = pairs.filter(([a, b]) => !haveSameMap(a, b)).map(([a]) => a.constructor.name)
console.log(JSON.stringify({ anchors: pairs.length, stale }))
