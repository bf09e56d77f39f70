// Tokens: signing, verification of every failure kind, and the limits object.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { signToken, verifyToken } from '../server/auth.ts'
import { DEFAULT_LIMITS, resolveLimits } from '../server/limits.ts'

const secret = 's3cret'

test('a signed token verifies for its document, with role and user', () => {
  const t = signToken(secret, { doc: 'd1', role: 'write', user: 'ann' })
  const r = verifyToken(secret, t, 'd1')
  assert.ok(r.ok)
  if (r.ok) {
    assert.is(r.claims.role, 'write')
    assert.is(r.claims.user, 'ann')
    assert.ok(r.claims.exp > Date.now() / 1000 + 3500)
  }
})

test('missing, malformed, badly signed, expired, wrong-document tokens are refused', () => {
  const good = signToken(secret, { doc: 'd1', role: 'read' })
  const cases: [string | undefined, string, string][] = [
    [undefined, 'd1', 'missing'],
    ['', 'd1', 'missing'],
    ['garbage', 'd1', 'malformed'],
    ['a.b.c', 'd1', 'malformed'],
    [good.slice(0, -2) + (good.endsWith('AA') ? 'BB' : 'AA'), 'd1', 'bad-signature'],
    [signToken('other', { doc: 'd1', role: 'read' }), 'd1', 'bad-signature'],
    [signToken(secret, { doc: 'd1', role: 'read' }, -1), 'd1', 'expired'],
    [good, 'd2', 'wrong-document'],
    ['x'.repeat(10_000), 'd1', 'malformed'],
  ]
  for (const [token, doc, problem] of cases) {
    const r = verifyToken(secret, token, doc)
    assert.equal(r, { ok: false, problem }, `${String(token).slice(0, 20)} -> ${problem}`)
  }
})

test('a forged payload with a valid-looking signature is refused', () => {
  const t = signToken(secret, { doc: 'd1', role: 'read' })
  const [, sig] = t.split('.')
  const forged = Buffer.from(JSON.stringify({ doc: 'd1', role: 'write', exp: 9e9 })).toString(
    'base64url',
  )
  assert.equal(verifyToken(secret, `${forged}.${sig}`, 'd1'), {
    ok: false,
    problem: 'bad-signature',
  })
})

test('signToken refuses bad input with RangeError', () => {
  assert.throws(() => signToken('', { doc: 'd', role: 'read' }), RangeError)
  assert.throws(() => signToken(secret, { doc: '', role: 'read' }), RangeError)
  assert.throws(() => signToken(secret, { doc: 'd', role: 'admin' as 'read' }), RangeError)
  assert.throws(() => signToken(secret, { doc: 'd', role: 'read' }, NaN), RangeError)
})

test('limits: defaults are frozen; overrides are checked', () => {
  assert.ok(Object.isFrozen(DEFAULT_LIMITS))
  const l = resolveLimits({ maxMessageBytes: 1000 })
  assert.is(l.maxMessageBytes, 1000)
  assert.is(l.authTimeoutMs, DEFAULT_LIMITS.authTimeoutMs)
  assert.throws(() => resolveLimits({ maxMessageBytez: 1 } as never), /unknown limit/)
  assert.throws(() => resolveLimits({ maxMessageBytes: -1 }), RangeError)
  assert.throws(() => resolveLimits({ maxMessageBytes: NaN }), RangeError)
  // Fixed by the protocol (one document per link): refused, not silently ignored.
  assert.is(resolveLimits({ maxDocumentsPerConnection: 1 }).maxDocumentsPerConnection, 1)
  assert.throws(() => resolveLimits({ maxDocumentsPerConnection: 5 }), /must be 1/)
})

test.run()
