/**
 * A hand-driven protocol peer for tests: speaks the wire format directly over a
 * channel, so a test can send exactly the (possibly hostile) messages it wants to
 * a real `link` and read what the link answers.
 */
import type { Channel } from '../../shared/channels.ts'
import { WireState, decodeMessage, encodeMessage, type Message } from '../../shared/protocol.ts'

export class RawPeer {
  readonly tx = new WireState()
  readonly rx = new WireState()
  readonly received: Message[] = []
  closed = false
  constructor(readonly channel: Channel) {
    channel.onMessage((m) => this.received.push(decodeMessage(m, this.rx)))
    channel.onClose(() => (this.closed = true))
  }
  send(msg: Message): void {
    this.channel.send(encodeMessage(msg, this.tx))
  }
  sendBytes(bytes: Uint8Array): void {
    this.channel.send(bytes)
  }
  /** Sends HELLO; `tree`: ask for relay-tree links (the peer may then PRUNE and GRAFT). */
  hello(have: Record<string, number> = {}, readOnly = false, tree = false): void {
    const vv = Object.assign(Object.create(null), have)
    // A raw peer reads what it gets with a plain decoder: it takes nothing deflated.
    this.send({ type: 'hello', readOnly, id: 'raw', have: vv, durable: vv, noDeflate: true, tree })
  }
  events(update: Uint8Array, have: Record<string, number>): void {
    const vv = Object.assign(Object.create(null), have)
    this.send({ type: 'events', updates: [update], ackWanted: true, have: vv })
  }
  of<T extends Message['type']>(type: T): Extract<Message, { type: T }>[] {
    return this.received.filter((m) => m.type === type) as Extract<Message, { type: T }>[]
  }
}

/** Waits (real time) until `cond()` holds, polling; throws after `ms`. */
export async function until(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
