/**
 * Recording of a load client's document calls, for replaying its stream in one process
 * (bench/server/replay.ts): with RECORD_DIR set, every `ours` load client writes, when its
 * process exits, the agent and each `applyUpdate`, `insert` and `delete` it made, in order, to
 * RECORD_DIR/<pid>.<n>.json. A replay makes the same document states, so the cost of
 * integrating what a real client received can be measured and profiled away from the noise
 * of a saturated benchmark.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TextDoc } from '../../shared/text-doc.ts'

/** One recorded call: an update (base64), or a local insert or delete. */
export type RecordedCall =
  ['update', string] | ['insert', number, string] | ['delete', number, number]

export interface Recording {
  readonly agent: string
  readonly calls: RecordedCall[]
  /** The document's text when the process exited (a replay must end with the same). */
  text?: string
}

let recorded = 0

/** Records `doc`'s calls when RECORD_DIR is set (wraps the methods on the instance). */
export function recordIfAsked(doc: TextDoc): void {
  const dir = process.env.RECORD_DIR
  if (!dir) return
  const file = join(dir, `${process.pid}.${++recorded}.json`)
  const recording: Recording = { agent: doc.agent, calls: [] }
  const applyUpdate = doc.applyUpdate.bind(doc)
  doc.applyUpdate = (update, origin) => {
    recording.calls.push(['update', Buffer.from(update).toString('base64')])
    applyUpdate(update, origin)
  }
  const insert = doc.insert.bind(doc)
  doc.insert = (pos, text) => {
    recording.calls.push(['insert', pos, text])
    insert(pos, text)
  }
  const del = doc.delete.bind(doc)
  doc.delete = (pos, length) => {
    recording.calls.push(['delete', pos, length])
    del(pos, length)
  }
  process.on('exit', () => {
    recording.text = doc.toString()
    writeFileSync(file, JSON.stringify(recording))
  })
}
