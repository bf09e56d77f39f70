/**
 * `npm start`: the server on `PORT` (default 8787) with SQLite in `POLYPHONY_DATA` (default
 * `./data`) and tokens checked against `POLYPHONY_SECRET` (unset: open mode, logged loudly).
 * SIGTERM / SIGINT shut it down gracefully (flush, close links with "going away"); a second
 * signal exits at once.
 */
import { createServer } from './create-server.ts'
import { createLogger } from './log.ts'

const log = createLogger()

function envInt(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    log.fatal(`${name} must be an integer 0-65535, got ${JSON.stringify(raw)}`)
    process.exit(2)
  }
  return n
}

process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection'))

const server = await createServer({
  port: envInt('PORT', 8787),
  dataDir: process.env.POLYPHONY_DATA || './data',
  secret: process.env.POLYPHONY_SECRET || undefined,
  logger: log,
  processMetrics: true,
})
if (!process.env.POLYPHONY_SECRET) {
  // Also on stderr, whatever the log level: the log line can be filtered out.
  console.error('polyphony: OPEN MODE, no POLYPHONY_SECRET: anyone who can reach it can write')
}
console.error(`polyphony: serving ${server.url.replace('127.0.0.1', 'localhost')}/ (Ctrl-C stops)`)

let stopping = false
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) process.exit(130)
    stopping = true
    log.info({ signal: sig }, 'shutting down')
    server.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  })
}
