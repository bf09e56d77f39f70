/**
 * The small surface a sync link needs from a document. `TextDoc` satisfies it
 * (and `RichDoc` will): a link never looks inside update bytes; it reasons about
 * version vectors only, so any replicated type with this interface can be linked.
 *
 * Invariant the link relies on: `version()` describes a downset of the event graph
 * (every event counted has all its parents counted), and `encodeUpdate(vv)` for a
 * downset `vv` yields events whose parents are in `vv` or in the update itself.
 */

import type { VersionVector } from './causal-graph.ts'

export type { VersionVector }

/** A mutable, prototype-free version vector used inside the sync layer. */
export type MutableVV = { [agent: string]: number }

export interface Replica {
  /** `{ [agent]: number of that agent's events integrated }`. */
  version(): VersionVector
  /** Every event the holder of `since` lacks; all events when omitted. */
  encodeUpdate(since?: VersionVector): Uint8Array
  /** Integrates an update; throws (changing nothing) on malformed bytes. */
  applyUpdate(update: Uint8Array, origin?: unknown): void
  /** Fires with exactly the newly integrated events, after local edits and applyUpdate. */
  on(event: 'update', handler: (update: Uint8Array, origin: unknown) => void): () => void
  /**
   * Optional: `on('update')` with the update made only when `encode()` is first called (at
   * any later time; the same bytes whenever). A replica's update log uses it when present, so
   * that an update no link sends is never encoded (a client's link never sends back what it
   * received).
   */
  onLazyUpdate?(handler: (encode: () => Uint8Array, origin: unknown) => void): () => void
  /** Events held back because their parents are missing. */
  readonly pendingCount: number
}
