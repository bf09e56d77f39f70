/** Public entry of `polyphony/server` (API.md "Server"): re-exports only. */
export { createServer, type ServerOptions, type PolyphonyServer } from './create-server.ts'
export { signToken, verifyToken, type Role, type TokenClaims } from './auth.ts'
export { DEFAULT_LIMITS, type Limits } from './limits.ts'
export { CLOSE, FINAL_CLOSE_CODES } from './close-codes.ts'
export { SqliteStorage, StorageCorruptError, type Storage, type StoredDoc } from './storage.ts'
export { SERVER_LINK_TUNING, type LinkTuning } from './connection.ts'
