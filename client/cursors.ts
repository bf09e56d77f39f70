/**
 * Remote carets and selections as ProseMirror decorations: a caret widget (a bar in the
 * user's colour with their name above it) and an inline highlight of a non-empty range.
 *
 * Invariants: names and colours come from other people: names are set as text (never
 * HTML) and shortened, colours reach styles only after `safeColor` (user-color.ts) in the
 * binding. A widget's key holds the ids, colours and names of the users at its position, so it
 * is redrawn only when they change.
 */
import type { Node } from 'prosemirror-model'
import { Decoration, DecorationSet } from 'prosemirror-view'
import type { PresenceState } from '../shared/protocol.ts'

/** A remote user's caret and selection, resolved to positions of the current doc. */
export interface RemoteCursor {
  readonly id: string
  readonly name: string
  readonly color: string
  readonly anchor: number
  readonly head: number
}

/** The name shown for presence state `state` of replica `id`. */
export function displayName(state: PresenceState, id: string): string {
  const name = (state.name ?? state.user ?? '').trim() || `guest ${id.slice(0, 4)}`
  return name.length > 40 ? name.slice(0, 39) + '…' : name
}

/**
 * Decorations for `cursors` on `doc`: a highlight for each range, and one caret widget per
 * position, its name labels side by side when several users' carets share that position.
 */
export function cursorDecorations(doc: Node, cursors: readonly RemoteCursor[]): DecorationSet {
  const decos: Decoration[] = []
  const atHead = new Map<number, RemoteCursor[]>()
  for (const c of cursors) {
    const from = Math.min(c.anchor, c.head)
    const to = Math.max(c.anchor, c.head)
    if (from < to)
      decos.push(
        Decoration.inline(
          from,
          to,
          { class: 'pp-remote-selection', style: `background-color: ${withAlpha(c.color, 0.25)}` },
          { id: c.id },
        ),
      )
    const group = atHead.get(c.head)
    if (group === undefined) atHead.set(c.head, [c])
    else group.push(c)
  }
  for (const [head, group] of atHead) {
    // A stable order, so the labels do not swap places as presence updates arrive.
    group.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    decos.push(
      Decoration.widget(head, (view) => caretElement(view.dom.ownerDocument, group), {
        key: 'pp-caret:' + group.map((c) => `${c.id}:${c.color}:${c.name}`).join('|'),
        // Maps like the anchor: text inserted at the caret goes before its token.
        side: 1,
        ignoreSelection: true,
      }),
    )
  }
  return DecorationSet.create(doc, decos)
}

/**
 * The caret: a bar in the first user's colour, with a row of name labels above it, one per
 * user at this position (text only, never HTML).
 */
function caretElement(doc: Document, group: readonly RemoteCursor[]): HTMLElement {
  const caret = doc.createElement('span')
  caret.className = 'pp-remote-caret'
  caret.contentEditable = 'false'
  caret.style.borderColor = group[0]!.color
  const labels = doc.createElement('span')
  labels.className = 'pp-remote-labels'
  for (const c of group) {
    const label = doc.createElement('span')
    label.className = 'pp-remote-label'
    label.style.backgroundColor = c.color
    label.textContent = c.name
    labels.append(label)
  }
  caret.append('\u2060', labels, '\u2060')
  return caret
}

/** `color` (a safe #hex, named, hsl or rgb colour) at opacity `alpha`. */
function withAlpha(color: string, alpha: number): string {
  return `color-mix(in srgb, ${color} ${Math.round(alpha * 100)}%, transparent)`
}
