/**
 * Structured logging (pino). One root logger per server; connections and documents log through
 * children carrying `doc` and `conn` fields. Level from `POLYPHONY_LOG_LEVEL` (default `info`).
 */
import { pino, type Logger } from 'pino'

export type { Logger }

/** The default logger: JSON lines on stdout at `POLYPHONY_LOG_LEVEL` (default `info`). */
export function createLogger(level: string = process.env.POLYPHONY_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'polyphony', level })
}
