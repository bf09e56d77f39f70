/**
 * Hidden-class anchors: one small live instance of each short-lived class on a hot path.
 *
 * V8 drops a hidden class as soon as no live object has it, and then deoptimizes every
 * function compiled against it (`--trace-deopt` says "weak objects"). A merge's walk, item
 * tree and heaps, and every codec cursor, die when their call ends, so each full GC sent the
 * next merge back to the interpreter until it was optimized again: 1.6x slower on the
 * concurrent traces. One instance per class, kept here for the life of the process, keeps
 * the hidden class and the compiled code valid, for a few kilobytes in all.
 *
 * An anchor only helps while it has the class's current hidden class: a field that later
 * changes representation (a small integer field given a heap number) moves every instance to
 * a new one and leaves the anchor behind. test/shape-anchors.test.ts checks each anchor
 * against a fresh instance after a concurrent editing session.
 */

interface Anchor {
  readonly instance: object
  readonly make: () => object
}

const anchors: Anchor[] = []

/** Keeps an instance from `make` alive for good; call it once per class, at module load. */
export function anchorShape(make: () => object): void {
  anchors.push({ instance: make(), make })
}

/** Each anchor with a fresh instance made the same way (for the test: they share a class). */
export function anchorPairs(): [anchor: object, fresh: object][] {
  return anchors.map((a) => [a.instance, a.make()])
}
