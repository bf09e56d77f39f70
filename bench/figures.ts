/**
 * The benchmark's figures as contestants for `interleaved` (bench/measure.ts): local replay of
 * a sequential trace, per-agent replay of a concurrent trace, merge of a whole history into an
 * empty replica, and load of a saved document. Used by the main process (several engines
 * interleaved) and by bench/peer-child.ts (one engine alone).
 *
 * Invariants: every contestant checks its first result against the known text (endContent,
 * or the replayed document's own text for merge and load), so a fast wrong engine cannot
 * post a figure. git-makefile is checked for convergence only (see the traces README).
 */
import type { Peer } from './peers.ts'
import {
  replayConcurrent,
  type ConcurrentTrace,
  type SequentialTrace,
} from '../test/support/traces.ts'

/** Concurrent traces whose endContent no CRDT with another tie-break reproduces. */
export const CONVERGENCE_ONLY = new Set(['git-makefile'])

export interface Contestant<T> {
  name: string
  run: () => T
  check?: (value: T) => void
}

function expectText(what: string, got: string, want: string): void {
  if (got === want) return
  let i = 0
  while (i < got.length && got[i] === want[i]) i++
  throw new Error(
    `${what}: wrong text (length ${got.length}, expected ${want.length}; first difference at ${i})`,
  )
}

/** Sequential replay: a new document, every patch applied locally. */
export function sequentialContestant<D>(peer: Peer<D>, trace: SequentialTrace): Contestant<D> {
  return {
    name: peer.name,
    run: () => peer.replay(trace),
    check: (doc) =>
      expectText(`${peer.name} replay of ${trace.name}`, peer.text(doc), trace.endContent),
  }
}

/**
 * Concurrent replay with one replica per agent (the harness in test/support/traces.ts); the
 * result is agent 0's final replica. Checks that every replica converged (and matches
 * endContent unless the trace is convergence-only).
 */
export function concurrentContestant<D>(peer: Peer<D>, trace: ConcurrentTrace): Contestant<any> {
  const engine = peer.engine
  return {
    name: peer.name,
    run() {
      let first: any
      let firstText = ''
      let diverged = -1
      replayConcurrent(trace, engine, {
        keepReplicas: false,
        onReplicaDone(replica, agent) {
          const text = engine.text(replica)
          if (agent === 0) {
            first = replica
            firstText = text
          } else if (text !== firstText && diverged < 0) diverged = agent
        },
      })
      if (diverged >= 0) {
        throw new Error(`${peer.name} on ${trace.name}: replica ${diverged} differs from replica 0`)
      }
      return first
    },
    check(replica) {
      if (CONVERGENCE_ONLY.has(trace.name)) return
      expectText(`${peer.name} replay of ${trace.name}`, engine.text(replica), trace.endContent)
    },
  }
}

/** What a concurrent replica holds as a document of the peer (Automerge wraps its doc). */
export function replicaDoc(peer: Peer<any>, replica: any): any {
  return peer.name === 'automerge' ? replica.doc : replica
}

/** Merge into an empty replica, one contestant per encoding variant of the peer. */
export function mergeContestants<D>(
  peer: Peer<D>,
  doc: D,
): { contestants: Contestant<D>[]; sizes: Map<string, number> } {
  const want = peer.text(doc)
  const sizes = new Map<string, number>()
  const contestants = peer.merges.map((variant) => {
    const encoded = variant.encode(doc)
    const name = `${peer.name}:${variant.label}`
    sizes.set(name, variant.size(encoded))
    return {
      name,
      run() {
        const merged = variant.decode(encoded)
        peer.text(merged)
        return merged
      },
      check: (merged: D) => expectText(`${name} merge`, peer.text(merged), want),
    }
  })
  return { contestants, sizes }
}

/** Load of the peer's saved bytes, text included (defeats lazy loading). */
export function loadContestant<D>(peer: Peer<D>, bytes: Uint8Array, want: string): Contestant<D> {
  return {
    name: peer.name,
    run() {
      const doc = peer.load(bytes)
      peer.text(doc)
      return doc
    },
    check: (doc) => expectText(`${peer.name} load`, peer.text(doc), want),
  }
}
