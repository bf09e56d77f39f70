/**
 * Load-client adapters, one per server kind, all with the same small surface: join a document,
 * insert text at a relative position, report the text of every remote insert as it arrives
 * (decoded from the incoming update only: never by walking the whole document), and count the
 * bytes received on the socket.
 *
 * - ours: `connect` (client/connection.ts) with a TextDoc; remote inserts from its `change` ops.
 * - hocuspocus: HocuspocusProvider with a Y.Doc; remote inserts from `Y.decodeUpdate` of each
 *   incoming update.
 * - ywebsocket: a minimal y-websocket protocol client (y-protocols sync messages over ws).
 */
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import { connect } from '../../client/connection.ts'
import { TextDoc } from '../../shared/text-doc.ts'
import { recordIfAsked } from './record.ts'

export type ServerKind = 'ours' | 'hocuspocus' | 'ywebsocket'

/** One load client. */
export interface BenchClient {
  readonly synced: Promise<void>
  /** Inserts `text` at `frac` (0..1) of the current length. */
  insert(frac: number, text: string): void
  /** Current document length. */
  length(): number
  /** Called with the text of each remote insert. */
  onRemoteInsert(h: (text: string) => void): void
  /** Bytes received on the socket so far. */
  bytesReceived(): number
  close(): void
}

/** A `ws` WebSocket that counts received bytes in `counter.n`. */
function countingWs(counter: { n: number }): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols)
      this.on('message', (d: Buffer | ArrayBuffer | Buffer[]) => {
        counter.n += Array.isArray(d)
          ? d.reduce((s, b) => s + b.length, 0)
          : 'byteLength' in d
            ? d.byteLength
            : 0
      })
    }
  } as typeof WebSocket
}

function insertedStrings(update: Uint8Array): string[] {
  const out: string[] = []
  for (const s of Y.decodeUpdate(update).structs) {
    if (s instanceof Y.Item && s.content instanceof Y.ContentString) out.push(s.content.str)
  }
  return out
}

function yBench(
  doc: Y.Doc,
  counter: { n: number },
  synced: Promise<void>,
  close: () => void,
): BenchClient {
  const text = doc.getText('t')
  const handlers: ((t: string) => void)[] = []
  doc.on('update', (update: Uint8Array, origin: unknown) => {
    if (origin === 'local') return
    if (handlers.length === 0) return
    for (const s of insertedStrings(update)) for (const h of handlers) h(s)
  })
  return {
    synced,
    insert(frac, t) {
      doc.transact(() => text.insert(Math.floor(frac * text.length), t), 'local')
    },
    length: () => text.length,
    onRemoteInsert: (h) => void handlers.push(h),
    bytesReceived: () => counter.n,
    close,
  }
}

/** Edits applied to a client's document before it connects (preloading a big document). */
export type Prefill = (edit: {
  ins(pos: number, text: string): void
  del(pos: number, n: number): void
}) => void

/** Opens one client of `kind` on `docId` at ws base `url`, its document built by `prefill`. */
export async function openClient(
  kind: ServerKind,
  url: string,
  docId: string,
  prefill?: Prefill,
): Promise<BenchClient> {
  const counter = { n: 0 }
  const Ws = countingWs(counter)
  if (kind === 'ours') {
    const doc = new TextDoc()
    recordIfAsked(doc)
    prefill?.({ ins: (p, t) => doc.insert(p, t), del: (p, n) => doc.delete(p, n) })
    const conn = connect({ url, docId, WebSocket: Ws, doc })
    const handlers: ((t: string) => void)[] = []
    conn.doc.on('change', (ops, origin) => {
      if (origin === undefined) return
      for (const op of ops) if ('insert' in op) for (const h of handlers) h(op.insert)
    })
    return {
      synced: conn.synced,
      insert: (frac, t) => conn.doc.insert(Math.floor(frac * conn.doc.length), t),
      length: () => conn.doc.length,
      onRemoteInsert: (h) => void handlers.push(h),
      bytesReceived: () => counter.n,
      close: () => conn.close(),
    }
  }
  const doc = new Y.Doc()
  if (prefill) {
    const t = doc.getText('t')
    doc.transact(
      () => prefill({ ins: (p, s) => t.insert(p, s), del: (p, n) => t.delete(p, n) }),
      'local',
    )
  }
  if (kind === 'hocuspocus') {
    const { HocuspocusProvider } = await import('@hocuspocus/provider')
    let resolve!: () => void
    const synced = new Promise<void>((r) => (resolve = r))
    const provider = new HocuspocusProvider({
      url,
      name: docId,
      document: doc,
      WebSocketPolyfill: Ws,
      onSynced: () => resolve(),
    } as never)
    return yBench(doc, counter, synced, () => provider.destroy())
  }
  // y-websocket protocol: messageSync = 0 (step1, step2, update), messageAwareness = 1.
  const ws = new Ws(`${url}/${encodeURIComponent(docId)}`)
  ws.binaryType = 'arraybuffer'
  let resolve!: () => void
  const synced = new Promise<void>((r) => (resolve = r))
  ws.on('open', () => {
    const enc = encoding.createEncoder()
    encoding.writeVarUint(enc, 0)
    syncProtocol.writeSyncStep1(enc, doc)
    ws.send(encoding.toUint8Array(enc))
  })
  ws.on('message', (data: ArrayBuffer) => {
    const dec = decoding.createDecoder(new Uint8Array(data))
    const enc = encoding.createEncoder()
    if (decoding.readVarUint(dec) !== 0) return
    encoding.writeVarUint(enc, 0)
    const type = syncProtocol.readSyncMessage(dec, enc, doc, 'remote')
    if (type === syncProtocol.messageYjsSyncStep2) resolve()
    if (encoding.length(enc) > 1) ws.send(encoding.toUint8Array(enc))
  })
  doc.on('update', (update: Uint8Array, origin: unknown) => {
    if (origin === 'remote' || ws.readyState !== WebSocket.OPEN) return
    const enc = encoding.createEncoder()
    encoding.writeVarUint(enc, 0)
    syncProtocol.writeUpdate(enc, update)
    ws.send(encoding.toUint8Array(enc))
  })
  return yBench(doc, counter, synced, () => ws.close())
}
