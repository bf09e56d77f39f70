/**
 * A server in a child process for kill tests: `createServer` on 127.0.0.1:`PORT` with SQLite in
 * `POLYPHONY_DATA`, prints `LISTENING <port>` on stdout, and shuts down gracefully on SIGTERM
 * (exit 0 after `close()`), like server/main.ts.
 */
import { pino } from 'pino'
import { createServer } from '../../server/create-server.ts'

const server = await createServer({
  port: Number(process.env.PORT ?? 0),
  host: '127.0.0.1',
  dataDir: process.env.POLYPHONY_DATA!,
  secret: process.env.POLYPHONY_SECRET || undefined,
  logger: pino({ level: process.env.POLYPHONY_LOG_LEVEL ?? 'warn' }, pino.destination(2)),
})
process.stdout.write(`LISTENING ${server.port}\n`)
process.on('SIGTERM', () => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  )
})
