/**
 * The walker's temporary sequence: every character the conflict zone touches,
 * as runs ("items") in document order, in a B-tree whose nodes count four
 * things: characters visible in the prepare version (`cur`), characters not
 * deleted in the effect version (`end`), all characters (`raw`, an order index
 * for comparing origins) and placeholder characters (`ph`).
 *
 * The document as it was at the zone's common version is one placeholder item
 * of huge length whose characters have LVs `PH + index` (negative: see `PH`); it
 * splits only where the zone's operations touch it. Positional lookups descend
 * the tree (O(log n)); an item is found by LV through `itemOf` (zone LVs) or by
 * descending on `ph` (placeholder LVs).
 *
 * `cur` state of an item: 0 not yet inserted, 1 inserted, k >= 2 deleted k - 1 times.
 */

import { anchorShape } from './shape-anchors.ts'

export const NOT_YET_INSERTED = 0
export const INSERTED = 1
/**
 * LV of the first placeholder character. Placeholder LVs are negative (below -1, the "no
 * origin" of `originLeft`/`originRight`) and, with the placeholder's length, within V8's small
 * integers (31 bits). With 2^46 and 2^45, as before 2026-11-28, every number field of items and
 * nodes held a double, which V8 boxes: four heap numbers more per item, and a pointer chase on
 * every read (items were 72 bytes plus 64).
 */
const PH = -(2 ** 30)
/** The placeholder's length: more characters than a document can have (a JS string's limit). */
const PH_LEN = 2 ** 29
/** Whether `lv` is a placeholder character's LV (never -1: that is "no origin", not an LV). */
export const isPlaceholder = (lv: number): boolean => lv < 0
const LEAF_MAX = 64
const INNER_MAX = 32

export interface Item {
  lv: number
  len: number
  /** LV of the character left of this one when it was inserted, -1 for the start. */
  originLeft: number
  /** LV of the first character right of it (in the prepare version) when inserted, -1 for the end. */
  originRight: number
  cur: number
  endDel: boolean
  /** The leaf holding the item (set by the tree). */
  home: Leaf | null
  /** The item split off this one's end last: the LVs after this item's continue there. */
  tail: Item | null
}

/** An item of the walk, not in a tree yet (every item is made here: one hidden class). */
export function makeItem(
  lv: number,
  len: number,
  originLeft: number,
  originRight: number,
  cur: number,
  endDel: boolean,
): Item {
  return { lv, len, originLeft, originRight, cur, endDel, home: null, tail: null }
}

interface NodeBase {
  parent: Inner | null
  cur: number
  end: number
  raw: number
  ph: number
}
export interface Leaf extends NodeBase {
  readonly leaf: true
  items: Item[]
  next: Leaf | null
}
interface Inner extends NodeBase {
  readonly leaf: false
  children: TreeNode[]
}
type TreeNode = Leaf | Inner

/** A place in the sequence: item `idx` of `leaf` (idx may equal the leaf's length). */
export interface Cursor {
  leaf: Leaf
  idx: number
}
/** A character: item `idx` of `leaf`, `off` characters in. */
export interface CharAt extends Cursor {
  off: number
}

const curLen = (it: Item) => (it.cur === INSERTED ? it.len : 0)
const endLen = (it: Item) => (it.endDel ? 0 : it.len)
const phLen = (it: Item) => (isPlaceholder(it.lv) ? it.len : 0)

export class ItemTree {
  root: TreeNode
  readonly first: Leaf
  /**
   * The item each zone LV was inserted as, indexed by `lv - base`. Splits keep the head of an
   * item: a later LV is in a tail of it (`Item.tail`), and the item's position in its leaf is an
   * `indexOf`, a scan of pointers. (Before, this held each LV's leaf, and finding an LV scanned
   * the leaf's items and their LVs: a tenth of a lagging replica's merge time.)
   */
  private readonly itemOf: Item[]

  constructor(private readonly base: number) {
    const leaf: Leaf = {
      leaf: true,
      items: [],
      next: null,
      parent: null,
      cur: 0,
      end: 0,
      raw: 0,
      ph: 0,
    }
    this.root = this.first = leaf
    this.itemOf = []
    this.insertAt({ leaf, idx: 0 }, makeItem(PH, PH_LEN, -1, -1, INSERTED, false))
  }

  /** The character that is number `pos` (0-based) among those visible in the prepare version. */
  findCur(pos: number): CharAt {
    let node: TreeNode = this.root
    while (!node.leaf) {
      let i = 0
      for (; ; i++) {
        const c = node.children[i]
        if (pos < c.cur) break
        pos -= c.cur
      }
      node = node.children[i]
    }
    const items = node.items
    for (let i = 0; i < items.length; i++) {
      const c = curLen(items[i])
      if (pos < c) return { leaf: node, idx: i, off: pos }
      pos -= c
    }
    throw new RangeError(`prepare position past the end by ${pos + 1}`)
  }

  /** The character with LV `lv`. */
  findLv(lv: number): CharAt {
    if (isPlaceholder(lv)) return this.findPh(lv - PH)
    const it = this.itemAt(lv)
    const leaf = it.home!
    return { leaf, idx: leaf.items.indexOf(it), off: lv - it.lv }
  }

  /**
   * The item holding the character with LV `lv` (not a placeholder's). Unlike `findLv`, no
   * search of its leaf for its index: a leaf's items are 64 pointers, cold in the CPU caches
   * with many documents in a process (a walk toggling items this way merged recorded
   * load-client streams 13% faster).
   */
  itemAt(lv: number): Item {
    let it = this.itemOf[lv - this.base]
    if (lv >= it.lv + it.len) {
      do it = it.tail!
      while (lv >= it.lv + it.len)
      this.itemOf[lv - this.base] = it // the next lookup goes straight there
    }
    return it
  }

  /** Where item `it` is. */
  cursorOf(it: Item): Cursor {
    const leaf = it.home!
    return { leaf, idx: leaf.items.indexOf(it) }
  }

  private findPh(k: number): CharAt {
    let node: TreeNode = this.root
    while (!node.leaf) {
      let i = 0
      for (; ; i++) {
        const c = node.children[i]
        if (k < c.ph) break
        k -= c.ph
      }
      node = node.children[i]
    }
    const items = node.items
    for (let i = 0; i < items.length; i++) {
      const c = phLen(items[i])
      if (k < c) return { leaf: node, idx: i, off: k }
      k -= c
    }
    throw new Error('placeholder index past the end')
  }

  /** Characters of all kinds before item `idx` of `leaf`: an order index. */
  rawBefore(leaf: Leaf, idx: number): number {
    let n = 0
    for (let i = 0; i < idx; i++) n += leaf.items[i].len
    return n + this.before(leaf, (c) => c.raw)
  }

  /** Characters not deleted in the effect version before item `idx` of `leaf`. */
  endBefore(leaf: Leaf, idx: number): number {
    let n = 0
    for (let i = 0; i < idx; i++) n += endLen(leaf.items[i])
    return n + this.before(leaf, (c) => c.end)
  }

  private before(node: TreeNode, measure: (n: TreeNode) => number): number {
    let n = 0
    for (let p = node.parent; p !== null; node = p, p = p.parent) {
      for (const c of p.children) {
        if (c === node) break
        n += measure(c)
      }
    }
    return n
  }

  /** Order index of the character with LV `lv`. */
  rawPosOf(lv: number): number {
    const at = this.findLv(lv)
    return this.rawBefore(at.leaf, at.idx) + at.off
  }

  /** Splits the item at `at` so that a new item starts at `at.off`; returns that item's place. */
  split(at: CharAt): Cursor {
    if (at.off === 0) return { leaf: at.leaf, idx: at.idx }
    const it = at.leaf.items[at.idx]
    const rest = makeItem(
      it.lv + at.off,
      it.len - at.off,
      isPlaceholder(it.lv) ? -1 : it.lv + at.off - 1,
      it.originRight,
      it.cur,
      it.endDel,
    )
    rest.tail = it.tail
    it.tail = rest
    it.len = at.off
    // Aggregates are unchanged by a split: remove the rest's share, insertAt adds it back.
    this.adjust(at.leaf, -curLen(rest), -endLen(rest), -rest.len, -phLen(rest))
    return this.insertAt({ leaf: at.leaf, idx: at.idx + 1 }, rest, true)
  }

  /**
   * Inserts `item` at `at`; returns where it ended up. `indexed`: the item's characters are
   * found through the item it was split from.
   */
  insertAt(at: Cursor, item: Item, indexed = false): Cursor {
    const leaf = at.leaf
    leaf.items.splice(at.idx, 0, item)
    item.home = leaf
    this.adjust(leaf, curLen(item), endLen(item), item.len, phLen(item))
    if (!indexed) this.index(item)
    if (leaf.items.length <= LEAF_MAX) return at
    const right = this.splitLeaf(leaf)
    return at.idx < leaf.items.length ? at : { leaf: right, idx: at.idx - leaf.items.length }
  }

  /** Sets an item's states, keeping the counts. */
  setState(at: Cursor, cur: number, endDel: boolean): void {
    this.setItemState(at.leaf.items[at.idx], cur, endDel)
  }

  /** `setState` of item `it`, wherever it is. */
  setItemState(it: Item, cur: number, endDel: boolean): void {
    const dCur = (cur === INSERTED ? it.len : 0) - curLen(it)
    const dEnd = (endDel ? 0 : it.len) - endLen(it)
    it.cur = cur
    it.endDel = endDel
    if (dCur !== 0 || dEnd !== 0) this.adjust(it.home!, dCur, dEnd, 0, 0)
  }

  /** The place after item `at`, moving to the next leaf at a leaf's end (null at the very end). */
  nextItem(at: Cursor): Cursor | null {
    let { leaf, idx } = at
    idx++
    while (idx >= leaf.items.length) {
      if (leaf.next === null) return null
      leaf = leaf.next
      idx = 0
    }
    return { leaf, idx }
  }

  /** Normalises a place at a leaf's end to the start of the next non-empty leaf (null at the very end). */
  settle(at: Cursor): Cursor | null {
    let { leaf, idx } = at
    while (idx >= leaf.items.length) {
      if (leaf.next === null) return null
      leaf = leaf.next
      idx = 0
    }
    return { leaf, idx }
  }

  private index(item: Item): void {
    if (isPlaceholder(item.lv)) return
    const from = item.lv - this.base
    for (let i = 0; i < item.len; i++) this.itemOf[from + i] = item
  }

  private adjust(node: TreeNode, dCur: number, dEnd: number, dRaw: number, dPh: number): void {
    for (let n: TreeNode | null = node; n !== null; n = n.parent) {
      n.cur += dCur
      n.end += dEnd
      n.raw += dRaw
      n.ph += dPh
    }
  }

  private splitLeaf(leaf: Leaf): Leaf {
    const half = leaf.items.length >> 1
    const moved = leaf.items.splice(half)
    const right: Leaf = {
      leaf: true,
      items: moved,
      next: leaf.next,
      parent: leaf.parent,
      cur: 0,
      end: 0,
      raw: 0,
      ph: 0,
    }
    leaf.next = right
    for (const it of moved) {
      right.cur += curLen(it)
      right.end += endLen(it)
      right.raw += it.len
      right.ph += phLen(it)
      it.home = right
    }
    leaf.cur -= right.cur
    leaf.end -= right.end
    leaf.raw -= right.raw
    leaf.ph -= right.ph
    this.attachAfter(leaf, right)
    return right
  }

  /** Puts `right` (split off `left`, counts already moved) after `left` in its parent. */
  private attachAfter(left: TreeNode, right: TreeNode): void {
    const parent = left.parent
    if (parent === null) {
      const root: Inner = {
        leaf: false,
        children: [left, right],
        parent: null,
        cur: left.cur + right.cur,
        end: left.end + right.end,
        raw: left.raw + right.raw,
        ph: left.ph + right.ph,
      }
      left.parent = right.parent = root
      this.root = root
      return
    }
    // The parent's counts already include both halves.
    right.parent = parent
    parent.children.splice(parent.children.indexOf(left) + 1, 0, right)
    if (parent.children.length > INNER_MAX) this.splitInner(parent)
  }

  private splitInner(node: Inner): void {
    const moved = node.children.splice(node.children.length >> 1)
    const right: Inner = {
      leaf: false,
      children: moved,
      parent: node.parent,
      cur: 0,
      end: 0,
      raw: 0,
      ph: 0,
    }
    for (const c of moved) {
      c.parent = right
      right.cur += c.cur
      right.end += c.end
      right.raw += c.raw
      right.ph += c.ph
    }
    node.cur -= right.cur
    node.end -= right.end
    node.raw -= right.raw
    node.ph -= right.ph
    this.attachAfter(node, right)
  }

  /**
   * Throws when a node's counts disagree with its contents, or an LV is not found at its item.
   * For tests.
   */
  check(): void {
    const visit = (n: TreeNode): [number, number, number, number] => {
      let s: [number, number, number, number] = [0, 0, 0, 0]
      if (n.leaf) {
        for (const [i, it] of n.items.entries()) {
          if (it.len <= 0) throw new Error('empty item')
          if (it.home !== n) throw new Error('item not in its home leaf')
          // Every character of the item is found at its place.
          for (let k = 0; k < it.len && !isPlaceholder(it.lv); k++) {
            const at = this.findLv(it.lv + k)
            if (at.leaf !== n || at.idx !== i || at.off !== k) throw new Error('LV lookup misses')
          }
          s = [s[0] + curLen(it), s[1] + endLen(it), s[2] + it.len, s[3] + phLen(it)]
        }
      } else {
        for (const c of n.children) {
          if (c.parent !== n) throw new Error('bad parent pointer')
          const t = visit(c)
          s = [s[0] + t[0], s[1] + t[1], s[2] + t[2], s[3] + t[3]]
        }
      }
      if (s[0] !== n.cur || s[1] !== n.end || s[2] !== n.raw || s[3] !== n.ph)
        throw new Error('item tree counts disagree')
      return s
    }
    visit(this.root)
  }
}
anchorShape(() => new ItemTree(0))
