/**
 * The ProseMirror slice that inserting a run of raw tokens at a position of a valid
 * document amounts to: the inverse of `sliceTokens` (rich-tokens.ts), for the remote
 * fast path of RichDoc (a remote Enter is the tokens CLOSE, OPEN; typing is characters).
 *
 * Closing tokens first close the ancestors of the insertion point (the slice's open
 * start, their types from the document); opening tokens start nodes of the types their
 * records give (still open at the end: the open end); characters and leaves fill the
 * innermost node. Nodes opened and closed inside are built checked. Returns null when the
 * tokens do not form such a slice here, or open a node deeper than `MAX_RICH_DEPTH` (the
 * caller then projects in full).
 * Complexity: O(tokens inserted).
 */
import {
  Fragment,
  type Mark,
  type Node,
  type ResolvedPos,
  type Schema,
  Slice,
} from 'prosemirror-model'
import { CLOSE, LEAF, MAX_RICH_DEPTH, OPEN, RESERVED } from './rich-tokens.ts'
import { sameMarks } from './rich-records.ts'

/** What the slice builder needs to know of token k of the run. */
export interface RunInfo {
  /** Node type name, attrs and marks of an opening or leaf token. */
  node(k: number): { type: string | null; attrs: Node['attrs']; marks: readonly Mark[] }
  /** Marks of a character token. */
  marks(k: number): readonly Mark[]
}

interface Frame {
  readonly type: Node['type']
  readonly attrs: Node['attrs']
  readonly marks: readonly Mark[]
  readonly children: Node[]
  /** Opened by the run (else an ancestor of the insertion point, open on its left). */
  readonly opened: boolean
}

/** The slice for inserting `tokens` at `$pos`, or null. */
export function tokenSlice(
  schema: Schema,
  $pos: ResolvedPos,
  tokens: string,
  info: RunInfo,
): Slice | null {
  let depth = $pos.depth
  const frame = (d: number): Frame => {
    const n = $pos.node(d)
    return { type: n.type, attrs: n.attrs, marks: n.marks, children: [], opened: false }
  }
  const stack: Frame[] = [frame(depth)]
  let openStart = 0
  let text = ''
  let textMarks: readonly Mark[] = []
  const flushText = () => {
    if (text.length === 0) return
    stack[stack.length - 1].children.push(schema.text(text, textMarks))
    text = ''
  }
  try {
    for (let k = 0; k < tokens.length; k++) {
      const c = tokens[k]
      if (c === CLOSE) {
        flushText()
        const top = stack.pop()!
        if (top.opened) {
          stack[stack.length - 1].children.push(
            top.type.createChecked(top.attrs, top.children, top.marks),
          )
          continue
        }
        // Closes an ancestor: the slice opens one level deeper on its left.
        if (depth === 0) return null
        const left = top.type.create(top.attrs, top.children, top.marks)
        depth--
        openStart++
        const parent = frame(depth)
        parent.children.push(left)
        stack.push(parent)
      } else if (c === OPEN || c === LEAF) {
        flushText()
        const n = info.node(k)
        const type =
          n.type !== null && Object.hasOwn(schema.nodes, n.type) ? schema.nodes[n.type] : null
        if (type === null || type.isLeaf !== (c === LEAF)) return null
        // Deeper than the projection builds nodes: it flattens them, so leave this run to it.
        if (c === OPEN && depth + stack.length > MAX_RICH_DEPTH) return null
        if (c === LEAF)
          stack[stack.length - 1].children.push(type.createChecked(n.attrs, null, n.marks))
        else stack.push({ type, attrs: n.attrs, marks: n.marks, children: [], opened: true })
      } else {
        if (RESERVED.test(c)) return null
        const parent = stack[stack.length - 1].type
        if (!parent.inlineContent) return null
        const marks = info.marks(k).filter((m) => parent.allowsMarkType(m.type))
        if (text.length > 0 && !sameMarks(marks, textMarks)) flushText()
        if (text.length === 0) textMarks = marks
        text += c
      }
    }
    flushText()
    let openEnd = 0
    while (stack.length > 1) {
      const top = stack.pop()!
      stack[stack.length - 1].children.push(top.type.create(top.attrs, top.children, top.marks))
      openEnd++
    }
    // The bottom frame is open on the left (an ancestor) unless the run opened nothing there.
    return new Slice(Fragment.from(stack[0].children), openStart, openEnd)
  } catch {
    return null // content a node type does not allow
  }
}
