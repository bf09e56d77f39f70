/**
 * Which inserts an update (or a whole-document snapshot) carries with their text elided:
 * the reference twin of the differential fuzzer needs to know, to hold them as TextDoc does.
 */
import { decodeEvents } from '../../shared/encoding.ts'
import { attachOps } from '../../shared/incoming.ts'
import { INS, isElided } from '../../shared/oplog.ts'
import { idKey } from './reference.ts'

/**
 * The reference keys (`idKey`) of the events in `bytes` that insert elided text, and of those
 * that insert text carried in full.
 */
export function insertKeys(bytes: Uint8Array): { elided: Set<string>; withText: Set<string> } {
  const update = decodeEvents(bytes)
  const elided = new Set<string>()
  const withText = new Set<string>()
  for (const span of attachOps(update)) {
    let seq = span.seq
    for (const op of span.ops) {
      const into = isElided(op) ? elided : op.kind === INS ? withText : null
      for (let i = 0; i < op.len && into !== null; i++)
        into.add(idKey({ agent: span.agent, seq: seq + i }))
      seq += op.len
    }
  }
  return { elided, withText }
}
