/**
 * The document as the server's links see it: the same `Replica`, with `encodeUpdate(since)` and
 * `version()` memoised until the document next changes.
 *
 * A hub flushes the same new events to every caught-up client: links at the same place ask for
 * the same encoding and the same version, usually in the same turn, and each would otherwise pay
 * the graph diff, the encoding or the O(agents) version vector again. Both functions are pure in
 * (document state, argument), and the state only changes through integration, which fires
 * `update` and clears the memo. `version()` hands out one frozen object per state (links keep it
 * as a lower bound of what a peer holds, and compare it by identity).
 *
 * A class, not closures: a server holds thousands of documents.
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
export class CachedReplica implements Replica {
  private encodings: Map<string, Uint8Array> | null = null
  private memoVersion: VersionVector | null = null

  constructor(private readonly doc: TextDoc) {
    doc.on('update', this.forget.bind(this))
  }

  private forget(): void {
    this.encodings = null
    this.memoVersion = null
  }

  version(): VersionVector {
    return (this.memoVersion ??= Object.freeze(this.doc.version()))
  }

  encodeUpdate(since?: VersionVector): Uint8Array {
    const key = vvKey(since)
    const encodings = (this.encodings ??= new Map())
    let bytes = encodings.get(key)
    if (bytes === undefined) {
      bytes = this.doc.encodeUpdate(since)
      if (encodings.size >= MAX_ENTRIES) encodings.delete(encodings.keys().next().value!)
      encodings.set(key, bytes)
    }
    return bytes
  }

  applyUpdate(update: Uint8Array, origin?: unknown): void {
    this.doc.applyUpdate(update, origin)
  }

  on(event: 'update', handler: (update: Uint8Array, origin: unknown) => void): () => void {
    return this.doc.on(event, handler)
  }

  get pendingCount(): number {
    return this.doc.pendingCount
  }
}

/** `doc` behind a memo of `encodeUpdate` and `version`. */
export function cachedReplica(doc: TextDoc): Replica {
  return new CachedReplica(doc)
}
