/**
 * Replays a recorded load client (bench/server/record.ts) into fresh documents, `--reps=N`
 * times in one process (the first runs are V8 warming up), checks that each ends with the
 * client's text, and prints the time spent integrating updates.
 *
 *   npx tsx bench/server/replay.ts RECORD_DIR/1234.7.json --reps=5
 */
import { readFileSync } from 'node:fs'
import { TextDoc } from '../../shared/text-doc.ts'
import type { Recording } from './record.ts'

const file = process.argv[2]
if (!file) throw new Error('usage: replay.ts FILE [--reps=N]')
const reps = Number(process.argv.find((a) => a.startsWith('--reps='))?.slice(7) ?? 5)
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer`)
const recording = JSON.parse(readFileSync(file, 'utf8')) as Recording
const calls = recording.calls.map((c) =>
  c[0] === 'update' ? (['update', new Uint8Array(Buffer.from(c[1], 'base64'))] as const) : c,
)

for (let rep = 1; rep <= reps; rep++) {
  const doc = new TextDoc(recording.agent)
  let ms = 0
  for (const call of calls) {
    if (call[0] === 'insert') doc.insert(call[1], call[2])
    else if (call[0] === 'delete') doc.delete(call[1], call[2])
    else {
      const t = performance.now()
      doc.applyUpdate(call[1], 'replay')
      ms += performance.now() - t
    }
  }
  if (recording.text !== undefined && doc.toString() !== recording.text)
    throw new Error(`replay ${rep} ended with other text than the recorded client`)
  let events = 0
  for (const n of Object.values(doc.version())) events += n
  console.log(
    `replay ${rep}: ${ms.toFixed(1)} ms integrating, ${events} events, ` +
      `${((ms * 1000) / events).toFixed(1)} µs per event, ${doc.length} chars`,
  )
}
