/**
 * What an update holds, read from its bytes without integrating it: for each agent the
 * end of its events in the update (a partial version vector) and the number of events.
 * Links use it to reason about updates they pass on (skip what a peer already holds, turn
 * an acknowledgement of messages into a version) without asking the document.
 *
 * Invariant: a holder of an update's events also holds every earlier event of the same
 * agents (an agent's events form a causal chain), so `vv[a] = end` means "events
 * `(a, 0..end)`". Cost: one decode of the update, O(its size); a snapshot reads its
 * version list.
 */
import {
  KIND_SNAPSHOT,
  KIND_UPDATE,
  decodeSnapshot,
  decodeUpdate,
  messageKind,
} from './encoding.ts'
import type { MutableVV, VersionVector } from './replica.ts'

export interface UpdateSummary {
  /** For each agent in the update, the seq after its last event there. Prototype-free. */
  readonly vv: VersionVector
  /** Events in the update. */
  readonly events: number
}

/** The summary of `update`, or null when the bytes are not an update or snapshot of ours. */
export function summarizeUpdate(update: Uint8Array): UpdateSummary | null {
  const vv = Object.create(null) as MutableVV
  let events = 0
  try {
    const kind = messageKind(update)
    if (kind === KIND_UPDATE) {
      for (const s of decodeUpdate(update).spans) {
        const end = s.seq + s.len
        if ((vv[s.agent] ?? 0) < end) vv[s.agent] = end
        events += s.len
      }
    } else if (kind === KIND_SNAPSHOT) {
      for (const [a, n] of decodeSnapshot(update).version) {
        if (n > 0) vv[a] = n
        events += n
      }
    } else return null
  } catch {
    return null
  }
  return { vv, events }
}
