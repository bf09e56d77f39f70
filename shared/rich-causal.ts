/**
 * A RichDoc's copy of the inner document's causal graph, fed from the update
 * bytes the inner document emits (the TextDoc keeps its own graph private).
 *
 * Owns: "was event X made after event Y" questions that formatting needs
 * (Peritext: does a formatting op reach a character inserted concurrently?)
 * and that the remote fast path needs (are the new events made on top of
 * everything we had?). Invariant: holds exactly the events the inner document
 * integrated, in the same topological order. Memory: the run-length graph.
 */
import {
  type CausalGraph,
  type LV,
  addEvents,
  createGraph,
  findEntry,
  nextSeq,
  rawToLv,
} from './causal-graph.ts'
import { diff } from './graph-diff.ts'
import { decodeEvents } from './encoding.ts'

export class CausalMirror {
  private readonly cg: CausalGraph = createGraph()

  /** The current heads and the next LV: a mark to ask `descendAll` about later. */
  mark(): { heads: LV[]; next: LV } {
    return { heads: this.cg.heads.slice(), next: this.cg.next }
  }

  /** Every agent with events here. */
  agents(): string[] {
    return [...this.cg.agents.keys()]
  }

  /** Adds the events of an update (or snapshot) the inner document just integrated. */
  add(update: Uint8Array): void {
    const dec = decodeEvents(update)
    const cg = this.cg
    for (const sp of dec.spans) {
      const have = nextSeq(cg, sp.agent)
      if (sp.seq + sp.len <= have) continue
      const skip = Math.max(0, have - sp.seq)
      const parents =
        skip > 0
          ? [rawToLv(cg, sp.agent, have - 1)]
          : sp.parents.map(([a, s]) => rawToLv(cg, a, s)).sort((x, y) => x - y)
      if (parents.some((p) => p < 0)) throw new Error('causal mirror lacks a parent')
      addEvents(cg, sp.agent, sp.seq + skip, sp.len - skip, parents)
    }
  }

  /** Whether every event added since `mark` has all of the mark's heads in its history. */
  descendAll(mark: { heads: LV[]; next: LV }): boolean {
    const cg = this.cg
    const first = mark.next
    if (first >= cg.next) return true
    for (let i = findEntry(cg, first); i < cg.entries.length; i++) {
      const e = cg.entries[i]
      const parents = e.start < first ? [first - 1] : e.parents
      if (parents.every((p) => p >= first)) continue
      if (diff(cg, mark.heads, parents).aOnly.length !== 0) return false
    }
    return true
  }

  /**
   * The first seq of `agent` whose event has `(opAgent, opSeq)` in its history,
   * searching from `from` (one agent's events form a chain, so later seqs have
   * it too); the agent's next seq when none does, Infinity when the op is unknown.
   */
  firstAfter(opAgent: string, opSeq: number, agent: string, from: number): number {
    const cg = this.cg
    const lvOp = rawToLv(cg, opAgent, opSeq)
    if (lvOp < 0) return Infinity
    let lo = from
    let hi = nextSeq(cg, agent)
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (diff(cg, [lvOp], [rawToLv(cg, agent, mid)]).aOnly.length === 0) hi = mid
      else lo = mid + 1
    }
    return lo
  }
}
