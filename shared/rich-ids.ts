/**
 * The id of every token of a RichDoc's document, by position: two Int32
 * columns (agent index into a table of agent ids, seq) with a gap kept where
 * the last edit was, so typing at one place costs O(1) per token and moving
 * to another place costs the distance moved (one memmove).
 *
 * Invariant: `length` equals the number of document tokens; token i is at
 * column index i before the gap and i + gap size after it; seq -1 marks a
 * token whose id is not known yet (the owner fills it before reading).
 */
export class TokenIds {
  private agentCol = new Int32Array(1024)
  private seqCol = new Int32Array(1024)
  /** The gap is column indexes `gapStart .. gapEnd`. */
  private gapStart = 0
  private gapEnd = 1024
  private readonly agentIds: string[] = []
  private readonly agentIndex = new Map<string, number>()

  get length(): number {
    return this.agentCol.length - (this.gapEnd - this.gapStart)
  }

  /** The agent id of token i. */
  agent(i: number): string {
    return this.agentIds[this.agentCol[this.at(i)]]
  }

  /** The seq of token i (-1 when not known yet). */
  seq(i: number): number {
    return this.seqCol[this.at(i)]
  }

  /** Sets the id of token i. */
  set(i: number, agent: string, seq: number): void {
    const p = this.at(i)
    this.agentCol[p] = this.indexOf(agent)
    this.seqCol[p] = seq
  }

  /** Inserts `n` tokens at `i`: ids `(agent, seq .. seq+n)`, or unknown (-1) when agent is null. */
  insert(i: number, n: number, agent: string | null, seq: number): void {
    if (this.gapEnd - this.gapStart < n) this.grow(this.length + n)
    this.moveGap(i)
    const a = agent === null ? 0 : this.indexOf(agent)
    const p = this.gapStart
    for (let k = 0; k < n; k++) {
      this.agentCol[p + k] = a
      this.seqCol[p + k] = agent === null ? -1 : seq + k
    }
    this.gapStart += n
  }

  /** Removes tokens `i .. i+n`. */
  delete(i: number, n: number): void {
    this.moveGap(i)
    this.gapEnd += n
  }

  /** Forgets every token, then holds `n` unknown ones. */
  clear(n: number): void {
    this.gapStart = 0
    this.gapEnd = this.agentCol.length
    this.insert(0, n, null, 0)
  }

  private at(i: number): number {
    return i < this.gapStart ? i : i + (this.gapEnd - this.gapStart)
  }

  /** Moves the gap so that it starts before token i. */
  private moveGap(i: number): void {
    const { gapStart, gapEnd } = this
    if (i < gapStart) {
      const d = gapStart - i
      this.agentCol.copyWithin(gapEnd - d, i, gapStart)
      this.seqCol.copyWithin(gapEnd - d, i, gapStart)
      this.gapStart = i
      this.gapEnd = gapEnd - d
    } else if (i > gapStart) {
      const d = i - gapStart
      this.agentCol.copyWithin(gapStart, gapEnd, gapEnd + d)
      this.seqCol.copyWithin(gapStart, gapEnd, gapEnd + d)
      this.gapStart = i
      this.gapEnd = gapEnd + d
    }
  }

  /** Reallocates for at least `n` tokens, keeping the gap where it is. */
  private grow(n: number): void {
    let cap = this.agentCol.length
    while (cap < n + 64) cap *= 2
    const tail = this.agentCol.length - this.gapEnd
    const agents = new Int32Array(cap)
    const seqs = new Int32Array(cap)
    agents.set(this.agentCol.subarray(0, this.gapStart))
    seqs.set(this.seqCol.subarray(0, this.gapStart))
    agents.set(this.agentCol.subarray(this.gapEnd), cap - tail)
    seqs.set(this.seqCol.subarray(this.gapEnd), cap - tail)
    this.agentCol = agents
    this.seqCol = seqs
    this.gapEnd = cap - tail
  }

  private indexOf(agent: string): number {
    let a = this.agentIndex.get(agent)
    if (a === undefined) {
      a = this.agentIds.length
      this.agentIds.push(agent)
      this.agentIndex.set(agent, a)
    }
    return a
  }
}
