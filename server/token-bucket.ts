/**
 * A token bucket: `rate` tokens per second, at most `burst` held. Connections pace their
 * events and messages with it (`take`: how long to pause); the endpoint refuses connection
 * attempts with it (`tryTake`: all or nothing).
 */
export class Bucket {
  private tokens: number
  private last = performance.now()

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.tokens = burst
  }

  /** Takes `n` tokens, going into debt if need be; returns the ms to pause to stay within the rate (0: none). */
  take(n: number): number {
    this.refill()
    this.tokens -= n
    return this.tokens >= 0 || this.rate === 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000)
  }

  /** Takes `n` tokens if the bucket holds them; false (taking nothing) otherwise. */
  tryTake(n: number): boolean {
    this.refill()
    if (this.tokens < n) return false
    this.tokens -= n
    return true
  }

  /** Whether the bucket has refilled to its burst (it then says nothing a new one would not). */
  get full(): boolean {
    this.refill()
    return this.tokens >= this.burst
  }

  private refill(): void {
    const now = performance.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate)
    this.last = now
  }
}
