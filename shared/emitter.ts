/**
 * A minimal typed event emitter. A throwing listener does not stop the others
 * or the operation that emitted; the error is reported asynchronously.
 */
type Handler = (...args: never[]) => void

export class Emitter<Events extends { [name: string]: unknown[] }> {
  private readonly handlers = new Map<keyof Events, Set<Handler>>()

  on<K extends keyof Events>(event: K, handler: (...args: Events[K]) => void): () => void {
    let set = this.handlers.get(event)
    if (set === undefined) this.handlers.set(event, (set = new Set()))
    const h = handler as unknown as Handler
    set.add(h)
    return () => {
      set.delete(h)
    }
  }

  has(event: keyof Events): boolean {
    const set = this.handlers.get(event)
    return set !== undefined && set.size > 0
  }

  emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    const set = this.handlers.get(event)
    if (set === undefined) return
    for (const h of [...set]) {
      try {
        ;(h as unknown as (...args: Events[K]) => void)(...args)
      } catch (e) {
        queueMicrotask(() => {
          throw e
        })
      }
    }
  }
}
