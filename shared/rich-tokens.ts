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
 * document it returns that document and maps every position to itself.
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

/** The tokens of a fragment (`text`) and, per token, what it carries (`init`). */
export function fragmentTokens(frag: Fragment): { text: string; init: TokenInit[] } {
  const parts: string[] = []
  const init: TokenInit[] = []
  const walk = (f: Fragment) => {
    f.forEach((n) => {
      if (n.isText) {
        const t = n.text!
        if (RESERVED.test(t))
          throw new RangeError('text contains a reserved noncharacter (U+FDD0..U+FDEF)')
        parts.push(t)
        const marks = n.marks.length > 0 ? { marks: n.marks } : null
        for (let i = 0; i < t.length; i++) init.push(marks)
        return
      }
      const node = { node: { type: n.type.name, attrs: n.attrs, marks: n.marks } }
      if (n.isLeaf) {
        parts.push(LEAF)
        init.push(node)
        return
      }
      parts.push(OPEN)
      init.push(node)
      walk(n.content)
      parts.push(CLOSE)
      init.push(null)
    })
  }
  walk(frag)
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
 * fits nowhere is dropped, required content is filled in.
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
  const built = buildNode(schema, tokens, info, root)
  const doc = built?.node ?? schema.topNodeType.createAndFill(docAttrs)!
  const raws = built?.raws ?? []
  // raws holds the doc's own open/close (-1, -1) around its content.
  const rawOf = Int32Array.from(raws.slice(1, raws.length - 1))
  return { doc, rawOf }
}

function buildNode(schema: Schema, tokens: string, info: TokenInfo, f: Frame): Built | null {
  const type = f.type!
  const content = buildContent(schema, tokens, info, type, f.children)
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
  return { node, raws: [f.open, ...content.raws, f.close] }
}

function buildContent(
  schema: Schema,
  tokens: string,
  info: TokenInfo,
  type: NodeType,
  items: Item[],
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
  const queue = items.slice()
  for (let qi = 0; qi < queue.length; qi++) {
    const item = queue[qi]
    let itemType: NodeType | null
    if (item.kind === 'text') itemType = schema.nodes.text
    else if (item.kind === 'frame') itemType = item.type
    else {
      const t = info.node(item.raw).type
      itemType = t !== null && t.isLeaf && !t.isText ? t : null
    }
    if (itemType === null) {
      if (item.kind === 'frame') queue.splice(qi + 1, 0, ...item.children)
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
      const built = buildNode(schema, tokens, info, item)
      if (built !== null) out.push(built)
      continue
    }
    flushText()
    if (synth !== null) {
      const again = synth.before.findWrapping(itemType)
      if (again !== null && again.map((t) => t.name).join() === synth.key) {
        synth.inner.children.push(item)
        continue
      }
    }
    const wrap = match.findWrapping(itemType)
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
    if (item.kind === 'frame') queue.splice(qi + 1, 0, ...item.children)
  }
  flushText()
  for (const o of out) {
    const b = 'node' in o ? o : buildNode(schema, tokens, info, o)
    if (b === null) continue
    nodes.push(b.node)
    raws.push(...b.raws)
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
