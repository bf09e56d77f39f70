/**
 * THROWAWAY: a fake replica (the naive RefDoc with JSON updates) used only while the
 * real TextDoc has not landed. Final tests run on TextDoc; delete this file then.
 */
import { RefDoc, type RefEvent } from './reference.ts'
import type { SimDoc, SimDocFactory } from './netsim.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()

export class FakeDoc implements SimDoc {
  private ref: RefDoc
  private handlers: ((u: Uint8Array, o: unknown) => void)[] = []
  constructor(
    readonly agent: string,
    events: RefEvent[] = [],
  ) {
    this.ref = new RefDoc(agent)
    this.ref.applyEvents(events)
  }
  private emit(events: RefEvent[], origin: unknown): void {
    if (events.length === 0) return
    const u = enc.encode(JSON.stringify(events))
    for (const h of [...this.handlers]) h(u, origin)
  }
  insert(pos: number, text: string): void {
    this.emit(this.ref.insert(pos, text), undefined)
  }
  delete(pos: number, len: number): void {
    this.emit(this.ref.delete(pos, len), undefined)
  }
  toString(): string {
    return this.ref.toString()
  }
  get length(): number {
    return this.ref.length
  }
  get pendingCount(): number {
    return this.ref.pendingCount
  }
  version() {
    return this.ref.version()
  }
  encodeUpdate(since?: Readonly<Record<string, number>>): Uint8Array {
    return enc.encode(JSON.stringify(this.ref.events(since)))
  }
  applyUpdate(update: Uint8Array, origin?: unknown): void {
    const events = JSON.parse(dec.decode(update)) as RefEvent[]
    this.emit(this.ref.applyEvents(events), origin)
  }
  on(_e: 'update', h: (u: Uint8Array, o: unknown) => void): () => void {
    this.handlers.push(h)
    return () => this.handlers.splice(this.handlers.indexOf(h), 1)
  }
  save(): Uint8Array {
    return this.encodeUpdate()
  }
  checkInvariants(): void {
    this.ref.checkInvariants()
  }
}

export const fakeFactory: SimDocFactory = {
  create: (agent) => new FakeDoc(agent),
  load: (bytes, agent) => new FakeDoc(agent, JSON.parse(dec.decode(bytes)) as RefEvent[]),
}
