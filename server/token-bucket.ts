/**
 * A token bucket: `rate` tokens per second, at most `burst` held. Connections pace their
 * events and messages with it (`take`: how long to pause); the endpoint refuses connection
 * attempts with it (`tryTake`: all or nothing).
 */
export class Bucket {
  /**
   * Tokens held, in thousandths, and the time of the last refill, in whole ms: integers (for
   * integer rates), which live in the object; a fractional field would get a number box of
   * its own, and every connection has a bucket.
   */
  private milli: number
  private last = Math.floor(performance.now())

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.milli = burst * 1000
  }

  /** Takes `n` tokens, going into debt if need be; returns the ms to pause to stay within the rate (0: none). */
  take(n: number): number {
    this.refill()
    this.milli -= n * 1000
    // `rate` tokens a second is `rate` thousandths a ms.
    return this.milli >= 0 || this.rate === 0 ? 0 : Math.ceil(-this.milli / this.rate)
  }

  /** Takes `n` tokens if the bucket holds them; false (taking nothing) otherwise. */
  tryTake(n: number): boolean {
    this.refill()
    if (this.milli < n * 1000) return false
    this.milli -= n * 1000
    return true
  }

  /** Whether the bucket has refilled to its burst (it then says nothing a new one would not). */
  get full(): boolean {
    this.refill()
    return this.milli >= this.burst * 1000
  }

  private refill(): void {
    const now = Math.floor(performance.now())
    this.milli = Math.min(this.burst * 1000, this.milli + (now - this.last) * this.rate)
    this.last = now
  }
}
