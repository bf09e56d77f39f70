/**
 * A peer replica as a child process, for the real-process tests: loads its TextDoc
 * from a state file (if present), saves it after every change (write + rename),
 * listens with `listenPeers` and dials with `connectPeer` on command.
 *
 * Protocol: JSON lines. stdin commands: {cmd:'connect', url}, {cmd:'insert', text}
 * (at a random position outside any `<...>` marker), {cmd:'state'}, {cmd:'exit'}.
 * stdout events: {type:'listening', port, agent}, {type:'state', text, version,
 * pending, bytesReceived}, {type:'error', message}.
 *
 * Usage: node --import tsx test/support/peer-process.ts STATE_FILE PORT
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { TextDoc } from '../../shared/index.ts'
import { connectPeer, listenPeers, type PeerConnection } from '../../client/index.ts'
import type { Link } from '../../shared/sync.ts'

const [stateFile, portArg] = process.argv.slice(2)
if (!stateFile) throw new Error('usage: peer-process.ts STATE_FILE PORT')

const doc = existsSync(stateFile) ? TextDoc.load(readFileSync(stateFile)) : new TextDoc()
const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n')

const save = () => {
  writeFileSync(stateFile + '.tmp', doc.save())
  renameSync(stateFile + '.tmp', stateFile)
}
doc.on('update', save)

/** Every link this process made, for the bytes it received since the process started. */
const links: Link[] = []
const track = (l: Link) => void links.push(l)

const listener = await listenPeers({
  port: Number(portArg ?? 0),
  host: '127.0.0.1',
  doc,
  link: { batchDelayMs: 10, maxBatchDelayMs: 100 },
  onLink: track,
})
const dialed: PeerConnection[] = []
out({ type: 'listening', port: listener.port, agent: doc.agent })

function boundaries(s: string): number[] {
  const res: number[] = []
  let inside = false
  for (let i = 0; i <= s.length; i++) {
    if (!inside) res.push(i)
    if (s[i] === '<') inside = true
    else if (s[i] === '>') inside = false
  }
  return res
}

const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  try {
    const c = JSON.parse(line) as { cmd: string; url?: string; text?: string }
    if (c.cmd === 'connect') {
      dialed.push(
        connectPeer({
          url: c.url!,
          doc,
          minDelayMs: 50,
          maxDelayMs: 400,
          link: { batchDelayMs: 10, maxBatchDelayMs: 100 },
          onLink: track,
        }),
      )
    } else if (c.cmd === 'insert') {
      const b = boundaries(doc.toString())
      doc.insert(b[Math.floor(Math.random() * b.length)]!, c.text!)
    } else if (c.cmd === 'state') {
      out({
        type: 'state',
        text: doc.toString(),
        version: doc.version(),
        pending: doc.pendingCount,
        bytesReceived: links.reduce((n, l) => n + l.stats.bytesReceived, 0),
      })
    } else if (c.cmd === 'exit') {
      for (const d of dialed) d.close()
      void listener.close().then(() => process.exit(0))
    }
  } catch (e) {
    out({ type: 'error', message: (e as Error).message })
  }
})
