/**
 * Position mappings that follow token identity across a remote merge of a RichDoc:
 * from the old projected document, through the raw token ops the merge applied, to the
 * new projected document. Unlike the diff steps that describe the new content (one
 * replace over the whole differing range), such a mapping keeps every surviving
 * token's position exact, so selections, carets and undo history map through
 * concurrent edits precisely.
 *
 * Invariant: `projectionMap(rawOf, n)` maps the positions of a projection (whose token
 * p came from raw token `rawOf[p]`, -1 for a made-up one) to positions among the `n`
 * raw tokens: made-up tokens are deleted, ignored raw tokens inserted. Complexity:
 * O(tokens) for a non-identity projection, O(ops) otherwise.
 */
import { Mapping, StepMap } from 'prosemirror-transform'

/** A token op of the inner document, in raw token positions (applied in order). */
export type TokenOp = { index: number; insert: string } | { index: number; delete: number }

/**
 * The map from projected positions to raw token positions; null for an identity
 * projection, or when raw tokens appear out of order (no position map exists then).
 */
export function projectionMap(rawOf: Int32Array, rawCount: number): StepMap | null | false {
  const ranges: number[] = []
  const add = (start: number, oldSize: number, newSize: number) => {
    const n = ranges.length
    if (n > 0 && ranges[n - 3] + ranges[n - 2] === start) {
      ranges[n - 2] += oldSize
      ranges[n - 1] += newSize
    } else ranges.push(start, oldSize, newSize)
  }
  let r = 0
  for (let p = 0; p < rawOf.length; p++) {
    const at = rawOf[p]
    if (at < 0) add(p, 1, 0)
    else {
      if (at < r) return false
      if (at > r) add(p, 0, at - r)
      r = at + 1
    }
  }
  if (r < rawCount) add(rawOf.length, 0, rawCount - r)
  return ranges.length === 0 ? null : new StepMap(ranges)
}

/**
 * The mapping from the old projection to the new one: old projection -> old raw tokens
 * (`before`, null for identity), the token ops, new raw tokens -> new projection
 * (`after`). Null when a projection has no position map.
 */
export function mergeMapping(
  before: StepMap | null | false,
  ops: readonly TokenOp[],
  after: StepMap | null | false,
): Mapping | null {
  if (before === false || after === false) return null
  const maps: StepMap[] = []
  if (before) maps.push(before)
  for (const op of ops)
    maps.push(
      'insert' in op
        ? new StepMap([op.index, 0, op.insert.length])
        : new StepMap([op.index, op.delete, 0]),
    )
  if (after) maps.push(after.invert())
  return new Mapping(maps)
}
