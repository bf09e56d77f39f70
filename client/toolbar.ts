/**
 * The editor's minimal toolbar: bold, italic, code, link, block type (paragraph,
 * headings), bullet and ordered list, blockquote, undo, redo; each button shows
 * whether it is active and is disabled when its command cannot run.
 *
 * Owns: the toolbar's DOM (a plugin view placed before the editor) and the button
 * commands. Invariant: button states are recomputed from the state after every update.
 * Buttons take the schema's node and mark types by name and are left out when the
 * schema lacks them, so a custom schema gets the buttons it can use.
 */
import type { MarkType, NodeType, Schema } from 'prosemirror-model'
import { type Command, type EditorState, Plugin } from 'prosemirror-state'
import type { EditorView } from 'prosemirror-view'
import { lift, setBlockType, toggleMark, wrapIn } from 'prosemirror-commands'
import { liftListItem, wrapInList } from 'prosemirror-schema-list'
import { redo, undo } from './undo.ts'

interface Button {
  readonly label: string
  readonly title: string
  readonly className?: string
  readonly run: Command
  readonly active?: (state: EditorState) => boolean
}

/** Whether `type` is active at the selection (stored marks, or any of the range). */
export function markActive(state: EditorState, type: MarkType): boolean {
  const { from, $from, to, empty } = state.selection
  if (empty) return !!type.isInSet(state.storedMarks || $from.marks())
  return state.doc.rangeHasMark(from, to, type)
}

/** Whether the selection sits inside a node of `type` (with `attrs`, when given). */
function inNode(state: EditorState, type: NodeType, attrs?: Record<string, unknown>): boolean {
  const { $from, $to } = state.selection
  for (let d = $from.depth; d > 0; d--) {
    const node = $from.node(d)
    if (node.type !== type) continue
    if (attrs && Object.keys(attrs).some((k) => node.attrs[k] !== attrs[k])) continue
    return $to.end(d) >= $to.pos
  }
  return false
}

/** Toggles a link: removes it when the selection has one, else asks for the address. */
function toggleLink(type: MarkType): Command {
  return (state, dispatch, view) => {
    if (markActive(state, type)) return toggleMark(type)(state, dispatch)
    if (state.selection.empty) return false
    if (!dispatch) return true
    const href = (view?.dom.ownerDocument.defaultView ?? globalThis).prompt?.(
      'Link address',
      'https://',
    )
    if (!href || !/^(https?:|mailto:|\/|#)/i.test(href.trim())) return false
    return toggleMark(type, { href: href.trim() })(state, dispatch)
  }
}

/** Toggles a wrapper: lifts out of it when inside, else wraps. */
function toggleWrap(type: NodeType, list: boolean, schema: Schema): Command {
  return (state, dispatch) => {
    if (inNode(state, type)) {
      const item = schema.nodes.list_item
      return list && item ? liftListItem(item)(state, dispatch) : lift(state, dispatch)
    }
    return list ? wrapInList(type)(state, dispatch) : wrapIn(type)(state, dispatch)
  }
}

function buttons(schema: Schema): (Button | 'sep')[] {
  const m = schema.marks
  const n = schema.nodes
  const out: (Button | 'sep')[] = []
  const mark = (type: MarkType | undefined, label: string, title: string, className: string) => {
    if (type)
      out.push({
        label,
        title,
        className,
        run: toggleMark(type),
        active: (s) => markActive(s, type),
      })
  }
  mark(m.strong, 'B', 'Bold (Mod-b)', 'pp-bold')
  mark(m.em, 'I', 'Italic (Mod-i)', 'pp-italic')
  mark(m.code, '</>', 'Code (Mod-`)', 'pp-code')
  if (m.link)
    out.push({
      label: 'Link',
      title: 'Link',
      run: toggleLink(m.link),
      active: (s) => markActive(s, m.link),
    })
  out.push('sep')
  if (n.heading)
    for (const level of [1, 2]) {
      out.push({
        label: `H${level}`,
        title: `Heading ${level}`,
        run: (state, dispatch) =>
          inNode(state, n.heading, { level })
            ? setBlockType(n.paragraph)(state, dispatch)
            : setBlockType(n.heading, { level })(state, dispatch),
        active: (s) => inNode(s, n.heading, { level }),
      })
    }
  if (n.bullet_list)
    out.push({
      label: '• List',
      title: 'Bullet list',
      run: toggleWrap(n.bullet_list, true, schema),
      active: (s) => inNode(s, n.bullet_list),
    })
  if (n.ordered_list)
    out.push({
      label: '1. List',
      title: 'Ordered list',
      run: toggleWrap(n.ordered_list, true, schema),
      active: (s) => inNode(s, n.ordered_list),
    })
  if (n.blockquote)
    out.push({
      label: '❝',
      title: 'Blockquote',
      run: toggleWrap(n.blockquote, false, schema),
      active: (s) => inNode(s, n.blockquote),
    })
  out.push('sep')
  out.push({ label: '↶', title: 'Undo (Mod-z)', run: undo })
  out.push({ label: '↷', title: 'Redo (Mod-Shift-z)', run: redo })
  return out
}

/** A plugin that shows the toolbar in `container` (before the editor, by default above it). */
export function toolbar(schema: Schema, container?: HTMLElement): Plugin {
  return new Plugin({ view: (view) => new ToolbarView(view, buttons(schema), container) })
}

class ToolbarView {
  private readonly dom: HTMLElement
  private readonly items: { button: Button; el: HTMLButtonElement }[] = []

  constructor(view: EditorView, specs: (Button | 'sep')[], container: HTMLElement | undefined) {
    const doc = view.dom.ownerDocument
    this.dom = doc.createElement('div')
    this.dom.className = 'pp-toolbar'
    this.dom.setAttribute('role', 'toolbar')
    for (const spec of specs) {
      if (spec === 'sep') {
        const sep = doc.createElement('span')
        sep.className = 'pp-toolbar-sep'
        this.dom.append(sep)
        continue
      }
      const el = doc.createElement('button')
      el.type = 'button'
      el.textContent = spec.label
      el.title = spec.title
      el.setAttribute('aria-label', spec.title)
      if (spec.className) el.classList.add(spec.className)
      // mousedown, not click: the editor keeps its selection and focus.
      el.addEventListener('mousedown', (e) => {
        e.preventDefault()
        if (el.disabled) return
        spec.run(view.state, view.dispatch, view)
        view.focus()
      })
      this.dom.append(el)
      this.items.push({ button: spec, el })
    }
    if (container) container.append(this.dom)
    else view.dom.parentNode?.insertBefore(this.dom, view.dom)
    this.update(view)
  }

  update(view: EditorView): void {
    const state = view.state
    for (const { button, el } of this.items) {
      el.disabled = !view.editable || !button.run(state, undefined, view)
      const active = button.active?.(state) ?? false
      el.classList.toggle('pp-active', active)
      el.setAttribute('aria-pressed', String(active))
    }
  }

  destroy(): void {
    this.dom.remove()
  }
}
