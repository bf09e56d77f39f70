/**
 * Random readable names for the demo: document names that fit in a URL and can be read aloud
 * ("quiet-river-42"), and user names with a colour ("Amber Heron"). Not secrets: anyone who
 * guesses a document name can open it (the server's tokens are what protects documents).
 */

const ADJECTIVES = [
  'amber',
  'brave',
  'calm',
  'clever',
  'cosmic',
  'gentle',
  'golden',
  'happy',
  'lucky',
  'misty',
  'noble',
  'quiet',
  'rapid',
  'silver',
  'sunny',
  'swift',
  'tidy',
  'vivid',
  'warm',
  'witty',
]
const NOUNS = [
  'badger',
  'brook',
  'cedar',
  'comet',
  'falcon',
  'fern',
  'harbor',
  'heron',
  'lagoon',
  'maple',
  'meadow',
  'otter',
  'pebble',
  'quill',
  'river',
  'robin',
  'summit',
  'tulip',
  'willow',
  'wren',
]
/** Calm, distinct colours, readable as text on white and as caret colours. */
export const USER_COLORS = [
  '#2563eb',
  '#db2777',
  '#059669',
  '#d97706',
  '#7c3aed',
  '#0891b2',
  '#dc2626',
  '#4d7c0f',
]

function pick<T>(list: readonly T[]): T {
  return list[Math.floor(Math.random() * list.length)]!
}

const capital = (w: string): string => w[0]!.toUpperCase() + w.slice(1)

/** A new document name such as `quiet-river-42`. */
export function randomDocName(): string {
  return `${pick(ADJECTIVES)}-${pick(NOUNS)}-${Math.floor(Math.random() * 90) + 10}`
}

/** A user name such as `Amber Heron`, different from every name in `avoid`. */
export function randomUserName(avoid: readonly string[] = []): string {
  for (let i = 0; i < 20; i++) {
    const name = `${capital(pick(ADJECTIVES))} ${capital(pick(NOUNS))}`
    if (!avoid.includes(name)) return name
  }
  return `Guest ${Math.floor(Math.random() * 9000) + 1000}`
}

/** A colour for `name`, stable for a name, different from `avoid` when possible. */
export function colorFor(name: string, avoid: readonly string[] = []): string {
  let h = 0
  for (let i = 0; i < name.length; i++) h = (Math.imul(h, 31) + name.charCodeAt(i)) >>> 0
  for (let k = 0; k < USER_COLORS.length; k++) {
    const c = USER_COLORS[(h + k) % USER_COLORS.length]!
    if (!avoid.includes(c)) return c
  }
  return USER_COLORS[h % USER_COLORS.length]!
}
