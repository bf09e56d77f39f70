/**
 * Lists that grow by exact copies while small. `push` on a short array reserves 17 slots; a hub
 * holds several short lists per document and per client (a link's wire agent tables, an update
 * log's readers), most holding one or two entries, so those slots are most of their memory.
 */

/** Lists this long and longer grow in place by `push` (amortised O(1) from there on). */
const EXACT_BELOW = 16

/**
 * `list` with `item` appended: a new array of exactly the needed length while `list` is short
 * (`list` itself is left as it was), else `list` grown in place. Callers keep the returned array.
 */
export function appended<T>(list: readonly T[], item: T): readonly T[] {
  if (list.length < EXACT_BELOW) return list.concat(item)
  ;(list as T[]).push(item)
  return list
}
