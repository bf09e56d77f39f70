/**
 * The flat token sequence of a ProseMirror document, and the deterministic
 * projection back from tokens to a valid document.
 *
 * Owns: the token code units (structure tokens are Unicode noncharacters, which
 * rich text may therefore not contain), doc/slice -> tokens, and
 * tokens + schema -> `Node`.
 *
 * Invariants: position i of a ProseMirror doc's content is token i (an opening
 * token per non-leaf node, one token per UTF-16 code unit of text, one per leaf
 * node, a closing token per non-leaf node). `project` is a pure function of its
 * input: identical tokens and token info give identical documents on every
 * replica; its result always passes `Node.check()`; for tokens of a valid
 * document no deeper than `MAX_RICH_DEPTH` it returns that document and maps
 * every position to itself. Whatever the tokens' nesting, no code here recurses
 * deeper than about `MAX_RICH_DEPTH` (explicit stacks; no argument spreads).
 * Complexity: O(tokens) per projection.
 */
import {
  type Attrs,
  Fragment,
  type Mark,
  type Node,
  type NodeType,
  type Schema,
  type ContentMatch,
} from 'prosemirror-model'

/** Opening token of a non-leaf node. */
export const OPEN = '\uFDD0'
/** Closing token of a non-leaf node (closes the innermost open one). */
export const CLOSE = '\uFDD1'
/** A leaf node (image, hard break, horizontal rule). */
export const LEAF = '\uFDD2'
/** Separates the document's tokens from the replicated records that follow them. */
export const SEP = '\uFDD3'
/** Starts a replicated record. */
export const REC = '\uFDD4'
/** Code units reserved for structure: rich text may not contain them. */
export const RESERVED = /[\uFDD0-\uFDEF]/

/** What a token was created with: a node's type, attrs and marks, or a character's marks. */
export type TokenInit =
  | { readonly node: { type: string; attrs: Attrs; marks: readonly Mark[] } }
  | { readonly marks: readonly Mark[] }
  | null

/**
 * How deeply nodes may nest: positions are at most this deep (`ResolvedPos.depth`) in the
 * structure tokens build. Real documents nest 10-20 levels (lists in quotes in lists); 200
 * leaves ample room while ProseMirror's recursive walks (check, eq, toJSON, toDOM) stay far
 * from the stack limit.
 */
export const MAX_RICH_DEPTH = 200

/**
 * A local edit that would nest nodes, or the JSON of attribute values, deeper than
 * `MAX_RICH_DEPTH` (nothing was changed).
 */
export class RichDepthError extends RangeError {
  override readonly name = 'RichDepthError'
  constructor(what: 'nodes' | 'attribute values' = 'nodes') {
    super(`${what} would nest deeper than MAX_RICH_DEPTH (${MAX_RICH_DEPTH} levels)`)
  }
}

/**
 * How deep positions nest in `frag` relative to its parent (0: inline content only, 1: a
 * paragraph, 2: a paragraph in a blockquote...). Iterative; stops as soon as it exceeds `limit`.
 */
export function fragmentDepth(frag: Fragment, limit = Infinity): number {
  let max = 0
  const stack: { f: Fragment; i: number }[] = [{ f: frag, i: 0 }]
  while (stack.length > 0) {
    const top = stack[stack.length - 1]
    if (top.i === top.f.childCount) {
      stack.pop()
      continue
    }
    const n = top.f.child(top.i++)
    if (n.isLeaf) continue
    if (stack.length > max && (max = stack.length) > limit) return max
    stack.push({ f: n.content, i: 0 })
  }
  return max
}

/** The tokens of a fragment (`text`) and, per token, what it carries (`init`). */
export function fragmentTokens(frag: Fragment): { text: string; init: TokenInit[] } {
  const parts: string[] = []
  const init: TokenInit[] = []
  // An explicit stack, not recursion: any depth.
  const stack: { f: Fragment; i: number }[] = [{ f: frag, i: 0 }]
  while (stack.length > 0) {
    const top = stack[stack.length - 1]
    if (top.i === top.f.childCount) {
      stack.pop()
      if (stack.length > 0) {
        parts.push(CLOSE)
        init.push(null)
      }
      continue
    }
    const n = top.f.child(top.i++)
    if (n.isText) {
      const t = n.text!
      if (RESERVED.test(t))
        throw new RangeError('text contains a reserved noncharacter (U+FDD0..U+FDEF)')
      parts.push(t)
      const marks = n.marks.length > 0 ? { marks: n.marks } : null
      for (let i = 0; i < t.length; i++) init.push(marks)
      continue
    }
    const node = { node: { type: n.type.name, attrs: n.attrs, marks: n.marks } }
    if (n.isLeaf) {
      parts.push(LEAF)
      init.push(node)
      continue
    }
    parts.push(OPEN)
    init.push(node)
    stack.push({ f: n.content, i: 0 })
  }
  return { text: parts.join(''), init }
}

/** The tokens a slice inserts: its fragment's tokens without the open edges. */
export function sliceTokens(
  content: Fragment,
  openStart: number,
  openEnd: number,
): { text: string; init: TokenInit[] } {
  const all = fragmentTokens(content)
  const end = all.text.length - openEnd
  return { text: all.text.slice(openStart, end), init: all.init.slice(openStart, end) }
}

/** What the projection knows of raw token i: its node (open/leaf) or its marks (character). */
export interface TokenInfo {
  node(i: number): { type: NodeType | null; attrs: Attrs; marks: readonly Mark[] }
  marks(i: number): readonly Mark[]
}

/** A projected document and, per position of its content, the raw token it came from (-1: made up). */
export interface Projection {
  readonly doc: Node
  readonly rawOf: Int32Array
}

interface Frame {
  kind: 'frame'
  type: NodeType | null
  attrs: Attrs
  marks: readonly Mark[]
  open: number
  close: number
  children: Item[]
}
interface TextItem {
  kind: 'text'
  raw: number
}
interface LeafItem {
  kind: 'leaf'
  raw: number
}
type Item = Frame | TextItem | LeafItem

/** Built output: a node, the raw token of each of its positions. */
interface Built {
  node: Node
  raws: number[]
}

/**
 * Projects raw tokens onto a valid document of `schema`: closing tokens close the
 * innermost open node (unmatched ones are ignored), nodes that do not fit are
 * wrapped (`findWrapping`) or unwrapped into their parent, inline content that
 * fits nowhere is dropped, required content is filled in. A node whose content would be
 * deeper than `MAX_RICH_DEPTH` is unwrapped too (its content sits in its parent; made-up
 * wrappers and required content may add the few levels the schema needs around it), so
 * no token sequence, however deep, makes this or ProseMirror recurse past that depth.
 */
export function project(
  schema: Schema,
  tokens: string,
  info: TokenInfo,
  docAttrs: Attrs,
): Projection {
  const root: Frame = {
    kind: 'frame',
    type: schema.topNodeType,
    attrs: docAttrs,
    marks: [],
    open: -1,
    close: -1,
    children: [],
  }
  const stack: Frame[] = [root]
  for (let i = 0; i < tokens.length; i++) {
    const c = tokens[i]
    const top = stack[stack.length - 1]
    if (c === OPEN) {
      const n = info.node(i)
      const type = n.type !== null && !n.type.isLeaf ? n.type : null
      const f: Frame = { kind: 'frame', ...n, type, open: i, close: -1, children: [] }
      top.children.push(f)
      stack.push(f)
    } else if (c === CLOSE) {
      if (stack.length > 1) stack.pop()!.close = i
    } else if (c === LEAF) {
      top.children.push({ kind: 'leaf', raw: i })
    } else {
      top.children.push({ kind: 'text', raw: i })
    }
  }
  const built = buildNode(schema, tokens, info, root, 0)
  const doc = built?.node ?? schema.topNodeType.createAndFill(docAttrs)!
  const raws = built?.raws ?? []
  // raws holds the doc's own open/close (-1, -1) around its content.
  const rawOf = Int32Array.from(raws.slice(1, raws.length - 1))
  return { doc, rawOf }
}

/** Builds frame `f`, whose content positions are `depth` deep. */
function buildNode(
  schema: Schema,
  tokens: string,
  info: TokenInfo,
  f: Frame,
  depth: number,
): Built | null {
  const type = f.type!
  const content = buildContent(schema, tokens, info, type, f.children, depth)
  let node: Node
  try {
    node = type.create(f.attrs, Fragment.from(content.nodes), f.marks)
    node.check()
  } catch {
    try {
      node = type.create(null, Fragment.from(content.nodes))
      node.check()
    } catch {
      return null
    }
  }
  const raws = content.raws
  raws.unshift(f.open)
  raws.push(f.close)
  return { node, raws }
}

function buildContent(
  schema: Schema,
  tokens: string,
  info: TokenInfo,
  type: NodeType,
  items: Item[],
  depth: number,
): { nodes: Node[]; raws: number[] } {
  const nodes: Node[] = []
  const raws: number[] = []
  let match: ContentMatch = type.contentMatch
  // The wrapper made up for content that did not fit here (e.g. stray text at the top level).
  let synth: { frame: Frame; inner: Frame; key: string; before: ContentMatch } | null = null
  const out: (Built | Frame)[] = []
  let text: { str: string[]; marks: readonly Mark[]; raws: number[] } | null = null
  const flushText = () => {
    if (text === null) return
    out.push({ node: schema.text(text.str.join(''), text.marks), raws: text.raws })
    text = null
  }
  // Items to place: `items`, where a node that gives way has its children placed in its stead
  // (a stack of runs, not a spliced queue: O(1) per item, whatever the nesting).
  const runs: { items: Item[]; i: number }[] = [{ items, i: 0 }]
  const giveWay = (f: Frame) => {
    if (f.children.length > 0) runs.push({ items: f.children, i: 0 })
  }
  // A node made of tokens (not a made-up wrapper) whose content would be `d` deep.
  const tooDeep = (item: Item, d: number) =>
    item.kind === 'frame' && item.open >= 0 && d > MAX_RICH_DEPTH
  for (;;) {
    const run = runs[runs.length - 1]
    if (run === undefined) break
    if (run.i === run.items.length) {
      runs.pop()
      continue
    }
    const item = run.items[run.i++]
    let itemType: NodeType | null
    if (item.kind === 'text') itemType = schema.nodes.text
    else if (item.kind === 'frame') itemType = item.type
    else {
      const t = info.node(item.raw).type
      itemType = t !== null && t.isLeaf && !t.isText ? t : null
    }
    if (itemType === null || tooDeep(item, depth + 1)) {
      if (item.kind === 'frame') giveWay(item)
      continue
    }
    const next = match.matchType(itemType)
    if (next !== null) {
      match = next
      synth = null
      if (item.kind === 'text') {
        const marks = allowedMarks(type, info.marks(item.raw))
        if (text !== null && !Mark_sameSet(text.marks, marks)) flushText()
        if (text === null) text = { str: [], marks, raws: [] }
        text.str.push(tokens[item.raw])
        text.raws.push(item.raw)
        continue
      }
      flushText()
      if (item.kind === 'leaf') {
        const n = info.node(item.raw)
        try {
          const leaf = itemType.create(n.attrs, null, allowedMarks(type, n.marks))
          leaf.check()
          out.push({ node: leaf, raws: [item.raw] })
        } catch {
          try {
            out.push({ node: itemType.create(null), raws: [item.raw] })
          } catch {
            // A leaf that cannot exist without attrs we lack: dropped.
          }
        }
        continue
      }
      const built = buildNode(schema, tokens, info, item, depth + 1)
      if (built !== null) out.push(built)
      continue
    }
    flushText()
    if (synth !== null) {
      const again = synth.before.findWrapping(itemType)
      if (again !== null && again.map((t) => t.name).join() === synth.key) {
        if (tooDeep(item, depth + again.length + 1)) giveWay(item as Frame)
        else synth.inner.children.push(item)
        continue
      }
    }
    const wrap = match.findWrapping(itemType)
    if (wrap !== null && wrap.length > 0 && tooDeep(item, depth + wrap.length + 1)) {
      giveWay(item as Frame)
      continue
    }
    if (wrap !== null && wrap.length > 0) {
      const before = match
      const frames = wrap.map((t): Frame => ({
        kind: 'frame',
        type: t,
        attrs: {},
        marks: [],
        open: -1,
        close: -1,
        children: [],
      }))
      for (let k = 1; k < frames.length; k++) frames[k - 1].children.push(frames[k])
      const inner = frames[frames.length - 1]
      inner.children.push(item)
      match = match.matchType(wrap[0])!
      synth = { frame: frames[0], inner, key: wrap.map((t) => t.name).join(), before }
      out.push(frames[0])
      continue
    }
    // Fits nowhere here: a node gives way to its children; inline content is dropped.
    if (item.kind === 'frame') giveWay(item)
  }
  flushText()
  for (const o of out) {
    const b = 'node' in o ? o : buildNode(schema, tokens, info, o, depth + 1)
    if (b === null) continue
    nodes.push(b.node)
    for (const r of b.raws) raws.push(r) // not push(...): a wide node has too many for the stack
  }
  const fill = matchAll(type, nodes)?.fillBefore(Fragment.empty, true)
  if (fill === null || fill === undefined) {
    // Cannot be completed (a child built differently than matched): the type's default content.
    const dflt = type.createAndFill()
    const content: Node[] = []
    dflt?.content.forEach((n) => content.push(n))
    return { nodes: content, raws: new Array(dflt?.content.size ?? 0).fill(-1) }
  }
  fill.forEach((n) => {
    nodes.push(n)
    for (let k = 0; k < n.nodeSize; k++) raws.push(-1)
  })
  return { nodes, raws }
}

function matchAll(type: NodeType, nodes: Node[]): ContentMatch | null {
  let m: ContentMatch | null = type.contentMatch
  for (const n of nodes) {
    m = m.matchType(n.type)
    if (m === null) return null
  }
  return m
}

function allowedMarks(parent: NodeType, marks: readonly Mark[]): readonly Mark[] {
  if (marks.length === 0) return marks
  return marks.filter((m) => parent.allowsMarkType(m.type))
}

function Mark_sameSet(a: readonly Mark[], b: readonly Mark[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (!a[i].eq(b[i])) return false
  return true
}

/** Whether `pos` falls between the two halves of a surrogate pair in `doc`'s text. */
export function splitsPair(doc: Node, pos: number): boolean {
  const $pos = doc.resolve(pos)
  const before = $pos.nodeBefore
  const after = $pos.nodeAfter
  if (before === null || after === null || !before.isText || !after.isText) return false
  const hi = before.text!.charCodeAt(before.text!.length - 1)
  const lo = after.text!.charCodeAt(0)
  return hi >= 0xd800 && hi < 0xdc00 && lo >= 0xdc00 && lo < 0xe000
}
