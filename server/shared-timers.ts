/**
 * The clock of the server's links: timers due in the same millisecond share one Node timer.
 *
 * A document's links flush together on its batch window's grid (`alignBatches`): at 200
 * connections, 200 timers due at the same moment, 1,500 a second at the fan-out budget. Each
 * Node timer reads libuv's clock and goes into a timer list when set, and is taken out of it
 * when it fires: with about 2.6% of the server's main thread in that clock read alone at
 * 200 clients x 100 edits/s, one timer per moment does the same for a fraction.
 *
 * Callbacks due together run in the order they were set, as Node runs timers of one
 * millisecond, and never more than half a millisecond (the rounding to whole ones) early. One
 * that throws does not stop the others: the first error is thrown again once they have run,
 * uncaught, where a Node timer's would have gone.
 */
import type { Clock } from '../shared/link-api.ts'

/** A timer set on a `SharedTimers` clock (the handle `clearTimeout` takes). */
interface SharedTimer {
  fn: (() => void) | null
}

export class SharedTimers implements Clock {
  /** Timers by the whole ms they are due at; each key has one Node timer. */
  private readonly due = new Map<number, SharedTimer[]>()

  now(): number {
    return performance.now()
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const now = performance.now()
    // Links compute a due time on the window's grid (whole ms) and pass `at - now`: rounding
    // gives every one of them the same key, a few µs of clock reading apart.
    const at = Math.round(now + Math.max(0, ms))
    const timer: SharedTimer = { fn }
    const group = this.due.get(at)
    if (group !== undefined) group.push(timer)
    else {
      this.due.set(at, [timer])
      setTimeout(() => this.fire(at), Math.max(0, at - now))
    }
    return timer
  }

  clearTimeout(handle: unknown): void {
    if (handle !== null && typeof handle === 'object' && 'fn' in handle) {
      ;(handle as SharedTimer).fn = null
    }
  }

  soon(fn: () => void): void {
    queueMicrotask(fn)
  }

  /** Timers waiting (set, not yet run, not cleared): for tests. */
  get pending(): number {
    let n = 0
    for (const group of this.due.values()) for (const t of group) if (t.fn !== null) n++
    return n
  }

  private fire(at: number): void {
    // libuv's clock is read once per loop turn: after a long turn a Node timer can fire a ms
    // or more before its time by `performance.now()`. Not ours: it waits out the rest.
    const early = at - performance.now()
    if (early > 0.5) {
      setTimeout(() => this.fire(at), Math.ceil(early))
      return
    }
    const group = this.due.get(at)
    this.due.delete(at)
    if (group === undefined) return
    let failed: { error: unknown } | null = null
    for (const timer of group) {
      const fn = timer.fn
      if (fn === null) continue
      timer.fn = null
      try {
        fn()
      } catch (error) {
        failed ??= { error }
      }
    }
    if (failed !== null) {
      const { error } = failed
      queueMicrotask(() => {
        throw error
      })
    }
  }
}
