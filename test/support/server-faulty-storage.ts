/**
 * A fault-injecting `Storage` wrapper for tests: make loads or appends fail or slow, and count
 * calls. Wraps a real backend (SQLite) so whatever does succeed is really stored.
 */
import type { Storage, StoredDoc } from '../../server/storage.ts'

/** Faults to inject; change the fields at any time. */
export interface Faults {
  failLoads: boolean
  failAppends: boolean
  failCompacts: boolean
  loadDelayMs: number
  appendDelayMs: number
  compactDelayMs: number
}

/** `inner` with the faults in `faults` and call counters. */
export class FaultyStorage implements Storage {
  readonly faults: Faults = {
    failLoads: false,
    failAppends: false,
    failCompacts: false,
    loadDelayMs: 0,
    appendDelayMs: 0,
    compactDelayMs: 0,
  }
  loads = 0
  appends = 0
  failedAppends = 0
  compacts = 0
  /** Compactions stored. */
  compactsDone = 0
  /** Appends started and not finished. */
  inFlightAppends = 0

  constructor(readonly inner: Storage) {}

  async load(docId: string): Promise<StoredDoc | null> {
    this.loads++
    if (this.faults.loadDelayMs > 0) await sleep(this.faults.loadDelayMs)
    if (this.faults.failLoads) throw new Error('injected: storage read failed')
    return this.inner.load(docId)
  }

  async append(docId: string, update: Uint8Array): Promise<number> {
    this.appends++
    this.inFlightAppends++
    try {
      if (this.faults.appendDelayMs > 0) await sleep(this.faults.appendDelayMs)
      if (this.faults.failAppends) {
        this.failedAppends++
        throw new Error('injected: disk full')
      }
      return await this.inner.append(docId, update)
    } finally {
      this.inFlightAppends--
    }
  }

  async compact(docId: string, snapshot: Uint8Array, throughId: number): Promise<void> {
    this.compacts++
    if (this.faults.compactDelayMs > 0) await sleep(this.faults.compactDelayMs)
    if (this.faults.failCompacts) throw new Error('injected: compaction failed')
    await this.inner.compact(docId, snapshot, throughId)
    this.compactsDone++
  }

  pendingUpdates(docId: string): Promise<number> {
    return this.inner.pendingUpdates(docId)
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
