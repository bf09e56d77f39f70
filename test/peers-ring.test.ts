/**
 * Real processes: three Node peers linked in a ring with listenPeers/connectPeer
 * over ws on 127.0.0.1; one is SIGKILLed and restarted from its saved state on the
 * same port; the survivors' connectPeer reconnects with backoff; all converge, every
 * marker exactly once, and the restarted peer receives only what it missed.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { TextDoc } from '../shared/index.ts'

interface State {
  text: string
  version: Record<string, number>
  pending: number
  bytesReceived: number
}

class Peer {
  readonly proc: ChildProcess
  private waiters: ((o: Record<string, unknown>) => boolean)[] = []
  exited = false
  constructor(stateFile: string, port: number) {
    this.proc = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, 'support', 'peer-process.ts'),
        stateFile,
        String(port),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    )
    this.proc.on('exit', () => (this.exited = true))
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const o = JSON.parse(line) as Record<string, unknown>
      this.waiters = this.waiters.filter((w) => !w(o))
    })
  }
  send(o: object): void {
    this.proc.stdin!.write(JSON.stringify(o) + '\n')
  }
  next(type: string, ms = 10_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${type} within ${ms} ms`)), ms)
      this.waiters.push((o) => {
        if (o.type !== type) return false
        clearTimeout(t)
        resolve(o)
        return true
      })
    })
  }
  async state(): Promise<State> {
    const p = this.next('state')
    this.send({ cmd: 'state' })
    return (await p) as unknown as State
  }
  kill(): Promise<void> {
    return new Promise((r) => {
      if (this.exited) return r()
      this.proc.once('exit', () => r())
      this.proc.kill('SIGKILL')
    })
  }
}

async function start(file: string, port = 0): Promise<{ peer: Peer; port: number }> {
  const peer = new Peer(file, port)
  const msg = await peer.next('listening', 20_000)
  return { peer, port: msg.port as number }
}

/** Polls until every peer has the same text containing all markers; returns the text. */
async function converge(peers: Peer[], markers: string[], ms = 20_000): Promise<string> {
  const end = Date.now() + ms
  let last: State[] = []
  while (Date.now() < end) {
    last = await Promise.all(peers.map((p) => p.state()))
    const text = last[0]!.text
    if (
      last.every((s) => s.text === text && s.pending === 0) &&
      markers.every((m) => text.includes(m))
    ) {
      return text
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`no convergence: ${last.map((s) => JSON.stringify(s.version)).join(' | ')}`)
}

function checkMarkers(text: string, markers: string[]): void {
  const found = (text.match(/<[^<>]*>/g) ?? []).sort()
  assert.equal(found, [...markers].sort(), 'every marker exactly once')
  assert.not.match(text.replace(/<[^<>]*>/g, ''), /[<>]/, 'no torn marker')
}

test('three processes in a ring converge; one killed and restarted from its saved state rejoins', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'polyphony-peers-'))
  const files = [0, 1, 2].map((i) => join(dir, `peer${i}.bin`))
  const peers: Peer[] = []
  try {
    const started = await Promise.all(files.map((f) => start(f)))
    started.forEach((s) => peers.push(s.peer))
    const ports = started.map((s) => s.port)
    // Ring: 0 -> 1 -> 2 -> 0.
    peers.forEach((p, i) => p.send({ cmd: 'connect', url: `ws://127.0.0.1:${ports[(i + 1) % 3]}` }))
    const markers: string[] = []
    // Incompressible filler, so a full resync would be visibly bigger than the catch-up.
    let seed = 1
    const filler = Array.from({ length: 3000 }, () => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return 'abcdefghijklmnopqrstuvwxyz '[seed % 27]
    }).join('')
    peers[0]!.send({ cmd: 'insert', text: filler })
    for (let k = 0; k < 10; k++) {
      peers.forEach((p, i) => {
        const m = `<p${i}-${k}>`
        markers.push(m)
        p.send({ cmd: 'insert', text: m })
      })
    }
    const text1 = await converge(peers, markers)
    checkMarkers(text1, markers)

    // Kill peer 1 hard; the others keep editing.
    await peers[1]!.kill()
    for (let k = 0; k < 5; k++) {
      for (const i of [0, 2]) {
        const m = `<q${i}-${k}>`
        markers.push(m)
        peers[i]!.send({ cmd: 'insert', text: m })
      }
    }
    await converge([peers[0]!, peers[2]!], markers)

    // Restart it from its saved state on the same port; it dials peer 2 again, and
    // peer 0's connectPeer finds it by itself (reconnect with backoff).
    const restarted = await start(files[1]!, ports[1])
    peers[1] = restarted.peer
    peers[1].send({ cmd: 'connect', url: `ws://127.0.0.1:${ports[2]}` })
    for (let k = 0; k < 3; k++) {
      const m = `<r1-${k}>`
      markers.push(m)
      peers[1].send({ cmd: 'insert', text: m })
    }
    const text = await converge(peers, markers, 30_000)
    checkMarkers(text, markers)
    assert.is(text.replace(/<[^<>]*>/g, ''), filler, 'the filler, split by markers, is intact')

    // Only what was missing travelled: far less than the whole history.
    const st = await peers[1].state()
    const history = new TextDoc()
    history.insert(0, text)
    const full = history.encodeUpdate().length
    assert.ok(
      st.bytesReceived < full / 2,
      `restarted peer received ${st.bytesReceived} bytes; the text alone encodes to ${full}`,
    )
  } finally {
    await Promise.all(peers.map((p) => p.kill()))
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
