/** Random agent ids: one per editing session, so no two sessions share a seq space. */

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz'

/** A random 12-character id (about 62 bits). */
export function randomAgent(): string {
  const bytes = new Uint8Array(12)
  globalThis.crypto.getRandomValues(bytes)
  let id = ''
  for (const b of bytes) id += ALPHABET[b % 36]
  return id
}
