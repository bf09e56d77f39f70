/**
 * Seeded pseudo-random numbers for tests and fuzzers.
 *
 * Owns: the sfc32 generator (seeded through splitmix32) and small helpers on top of it.
 * Invariant: the same seed always yields the same sequence, on every platform, so a
 * failing fuzz run is replayed exactly from its seed. Not cryptographic.
 */

/** Seed mixer: spreads a 32-bit seed over the generator's state. */
function splitmix32(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

/** Pieces random text is made of: ASCII, accented Latin, CJK and astral emoji (surrogate pairs). */
const ASCII = 'abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,\n'
const ACCENTS = ['é', 'è', 'ü', 'ñ', 'ç', 'Å', 'ø', 'ß']
const CJK = ['中', '文', '字', '日', '本', '語', '한', '글']
const EMOJI = ['😀', '🎉', '👍', '🚀', '🌍', '𝄞', '🦀', '😇']

/** A seeded generator. `seed` is any integer; it is reduced to 32 bits. */
export class Rng {
  readonly seed: number
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    if (!Number.isFinite(seed))
      throw new RangeError(`Rng seed must be a finite number, got ${seed}`)
    this.seed = seed >>> 0
    const mix = splitmix32(this.seed)
    this.a = mix()
    this.b = mix()
    this.c = mix()
    this.d = mix()
    for (let i = 0; i < 12; i++) this.u32()
  }

  /** A uniform unsigned 32-bit integer (sfc32). */
  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0
    this.c = (this.c + t) >>> 0
    return t
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296
  }

  /** An integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) {
      throw new RangeError(`Rng.int needs integers min <= max, got ${min}, ${max}`)
    }
    return min + Math.floor(this.float() * (max - min + 1))
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.pick of an empty array')
    return items[this.int(0, items.length - 1)]
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice()
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i)
      const t = out[i]
      out[i] = out[j]
      out[j] = t
    }
    return out
  }

  /** A fresh generator derived from this one (for independent sub-streams). */
  fork(): Rng {
    return new Rng(this.u32())
  }

  /**
   * Random well-formed text of `units` UTF-16 code units at most (never a lone surrogate),
   * at least one code unit when `units` >= 1. Mostly ASCII, with accents, CJK and astral
   * emoji mixed in.
   */
  text(units: number): string {
    let s = ''
    while (s.length < units) {
      const r = this.float()
      let piece: string
      if (r < 0.7) piece = ASCII[this.int(0, ASCII.length - 1)]
      else if (r < 0.8) piece = this.pick(ACCENTS)
      else if (r < 0.9) piece = this.pick(CJK)
      else piece = this.pick(EMOJI)
      if (s.length + piece.length > units) piece = ASCII[this.int(0, ASCII.length - 1)]
      s += piece
    }
    return s
  }
}

/**
 * The seed to use: `FUZZ_SEED` from the environment when set, else a fresh random one.
 * Throws on a malformed `FUZZ_SEED`, so a typo never silently runs a different seed.
 */
export function seedFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FUZZ_SEED
  if (raw === undefined || raw === '') return Math.floor(Math.random() * 4294967296)
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`FUZZ_SEED must be an integer in [0, 2^32), got ${JSON.stringify(raw)}`)
  }
  return n
}

/** True if `s` has a surrogate pair split at code unit index `i` (0 < i < s.length). */
export function splitsSurrogate(s: string, i: number): boolean {
  if (i <= 0 || i >= s.length) return false
  const before = s.charCodeAt(i - 1)
  const after = s.charCodeAt(i)
  return before >= 0xd800 && before <= 0xdbff && after >= 0xdc00 && after <= 0xdfff
}
