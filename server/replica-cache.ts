/**
 * The document as the server's links see it: the same `Replica`, with `encodeUpdate(since)` and
 * `version()` memoised until the document next changes.
 *
 * A hub flushes the same new events to every caught-up client: links at the same place ask for
 * the same encoding and the same version, usually in the same turn, and each would otherwise pay
 * the graph diff, the encoding or the O(agents) version vector again. Both functions are pure in
 * (document state, argument), and the state only changes through integration, which fires
 * `update` and clears the memo. `version()` hands out one object per state (links keep it as a
 * lower bound of what a peer holds, and compare it by identity). It is read-only by its type, not
 * frozen: freezing gives each document's version its own hidden class, about 220 bytes a
 * document, since every document has agents of its own.
 *
 * The encodings are dropped once unused for `ENCODINGS_IDLE_MS`: they are worth keeping only
 * while links flush together (one turn, or a batch window of at most 10 ms) or a burst of
 * clients joins, and the one for a joining client is the whole document, which an idle
 * document would otherwise hold twice for as long as it stays loaded.
 *
 * A class, not closures: a server holds thousands of documents.
 */
import type { Replica, VersionVector } from '../shared/replica.ts'
import type { TextDoc } from '../shared/text-doc.ts'

/** Encodings kept per document state (distinct `since` vectors; most links share one). */
const MAX_ENTRIES = 16
/** Encodings unused this long are dropped (checked by one timer for every document). */
const ENCODINGS_IDLE_MS = 250

/** Caches holding encodings, swept by one timer while there are any. */
const holding = new Set<CachedReplica>()
let sweeper: ReturnType<typeof setInterval> | null = null

function sweep(): void {
  const now = performance.now()
  for (const c of holding) if (c.dropIdle(now)) holding.delete(c)
  if (holding.size === 0 && sweeper !== null) {
    clearInterval(sweeper)
    sweeper = null
  }
}

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
  private usedAt = 0
  private memoVersion: VersionVector | null = null

  constructor(private readonly doc: TextDoc) {
    doc.on('update', this.forget.bind(this))
  }

  private forget(): void {
    this.encodings = null
    this.memoVersion = null
  }

  version(): VersionVector {
    return (this.memoVersion ??= this.doc.version())
  }

  encodeUpdate(since?: VersionVector): Uint8Array {
    const key = vvKey(since)
    this.usedAt = Math.floor(performance.now()) // whole ms: no number box per document
    if (this.encodings === null) {
      this.encodings = new Map()
      holding.add(this)
      if (sweeper === null) {
        sweeper = setInterval(sweep, ENCODINGS_IDLE_MS)
        sweeper.unref?.()
      }
    }
    const encodings = this.encodings
    let bytes = encodings.get(key)
    if (bytes === undefined) {
      bytes = this.doc.encodeUpdate(since)
      if (encodings.size >= MAX_ENTRIES) encodings.delete(encodings.keys().next().value!)
      encodings.set(key, bytes)
    }
    return bytes
  }

  /** Drops the encodings if unused since `now - ENCODINGS_IDLE_MS`; true when none are left. */
  dropIdle(now: number): boolean {
    if (this.encodings !== null && now - this.usedAt < ENCODINGS_IDLE_MS) return false
    this.encodings = null
    return true
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
