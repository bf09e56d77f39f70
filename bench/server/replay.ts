/**
 * Replays recorded load clients (bench/server/record.ts) into fresh documents, `--reps=N`
 * times in one process (the first runs are V8 warming up), checks that each ends with the
 * client's text, and prints the time spent integrating updates. Given several files, the
 * clients are replayed side by side (replay-streams.ts).
 *
 *   npx tsx bench/server/replay.ts RECORD_DIR/1234.7.json --reps=5
 *   npx tsx bench/server/replay.ts RECORD_DIR/1234.*.json --reps=3
 */
import { TextDoc } from '../../shared/text-doc.ts'
import { loadRecordings, replaySideBySide } from './replay-streams.ts'

const files = process.argv.slice(2).filter((a) => !a.startsWith('--'))
if (files.length === 0) throw new Error('usage: replay.ts FILE... [--reps=N]')
const reps = Number(process.argv.find((a) => a.startsWith('--reps='))?.slice(7) ?? 5)
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer`)
const clients = loadRecordings(files)

for (let rep = 1; rep <= reps; rep++) {
  const { ms, docs } = replaySideBySide(clients, TextDoc)
  let events = 0
  for (const doc of docs) for (const n of Object.values(doc.version())) events += n
  console.log(
    `replay ${rep}: ${ms.toFixed(1)} ms integrating, ${events} events` +
      (clients.length > 1 ? ` in ${clients.length} documents` : '') +
      `, ${((ms * 1000) / events).toFixed(1)} µs per event`,
  )
}
