/**
 * Access tokens: HMAC-SHA256 signed claims binding a document id, a role and an expiry.
 *
 * Format: `base64url(JSON claims) "." base64url(HMAC-SHA256(secret, first part))`. The claims are
 * `{ doc, role, user?, exp }` with `exp` in seconds since the epoch. Verification is constant
 * time in the signature and checks, in order: shape, signature, expiry, document, role. Nothing
 * from the token is trusted before its signature checks out.
 */
import { createHmac, timingSafeEqual, randomBytes } from 'node:crypto'
import type { Identity } from '../shared/link-api.ts'

/** What a token grants. `write` implies `read`. */
export type Role = 'read' | 'write'

/** The claims a token carries once verified. */
export interface TokenClaims {
  readonly doc: string
  readonly role: Role
  /** The user presence is bound to; the server never takes identity from the client. */
  readonly user?: string
  /** Expiry, seconds since the epoch. */
  readonly exp: number
}

/** Why a token was refused; each maps to a close code / HTTP status in the endpoints. */
export type TokenProblem = 'missing' | 'malformed' | 'bad-signature' | 'expired' | 'wrong-document'

/** Result of `verifyToken`: the claims, or the reason it was refused. */
export type TokenResult =
  | { readonly ok: true; readonly claims: TokenClaims }
  | { readonly ok: false; readonly problem: TokenProblem }

const DEFAULT_TTL_SECONDS = 3600
const MAX_TOKEN_LENGTH = 4096

function sign(secret: string, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest()
}

/**
 * A token the server accepts for `claims.doc` with `claims.role`, valid for `ttlSeconds`
 * (default one hour). Throws RangeError on an empty secret or document id, or a bad ttl.
 */
export function signToken(
  secret: string,
  claims: { doc: string; role: Role; user?: string },
  ttlSeconds: number = DEFAULT_TTL_SECONDS,
): string {
  if (typeof secret !== 'string' || secret.length === 0) throw new RangeError('empty secret')
  if (typeof claims.doc !== 'string' || claims.doc.length === 0) {
    throw new RangeError('token needs a document id')
  }
  if (claims.role !== 'read' && claims.role !== 'write') {
    throw new RangeError(`role must be 'read' or 'write', got ${String(claims.role)}`)
  }
  if (!Number.isFinite(ttlSeconds)) throw new RangeError(`ttlSeconds ${ttlSeconds} not finite`)
  const exp = Math.floor(Date.now() / 1000) + Math.floor(ttlSeconds)
  const payload: TokenClaims =
    claims.user === undefined
      ? { doc: claims.doc, role: claims.role, exp }
      : { doc: claims.doc, role: claims.role, user: claims.user, exp }
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url')
  return `${body}.${sign(secret, body).toString('base64url')}`
}

/**
 * Checks `token` against `secret` for document `docId`. `now` is seconds since the epoch
 * (for tests). The role is returned, not checked: a read token may open a read-only link.
 */
export function verifyToken(
  secret: string,
  token: string | null | undefined,
  docId: string,
  now: number = Date.now() / 1000,
): TokenResult {
  if (token === null || token === undefined || token === '')
    return { ok: false, problem: 'missing' }
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) {
    return { ok: false, problem: 'malformed' }
  }
  const dot = token.indexOf('.')
  if (dot <= 0 || dot !== token.lastIndexOf('.')) return { ok: false, problem: 'malformed' }
  const body = token.slice(0, dot)
  const given = Buffer.from(token.slice(dot + 1), 'base64url')
  const expected = sign(secret, body)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, problem: 'bad-signature' }
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
  } catch {
    return { ok: false, problem: 'malformed' }
  }
  if (typeof parsed !== 'object' || parsed === null) return { ok: false, problem: 'malformed' }
  const c = parsed as Record<string, unknown>
  if (
    typeof c.doc !== 'string' ||
    (c.role !== 'read' && c.role !== 'write') ||
    typeof c.exp !== 'number' ||
    (c.user !== undefined && typeof c.user !== 'string')
  ) {
    return { ok: false, problem: 'malformed' }
  }
  if (c.exp <= now) return { ok: false, problem: 'expired' }
  if (c.doc !== docId) return { ok: false, problem: 'wrong-document' }
  const claims: TokenClaims =
    c.user === undefined
      ? { doc: c.doc, role: c.role, exp: c.exp }
      : { doc: c.doc, role: c.role, user: c.user as string, exp: c.exp }
  return { ok: true, claims }
}

/** The identity of a peer in open mode, where no token names the user: a random user id. */
export function anonymousIdentity(): Identity {
  return { user: 'anon-' + randomBytes(6).toString('base64url') }
}
