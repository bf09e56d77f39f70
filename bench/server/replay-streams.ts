/**
 * Recorded load clients (bench/server/record.ts), loaded and replayed side by side: one update
 * each in turn, as a load process runs its clients, so each document's state is cold in the CPU
 * caches when its next update comes, as in the benchmark (one client alone stays warm).
 * Used by replay.ts and replay-ab.ts.
 */
import { readFileSync } from 'node:fs'
import type { TextDoc } from '../../shared/text-doc.ts'
import type { Recording } from './record.ts'

type Call =
  | readonly ['update', Uint8Array]
  | readonly ['insert', number, string]
  | readonly ['delete', number, number]

export interface RecordedClient {
  readonly file: string
  readonly recording: Recording
  readonly calls: readonly Call[]
}

export function loadRecordings(files: readonly string[]): RecordedClient[] {
  return files.map((file) => {
    const recording = JSON.parse(readFileSync(file, 'utf8')) as Recording
    const calls: Call[] = recording.calls.map((c) =>
      c[0] === 'update' ? (['update', new Uint8Array(Buffer.from(c[1], 'base64'))] as const) : c,
    )
    return { file, recording, calls }
  })
}

/**
 * Replays `clients` into fresh documents of class `Doc`; returns the ms spent in `applyUpdate`
 * and the documents. Throws when a document ends with other text than its recorded client.
 */
export function replaySideBySide(
  clients: readonly RecordedClient[],
  Doc: typeof TextDoc,
): { ms: number; docs: TextDoc[] } {
  const docs = clients.map((c) => new Doc(c.recording.agent))
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
  docs.forEach((doc, k) => {
    const { recording, file } = clients[k]
    if (recording.text !== undefined && doc.toString() !== recording.text)
      throw new Error(`replay of ${file} ended with other text than the recorded client`)
  })
  return { ms, docs }
}
