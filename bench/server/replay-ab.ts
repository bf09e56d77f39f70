/**
 * Same-process A/B of the core on recorded load clients (bench/server/record.ts): replays the
 * recordings through this checkout's TextDoc and another checkout's, alternating (ABBA...), and
 * prints each side's integration times and the per-round ratios. On this machine the speed of
 * a process drifts by 10-20% from run to run, so separate runs cannot show a change of a few
 * per cent; alternating in one process can.
 *
 *   git worktree add /tmp/base <commit> && ln -s "$PWD/node_modules" /tmp/base/node_modules
 *   npx tsx bench/server/replay-ab.ts --base=/tmp/base --rounds=10 RECORD_DIR/1234.*.json
 */
import { resolve } from 'node:path'
import { TextDoc } from '../../shared/text-doc.ts'
import { loadRecordings, replaySideBySide } from './replay-streams.ts'

const args = process.argv.slice(2)
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const files = args.filter((a) => !a.startsWith('--'))
const baseDir = flag('base')
const rounds = Number(flag('rounds') ?? 10)
if (files.length === 0 || baseDir === undefined)
  throw new Error('usage: replay-ab.ts --base=CHECKOUT [--rounds=N] FILE...')
if (!Number.isInteger(rounds) || rounds < 3) throw new Error('--rounds must be an integer >= 3')

const base = (await import(resolve(baseDir, 'shared/text-doc.ts'))) as {
  TextDoc: typeof TextDoc
}
const clients = loadRecordings(files)

const times = { base: [] as number[], this: [] as number[] }
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? (['base', 'this'] as const) : (['this', 'base'] as const)
  for (const side of order)
    times[side].push(replaySideBySide(clients, side === 'base' ? base.TextDoc : TextDoc).ms)
}
// The first two rounds warm V8 up.
const kept = { base: times.base.slice(2), this: times.this.slice(2) }
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const ratios = kept.this.map((t, i) => t / kept.base[i])
for (const side of ['base', 'this'] as const)
  console.log(
    `${side.padEnd(4)}: median ${median(kept[side]).toFixed(0)} ms, ` +
      `min ${Math.min(...kept[side]).toFixed(0)} (${kept[side].map((t) => t.toFixed(0)).join(' ')})`,
  )
console.log(
  `this/base per round: median ${median(ratios).toFixed(3)} (${ratios.map((x) => x.toFixed(3)).join(' ')})`,
)
