/**
 * The id of every token of a RichDoc's document, by position: two growable
 * Int32 columns (agent index into a table of agent ids, seq), edited with
 * `copyWithin`, so an insert or delete costs one memmove of the tail.
 *
 * Invariant: `length` equals the number of document tokens; seq -1 marks a
 * token whose id is not known yet (the owner fills it before reading).
 */
export class TokenIds {
  private agentCol = new Int32Array(1024)
  private seqCol = new Int32Array(1024)
  private readonly agentIds: string[] = []
  private readonly agentIndex = new Map<string, number>()
  length = 0

  /** The agent id of token i. */
  agent(i: number): string {
    return this.agentIds[this.agentCol[i]]
  }

  /** The seq of token i (-1 when not known yet). */
  seq(i: number): number {
    return this.seqCol[i]
  }

  /** Sets the id of token i. */
  set(i: number, agent: string, seq: number): void {
    this.agentCol[i] = this.indexOf(agent)
    this.seqCol[i] = seq
  }

  /** Inserts `n` tokens at `i`: ids `(agent, seq .. seq+n)`, or unknown (-1) when agent is null. */
  insert(i: number, n: number, agent: string | null, seq: number): void {
    this.reserve(this.length + n)
    this.agentCol.copyWithin(i + n, i, this.length)
    this.seqCol.copyWithin(i + n, i, this.length)
    const a = agent === null ? 0 : this.indexOf(agent)
    for (let k = 0; k < n; k++) {
      this.agentCol[i + k] = a
      this.seqCol[i + k] = agent === null ? -1 : seq + k
    }
    this.length += n
  }

  /** Removes tokens `i .. i+n`. */
  delete(i: number, n: number): void {
    this.agentCol.copyWithin(i, i + n, this.length)
    this.seqCol.copyWithin(i, i + n, this.length)
    this.length -= n
  }

  /** Forgets every token. */
  clear(n: number): void {
    this.length = 0
    this.insert(0, n, null, 0)
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

  private reserve(n: number): void {
    if (n <= this.agentCol.length) return
    let cap = this.agentCol.length
    while (cap < n) cap *= 2
    const agents = new Int32Array(cap)
    agents.set(this.agentCol.subarray(0, this.length))
    const seqs = new Int32Array(cap)
    seqs.set(this.seqCol.subarray(0, this.length))
    this.agentCol = agents
    this.seqCol = seqs
  }
}
