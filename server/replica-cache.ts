/**
 * The document as the server's links see it: the same `Replica`, with `encodeUpdate(since)` and
 * `version()` memoised until the document next changes.
 *
 * A hub flushes the same new events to every caught-up client: their links ask for
 * `encodeUpdate(peerKnown)` with equal `peerKnown`, usually in the same turn, and each would
 * otherwise pay the graph diff and encoding again. Both functions are pure in (document state,
 * argument), and the state only changes through integration, which fires `update` and clears
 * the memo. `version()` hands out one frozen object per state (links copy before mutating).
 */
import type { Replica, VersionVector } from '../shared/replica.ts'
import type { TextDoc } from '../shared/text-doc.ts'

/** Encodings kept per document state (distinct `since` vectors; most links share one). */
const MAX_ENTRIES = 16

/** A canonical string for a version vector (sorted agents), the memo key. */
function vvKey(vv: VersionVector | undefined): string {
  if (vv === undefined) return '*'
  const keys = Object.keys(vv).sort()
  let out = ''
  for (const k of keys) if (vv[k]! > 0) out += k.length + ':' + k + '=' + vv[k] + ';'
  return out
}

/** `doc` behind a memo of `encodeUpdate` and `version` (see the module header). */
export function cachedReplica(doc: TextDoc): Replica {
  const encodings = new Map<string, Uint8Array>()
  let version: VersionVector | null = null
  doc.on('update', () => {
    encodings.clear()
    version = null
  })
  return {
    version() {
      version ??= Object.freeze(doc.version())
      return version
    },
    encodeUpdate(since) {
      const key = vvKey(since)
      let bytes = encodings.get(key)
      if (bytes === undefined) {
        bytes = doc.encodeUpdate(since)
        if (encodings.size >= MAX_ENTRIES) encodings.delete(encodings.keys().next().value!)
        encodings.set(key, bytes)
      }
      return bytes
    },
    applyUpdate: (update, origin) => doc.applyUpdate(update, origin),
    on: (event, handler) => doc.on(event, handler),
    get pendingCount() {
      return doc.pendingCount
    },
  }
}
