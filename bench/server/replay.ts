/**
 * Replays recorded load clients (bench/server/record.ts) into fresh documents, `--reps=N`
 * times in one process (the first runs are V8 warming up), checks that each ends with the
 * client's text, and prints the time spent integrating updates.
 *
 * Given several files, the clients are replayed side by side, one update each in turn, as a
 * load process runs its clients: each document's state is then cold in the CPU caches when
 * its next update comes, as in the benchmark (one client alone stays warm).
 *
 *   npx tsx bench/server/replay.ts RECORD_DIR/1234.7.json --reps=5
 *   npx tsx bench/server/replay.ts RECORD_DIR/1234.*.json --reps=3
 */
import { readFileSync } from 'node:fs'
import { TextDoc } from '../../shared/text-doc.ts'
import type { Recording } from './record.ts'

type Call =
  | readonly ['update', Uint8Array]
  | readonly ['insert', number, string]
  | readonly ['delete', number, number]

const files = process.argv.slice(2).filter((a) => !a.startsWith('--'))
if (files.length === 0) throw new Error('usage: replay.ts FILE... [--reps=N]')
const reps = Number(process.argv.find((a) => a.startsWith('--reps='))?.slice(7) ?? 5)
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer`)
const clients = files.map((file) => {
  const recording = JSON.parse(readFileSync(file, 'utf8')) as Recording
  const calls: Call[] = recording.calls.map((c) =>
    c[0] === 'update' ? (['update', new Uint8Array(Buffer.from(c[1], 'base64'))] as const) : c,
  )
  return { file, recording, calls }
})

for (let rep = 1; rep <= reps; rep++) {
  const docs = clients.map((c) => new TextDoc(c.recording.agent))
  const next = clients.map(() => 0)
  let ms = 0
  for (let live = clients.length; live > 0;) {
    live = 0
    for (let k = 0; k < clients.length; k++) {
      const { calls } = clients[k]
      const doc = docs[k]
      // This client's local edits, then its next update.
      let i = next[k]
      for (; i < calls.length; i++) {
        const call = calls[i]
        if (call[0] === 'insert') doc.insert(call[1], call[2])
        else if (call[0] === 'delete') doc.delete(call[1], call[2])
        else {
          const t = performance.now()
          doc.applyUpdate(call[1], 'replay')
          ms += performance.now() - t
          i++
          break
        }
      }
      next[k] = i
      if (i < calls.length) live++
    }
  }
  let events = 0
  docs.forEach((doc, k) => {
    const { recording, file } = clients[k]
    if (recording.text !== undefined && doc.toString() !== recording.text)
      throw new Error(`replay ${rep} of ${file} ended with other text than the recorded client`)
    for (const n of Object.values(doc.version())) events += n
  })
  console.log(
    `replay ${rep}: ${ms.toFixed(1)} ms integrating, ${events} events` +
      (clients.length > 1 ? ` in ${clients.length} documents` : '') +
      `, ${((ms * 1000) / events).toFixed(1)} µs per event`,
  )
}
