/**
 * `npm run token -- --doc NAME --role write [--user U] [--ttl SECONDS]`: prints a token for
 * `POLYPHONY_SECRET` (the same secret the server uses).
 */
import { parseArgs } from 'node:util'
import { signToken } from './auth.ts'

const usage = 'usage: npm run token -- --doc NAME --role read|write [--user USER] [--ttl SECONDS]'
let values: { doc?: string; role?: string; user?: string; ttl?: string }
try {
  values = parseArgs({
    options: {
      doc: { type: 'string' },
      role: { type: 'string', default: 'write' },
      user: { type: 'string' },
      ttl: { type: 'string', default: '3600' },
    },
  }).values
} catch (err) {
  console.error(String((err as Error).message) + '\n' + usage)
  process.exit(2)
}
const secret = process.env.POLYPHONY_SECRET
if (!secret) {
  console.error('POLYPHONY_SECRET is not set: the server runs open and needs no token.')
  process.exit(2)
}
if (!values.doc || (values.role !== 'read' && values.role !== 'write')) {
  console.error(usage)
  process.exit(2)
}
const ttl = Number(values.ttl)
if (!Number.isFinite(ttl) || ttl <= 0) {
  console.error(`--ttl must be a positive number of seconds\n${usage}`)
  process.exit(2)
}
const role: 'read' | 'write' = values.role
const claims =
  values.user === undefined
    ? { doc: values.doc, role }
    : { doc: values.doc, role, user: values.user }
console.log(signToken(secret, claims, ttl))
