/**
 * Raw DEFLATE for the encodings. Where the runtime is Node, its native zlib does the work:
 * it needs no JIT warm-up, so a cold load or merge is several times faster than with a
 * JavaScript inflater. Elsewhere (browsers) fflate does. Both read and write the same raw
 * DEFLATE format (RFC 1951), so bytes made by either are read by the other; only the exact
 * compressed bytes may differ, and nothing depends on them.
 */
import { deflateSync, inflateSync } from 'fflate'

interface NativeZlib {
  deflateRawSync(
    data: Uint8Array,
    options: { level: number; dictionary?: Uint8Array; chunkSize: number },
  ): Uint8Array
  inflateRawSync(
    data: Uint8Array,
    options: { maxOutputLength: number; dictionary?: Uint8Array; chunkSize: number },
  ): Uint8Array
  crc32?(data: Uint8Array, value: number): number
  deflateRaw?(
    data: Uint8Array,
    options: { level: number; chunkSize: number },
    done: (err: Error | null, out: Uint8Array) => void,
  ): void
}

/** Node's zlib when this runtime has one (`process.getBuiltinModule`, Node ≥ 20.16), else null. */
export const nativeZlib: NativeZlib | null = (() => {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
  if (typeof p?.getBuiltinModule !== 'function') return null
  return (p.getBuiltinModule('node:zlib') as NativeZlib | undefined) ?? null
})()

/** The level every encoding uses: zlib's default, the usual size/speed balance. */
const LEVEL = 6

/**
 * Native zlib's output buffer size for a result of about `size` bytes: one buffer holds the
 * whole result, so it is not assembled from 16 KB pieces (which doubles inflate time), but
 * never more than 1 MB up front.
 */
const chunkFor = (size: number): number => Math.min(Math.max(size, 64), 1 << 20)

/** `bytes` deflated (raw DEFLATE), primed with `dictionary` when one is given. */
export function deflateRaw(bytes: Uint8Array, dictionary?: Uint8Array): Uint8Array {
  const dict = dictionary?.length ? dictionary : undefined
  if (nativeZlib !== null)
    return plain(
      nativeZlib.deflateRawSync(bytes, {
        level: LEVEL,
        dictionary: dict,
        chunkSize: chunkFor(bytes.length + 64),
      }),
    )
  return deflateSync(bytes, { level: LEVEL, dictionary: dict })
}

/**
 * `deflateRaw(bytes)`, run off the calling thread where the runtime can (Node's zlib, on the
 * libuv thread pool), so a large text does not hold the event loop; elsewhere at once.
 * `bytes` must not change until the promise settles.
 */
export function deflateRawAsync(bytes: Uint8Array): Promise<Uint8Array> {
  const zlib = nativeZlib
  if (zlib?.deflateRaw === undefined) return Promise.resolve(deflateRaw(bytes))
  return new Promise((resolve, reject) =>
    zlib.deflateRaw!(bytes, { level: LEVEL, chunkSize: chunkFor(bytes.length + 64) }, (err, out) =>
      err === null ? resolve(plain(out)) : reject(err),
    ),
  )
}

/**
 * `packed` inflated, primed with `dictionary` when one is given. Throws an `Error` when
 * `packed` is corrupt or truncated, or inflates to more than `maxSize` bytes (the caller
 * checks the exact size it expects).
 */
export function inflateRaw(
  packed: Uint8Array,
  maxSize: number,
  dictionary?: Uint8Array,
): Uint8Array {
  const dict = dictionary?.length ? dictionary : undefined
  if (nativeZlib !== null) {
    return plain(
      nativeZlib.inflateRawSync(packed, {
        maxOutputLength: maxSize + 1,
        dictionary: dict,
        chunkSize: chunkFor(maxSize + 1),
      }),
    )
  }
  return inflateSync(packed, { out: new Uint8Array(maxSize + 1), dictionary: dict })
}

/** A plain Uint8Array view of a Node Buffer, whose `slice` would not copy. */
function plain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}
