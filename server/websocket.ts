/**
 * The server's side of a WebSocket (RFC 6455): the opening handshake on an HTTP upgrade, and
 * frames read and written on the upgraded TCP socket. No extensions (permessage-deflate is
 * declined), no subprotocols, no streams.
 *
 * Why not `ws`'s server socket: a hub holds thousands of connections, and ws gives each a
 * WebSocket, a Receiver (a Writable stream, with its state, buffers and listeners) and a
 * Sender: about 1.2 KB of heap per connection before any application state (heap snapshots of
 * the memory benchmark). A `HubSocket` is one object of eleven fields; the socket's listeners
 * are shared functions. (Clients, the tests and the benchmark's peers still use `ws`.)
 *
 * Invariants: a frame's declared length is checked against `maxPayload` before any of it is
 * buffered (close 1009); an incomplete frame is assembled in one buffer that grows by
 * doubling, never past the bytes received twice over (a trickled frame costs linear time and
 * no per-chunk objects); client frames must be masked with the RSV bits clear, and control
 * frames final and at most 125 bytes (1002); text messages and close reasons must be UTF-8
 * (1007); no message is delivered after a close frame was sent or received; every close frame
 * sent carries a valid code.
 */
import { createHash } from 'node:crypto'
import { isUtf8 } from 'node:buffer'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

/** What a HubSocket tells its owner (the server's connection). */
export interface HubSocketHandler {
  /** A whole message (fragments joined, payload unmasked). */
  onFrame(data: Buffer, isBinary: boolean): void
  /** A ping's payload: the handler answers with `pong` (or not, if the peer does not read). */
  onPing(data: Buffer): void
  /** A socket error or a protocol violation by the peer (the socket is closing). */
  onSocketError(err: Error): void
  /** The TCP socket closed (called once). */
  onSocketClose(): void
  /**
   * A message over `maxPayload` is arriving (none of it kept): the socket then closes with
   * 1009, unless the handler closed it first with a code of its own.
   */
  onOversize?(): void
}

/** `readyState` values, as the WebSocket API numbers them. */
export const OPEN = 1
export const CLOSING = 2
export const CLOSED = 3

/** A close frame from the peer arrived: nothing more is read. */
const CLOSE_RECEIVED = 1
/** We sent a close frame: nothing more is sent. */
const CLOSE_SENT = 2
/** The owner paused reading: no message is delivered until `resume`. */
const PAUSED = 4

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const KEY = /^[+/0-9A-Za-z]{22}==$/
/** A peer that does not answer our close frame within this is cut off. */
const CLOSE_TIMEOUT_MS = 2000
/** Messages up to this size are framed into one buffer (header + copy); bigger ones go in two writes. */
const COPY_LIMIT = 16 * 1024
/** The smallest buffer a partial frame or message is assembled in. */
const MIN_ASSEMBLY = 1024

/** The HubSocket of a socket (a symbol property, read by the shared listeners below). */
const HUB = Symbol('hubSocket')
type HubbedSocket = Socket & { [HUB]: HubSocket }

/**
 * Completes the opening handshake of `req` (the http server's 'upgrade' event) and returns the
 * WebSocket, or answers 400 and returns null when the request is not a valid RFC 6455 upgrade.
 */
export function acceptWebSocket(
  req: IncomingMessage,
  duplex: Duplex,
  head: Buffer,
  maxPayload: number,
): HubSocket | null {
  const key = req.headers['sec-websocket-key']
  const problem =
    req.method !== 'GET'
      ? 'method must be GET'
      : req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor < 1)
        ? 'HTTP/1.1 or later required'
        : req.headers.upgrade?.toLowerCase() !== 'websocket'
          ? 'Upgrade must be websocket'
          : req.headers['sec-websocket-version'] !== '13'
            ? 'Sec-WebSocket-Version must be 13'
            : key === undefined || !KEY.test(key)
              ? 'missing or invalid Sec-WebSocket-Key'
              : null
  if (problem !== null) {
    answerAndClose(
      duplex,
      `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nSec-WebSocket-Version: 13\r\n` +
        `Content-Type: text/plain\r\nContent-Length: ${problem.length}\r\n\r\n${problem}`,
    )
    return null
  }
  const socket = duplex as Socket
  if (!socket.readable || !socket.writable) {
    socket.destroy()
    return null
  }
  const accept = createHash('sha1')
    .update(key + GUID)
    .digest('base64')
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  )
  socket.setTimeout(0)
  socket.setNoDelay(true)
  if (head.length > 0) socket.unshift(head)
  return new HubSocket(socket, maxPayload)
}

/**
 * Answers a refused upgrade (or a malformed request) with `response` and closes the socket
 * once that is written: a peer that never closes its side holds no socket (the http server no
 * longer tracks an upgraded one, so shutdown could not reach it either).
 */
export function answerAndClose(socket: Duplex, response: string): void {
  socket.once('finish', destroyWritten)
  socket.end(response)
}

/** One server-side WebSocket on an upgraded socket (made by `acceptWebSocket`). */
export class HubSocket {
  /** Who gets the messages and events (null: they are dropped; a close still closes). */
  handler: HubSocketHandler | null = null
  readyState = OPEN
  private flags = 0
  /**
   * The start of an incomplete frame (`assembled` bytes of it; the buffer may be longer), or
   * null; `needed` is the byte count at which parsing can go on (0 while the header is short).
   */
  private assembly: Buffer | null = null
  private assembled = 0
  private needed = 0
  /**
   * A fragmented message in progress: its first `joined` bytes (the buffer may be longer), and
   * its first frame's opcode (0: no message in progress).
   */
  private fragments: Buffer | null = null
  private joined = 0
  private fragmentOpcode = 0

  constructor(
    readonly socket: Socket,
    /** The largest message taken (a connection lowers it until it has authenticated). */
    public maxPayload: number,
  ) {
    ;(socket as HubbedSocket)[HUB] = this
    socket.on('data', onSocketData)
    socket.on('end', onSocketEnd)
    socket.on('close', onSocketClose)
    socket.on('error', onSocketError)
  }

  /** Bytes written but not yet handed to the kernel (the peer is not reading fast enough). */
  get bufferedAmount(): number {
    return this.socket.writableLength
  }

  /**
   * Sends one binary message (dropped once a close frame was sent). `data` must not change
   * afterwards: it may be written later, and a small message's frame is kept for the next send
   * of the same object (a hub sends one message object to every client: framed once).
   */
  send(data: Uint8Array): void {
    if (this.readyState !== OPEN) return
    if (data === framed.message) this.socket.write(framed.frame!)
    else this.writeFrame(0x82, data)
  }

  ping(): void {
    if (this.readyState === OPEN) this.writeFrame(0x89, EMPTY)
  }

  pong(data: Uint8Array): void {
    if (this.readyState === OPEN) this.writeFrame(0x8a, data)
  }

  /**
   * Starts the closing handshake with `code` (a valid close code) and `reason` (at most 123
   * bytes of it are sent); the socket closes when the peer has answered and closed its side,
   * or after CLOSE_TIMEOUT_MS whatever the peer does. Reading resumes if it was paused (the
   * answer must be read); no message is delivered any more.
   */
  close(code: number, reason = ''): void {
    if (this.flags & CLOSE_SENT || this.readyState === CLOSED) return
    this.flags = (this.flags | CLOSE_SENT) & ~PAUSED
    this.readyState = CLOSING
    const socket = this.socket
    if (!socket.writable) return void socket.destroy() // the peer ended: no frame
    this.writeFrame(0x88, closePayload(code, reason))
    if (this.flags & CLOSE_RECEIVED) socket.end()
    socket.resume()
    setTimeout(destroySocket, CLOSE_TIMEOUT_MS, socket).unref()
  }

  /** Drops the connection at once (no closing handshake; nothing more is delivered). */
  terminate(): void {
    this.flags |= CLOSE_SENT | CLOSE_RECEIVED
    this.readyState = CLOSING
    this.socket.destroy()
  }

  /**
   * Stops reading (TCP backpressure reaches the peer) until `resume`: no message is delivered
   * meanwhile, not even one left in the chunk being parsed.
   */
  pause(): void {
    if (this.flags & CLOSE_SENT) return // reading on, for the peer's answer
    this.flags |= PAUSED
    this.socket.pause()
  }

  resume(): void {
    if (!(this.flags & PAUSED)) return
    this.flags &= ~PAUSED
    if (this.readyState === CLOSED) return
    this.socket.resume()
    // Whole frames that arrived before the pause are delivered now (no more bytes may come).
    if (this.assembly !== null && this.assembled >= this.needed) this.parseAssembly()
  }

  private writeFrame(first: number, data: Uint8Array): void {
    const n = data.byteLength
    const head = n < 126 ? 2 : n < 65536 ? 4 : 10
    const socket = this.socket
    if (n <= COPY_LIMIT) {
      const frame = Buffer.allocUnsafe(head + n)
      writeHeader(frame, first, n, head)
      frame.set(data, head)
      if (first === 0x82) {
        framed.message = data
        framed.frame = frame
      }
      socket.write(frame)
      return
    }
    const header = Buffer.allocUnsafe(head)
    writeHeader(header, first, n, head)
    socket.cork()
    socket.write(header)
    socket.write(data)
    socket.uncork()
  }

  /** Bytes from the socket. */
  receive(chunk: Buffer): void {
    if (this.flags & CLOSE_RECEIVED) return
    if (this.assembly === null) return this.parseAll(chunk)
    this.assemble(chunk)
    if (this.assembled >= this.needed && !(this.flags & PAUSED)) this.parseAssembly()
  }

  /** Parses the bytes assembled so far. */
  private parseAssembly(): void {
    const buf = this.assembly!.subarray(0, this.assembled)
    this.assembly = null
    this.assembled = 0
    this.parseAll(buf)
  }

  /** Parses `buf` and keeps what is left (an incomplete frame, or frames held by a pause). */
  private parseAll(buf: Buffer): void {
    const used = this.parse(buf)
    // (No assembly is in progress here: parsing starts only once one is taken.)
    if (used < buf.length && !(this.flags & CLOSE_RECEIVED)) this.assemble(buf.subarray(used))
  }

  /** Appends to the incomplete frame. */
  private assemble(chunk: Buffer): void {
    this.assembly = appendTo(this.assembly, this.assembled, chunk, this.needed)
    this.assembled += chunk.length
  }

  /** Handles every whole frame at the start of `buf`; returns the bytes used. */
  private parse(buf: Buffer): number {
    let pos = 0
    for (;;) {
      const avail = buf.length - pos
      this.needed = 0
      if (this.flags & (PAUSED | CLOSE_RECEIVED) || avail < 2) return pos
      const b0 = buf[pos]!
      const b1 = buf[pos + 1]!
      const opcode = b0 & 0x0f
      const fin = (b0 & 0x80) !== 0
      if ((b0 & 0x70) !== 0) return this.fail(1002, 'RSV bits set (no extension was agreed)')
      if ((b1 & 0x80) === 0) return this.fail(1002, 'client frame not masked')
      if (opcode >= 8) {
        if (opcode > 10) return this.fail(1002, `unknown opcode ${opcode}`)
        if (!fin) return this.fail(1002, 'fragmented control frame')
        if ((b1 & 0x7f) > 125) return this.fail(1002, 'control frame over 125 bytes')
      } else if (opcode > 2) return this.fail(1002, `unknown opcode ${opcode}`)
      else if (opcode === 0 && this.fragmentOpcode === 0) {
        return this.fail(1002, 'continuation frame without a message')
      } else if (opcode !== 0 && this.fragmentOpcode !== 0) {
        return this.fail(1002, 'new message inside a fragmented one')
      }
      let len = b1 & 0x7f
      let head = 2
      if (len === 126) {
        if (avail < 4) return this.wait(pos, 4 + 4)
        len = buf.readUInt16BE(pos + 2)
        head = 4
      } else if (len === 127) {
        if (avail < 10) return this.wait(pos, 10 + 4)
        const high = buf.readUInt32BE(pos + 2)
        if (high >= 0x80000000) return this.fail(1002, 'length with its most significant bit set')
        // Over 2^53 is not a length JavaScript can count; over maxPayload fails below anyway.
        len = high > 0x1fffff ? Infinity : high * 2 ** 32 + buf.readUInt32BE(pos + 6)
        head = 10
      }
      if (opcode < 8 && this.joined + len > this.maxPayload) {
        this.handler?.onOversize?.()
        return this.fail(1009, 'message over the size limit')
      }
      const start = pos + head + 4
      const end = start + len
      if (end > buf.length) return this.wait(pos, end - pos)
      const payload = buf.subarray(start, end)
      unmask(payload, buf, start - 4)
      pos = end
      if (opcode >= 8) this.control(opcode, payload)
      else if (opcode !== 0 && fin) this.message(opcode, payload)
      else {
        // A fragment: joined in one buffer (a flood of tiny fragments costs no object each).
        if (opcode !== 0) this.fragmentOpcode = opcode
        this.fragments = appendTo(this.fragments, this.joined, payload, 0)
        this.joined += len
        if (fin) {
          const whole = this.fragments.subarray(0, this.joined)
          const type = this.fragmentOpcode
          this.endFragments()
          this.message(type, whole)
        }
      }
    }
  }

  private endFragments(): void {
    this.fragments = null
    this.joined = 0
    this.fragmentOpcode = 0
  }

  /** Parsing stops at `pos` until `bytes` bytes from there have arrived. */
  private wait(pos: number, bytes: number): number {
    this.needed = bytes
    return pos
  }

  /** Delivers a whole message (text must be UTF-8). */
  private message(opcode: number, data: Buffer): void {
    if (opcode === 1 && !isUtf8(data)) this.fail(1007, 'text message is not UTF-8')
    else if (!(this.flags & CLOSE_SENT)) this.handler?.onFrame(data, opcode === 2)
  }

  /** Handles a ping, a pong or a close frame. */
  private control(opcode: number, payload: Buffer): void {
    if (opcode === 9) {
      if (!(this.flags & CLOSE_SENT)) this.handler?.onPing(payload)
      return
    }
    if (opcode === 10) return // pongs: the heartbeat counts bytes read instead
    let code = 1000
    if (payload.length === 1) return void this.fail(1002, 'close frame of one byte')
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0)
      if (!isValidCloseCode(code)) return void this.fail(1002, `invalid close code ${code}`)
      if (!isUtf8(payload.subarray(2))) return void this.fail(1007, 'close reason is not UTF-8')
    }
    this.flags |= CLOSE_RECEIVED
    this.endFragments()
    if (this.flags & CLOSE_SENT) this.socket.end()
    else this.close(code)
  }

  /**
   * The peer broke the protocol: tell the handler, close with `code`, read nothing more.
   * Returns 0 for `parse` to return (what is left unread no longer matters).
   */
  private fail(code: number, reason: string): number {
    this.flags |= CLOSE_RECEIVED
    this.endFragments()
    this.handler?.onSocketError(new Error(`WebSocket protocol: ${reason}`))
    this.close(code, reason)
    return 0
  }
}

/**
 * `buf` (its first `used` bytes) with `data` appended: the same buffer if it has room, else a
 * new one of at least double the size (or `hint`, the final size if known), so appending n
 * bytes costs O(n) in all.
 */
function appendTo(buf: Buffer | null, used: number, data: Buffer, hint: number): Buffer {
  const total = used + data.length
  let out = buf
  if (out === null || total > out.length) {
    const doubled = Math.max(2 * (buf?.length ?? 0), MIN_ASSEMBLY)
    out = Buffer.allocUnsafe(Math.max(total, hint > 0 ? Math.min(hint, doubled) : doubled))
    if (buf !== null) buf.copy(out, 0, 0, used)
  }
  data.copy(out, used)
  return out
}

const EMPTY = new Uint8Array(0)
/** The last small binary message sent, and its frame (server frames are unmasked: the same for every socket). */
const framed: { message: Uint8Array | null; frame: Buffer | null } = { message: null, frame: null }

function writeHeader(frame: Buffer, first: number, n: number, head: number): void {
  frame[0] = first
  if (head === 2) frame[1] = n
  else if (head === 4) {
    frame[1] = 126
    frame.writeUInt16BE(n, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(n / 2 ** 32), 2)
    frame.writeUInt32BE(n >>> 0, 6)
  }
}

/** XORs `payload` in place with the 4-byte mask at `buf[at]`. */
function unmask(payload: Buffer, buf: Buffer, at: number): void {
  const m0 = buf[at]!
  const m1 = buf[at + 1]!
  const m2 = buf[at + 2]!
  const m3 = buf[at + 3]!
  const n = payload.length
  let i = 0
  for (; i + 4 <= n; i += 4) {
    payload[i] ^= m0
    payload[i + 1] ^= m1
    payload[i + 2] ^= m2
    payload[i + 3] ^= m3
  }
  if (i < n) payload[i] ^= m0
  if (i + 1 < n) payload[i + 1] ^= m1
  if (i + 2 < n) payload[i + 2] ^= m2
}

/** Close codes a peer may send (RFC 6455 7.4: 1004-1006 and 1015 are never sent). */
function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  )
}

/** A close frame's payload: the code, then the reason cut to 123 bytes on a character boundary. */
function closePayload(code: number, reason: string): Buffer {
  let text = Buffer.from(reason)
  if (text.length > 123) {
    let n = 123
    while (n > 0 && (text[n]! & 0xc0) === 0x80) n-- // not inside a multi-byte character
    text = text.subarray(0, n)
  }
  const payload = Buffer.allocUnsafe(2 + text.length)
  payload.writeUInt16BE(code, 0)
  text.copy(payload, 2)
  return payload
}

// The socket's listeners, shared by every HubSocket (`this` is the socket).
function onSocketData(this: HubbedSocket, chunk: Buffer): void {
  this[HUB].receive(chunk)
}
function onSocketEnd(this: HubbedSocket): void {
  // The peer will send nothing more (it may have skipped the close frame): end our side too.
  const hub = this[HUB]
  hub.readyState = CLOSING
  this.end()
}
function onSocketClose(this: HubbedSocket): void {
  const hub = this[HUB]
  hub.readyState = CLOSED
  hub.handler?.onSocketClose()
}
function onSocketError(this: HubbedSocket, err: Error): void {
  this[HUB].handler?.onSocketError(err)
  this.destroy()
}
function destroySocket(socket: Socket): void {
  socket.destroy()
}
function destroyWritten(this: Duplex): void {
  this.destroy()
}
