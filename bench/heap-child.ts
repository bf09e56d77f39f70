/**
 * Child process of the trace benchmark: the memory one engine retains after loading a saved
 * document, measured in a fresh Node so no other engine's garbage or WebAssembly memory is
 * counted. Usage: `node --expose-gc --import tsx bench/heap-child.ts PEER FILE`; prints
 * `{"retained": bytes, "length": text length}` as its last line.
 *
 * Retained = ((heapUsed + external) after loading 8 copies (+ toString each) and a full GC, minus
 * the same before the loads without the saved bytes, which count only if the documents keep
 * them) / 8 (the engine's module is already imported and initialised then, the saved bytes
 * already read). WebAssembly memory only grows, so for Loro and Automerge this includes the
 * peak of their allocator during the load: that is what the process keeps. The loaded document is kept alive until after the second snapshot.
 */
import { readFileSync } from 'node:fs'
import { canGc, collectAll, memoryInUse } from './measure.ts'

/** A forced full GC, then a pause so freed ArrayBuffer/external memory is really released. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    collectAll()
    await new Promise((resolve) => setTimeout(resolve, 30))
  }
}
import { peerByName } from './peers.ts'

const [peerName, file] = process.argv.slice(2)
if (!canGc) throw new Error('heap-child needs node --expose-gc')
const peer = peerByName(peerName)
let bytes: Uint8Array | null = new Uint8Array(readFileSync(file))
// Warm the engine up on a tiny document (module init, WebAssembly instantiation). Not on the
// same bytes: WebAssembly memory never shrinks, so that would hide Loro's and Automerge's.
const tiny = { name: 'tiny', patches: [[0, 0, 'hi'] as const], txnEnds: [1], endContent: 'hi' }
peer.text(peer.load(peer.save(peer.replay(tiny))))
await settle()
// The saved bytes count as the document's if it keeps them (a lazy load may): they are
// subtracted from the baseline and our own reference is dropped before the second snapshot.
// COPIES documents are loaded and kept, and the figure is per document: one small document
// moves the counters by less than their noise (a few 10 KiB), and WebAssembly engines may
// fit one document in memory they already reserved.
const COPIES = 8
const before = memoryInUse() - bytes.byteLength
const docs: unknown[] = []
let length = 0
for (let i = 0; i < COPIES; i++) {
  const doc = peer.load(bytes)
  length = peer.text(doc).length
  docs.push(doc)
}
bytes = null
await settle()
const after = memoryInUse()
console.log(
  JSON.stringify({ retained: Math.round((after - before) / COPIES), length, alive: docs.length }),
)
