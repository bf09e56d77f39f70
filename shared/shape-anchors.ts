/**
 * Hidden-class anchors: one small live instance of each short-lived class on a hot path.
 *
 * V8 drops a hidden class as soon as no live object has it, and then deoptimizes every
 * function compiled against it (`--trace-deopt` says "weak objects"). A merge's walk, item
 * tree and heaps, and every codec cursor, die when their call ends, so each full GC sent the
 * next merge back to the interpreter until it was optimized again: 1.6x slower on the
 * concurrent traces. One instance per class, kept here for the life of the process, keeps
 * the hidden class and the compiled code valid, for a few hundred bytes in all.
 */

const anchors: object[] = []

/** Keeps `instance` alive for good; call it once per class, at module load. */
export function anchorShape(instance: object): void {
  anchors.push(instance)
}
