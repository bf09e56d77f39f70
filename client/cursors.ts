/**
 * Remote carets and selections as ProseMirror decorations: a caret widget (a bar in the
 * user's colour with their name above it) and an inline highlight of a non-empty range.
 *
 * Invariants: names and colours come from other people: names are set as text (never
 * HTML) and shortened, colours reach styles only after `safeColor` (user-color.ts) in the
 * binding. A widget's key holds id, colour and name, so it is redrawn only when they change.
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

/** Decorations for `cursors` on `doc`: a caret widget with a name label, a highlight for a range. */
export function cursorDecorations(doc: Node, cursors: readonly RemoteCursor[]): DecorationSet {
  const decos: Decoration[] = []
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
    decos.push(
      Decoration.widget(c.head, (view) => caretElement(view.dom.ownerDocument, c), {
        key: `pp-caret:${c.id}:${c.color}:${c.name}`,
        // Maps like the anchor: text inserted at the caret goes before its token.
        side: 1,
        ignoreSelection: true,
        id: c.id,
      }),
    )
  }
  return DecorationSet.create(doc, decos)
}

/** The caret: a coloured bar with the user's name above it (text only, never HTML). */
function caretElement(doc: Document, c: RemoteCursor): HTMLElement {
  const caret = doc.createElement('span')
  caret.className = 'pp-remote-caret'
  caret.contentEditable = 'false'
  caret.style.borderColor = c.color
  const label = doc.createElement('span')
  label.className = 'pp-remote-label'
  label.style.backgroundColor = c.color
  label.textContent = c.name
  caret.append('\u2060', label, '\u2060')
  return caret
}

/** `color` (a safe #hex, named, hsl or rgb colour) at opacity `alpha`. */
function withAlpha(color: string, alpha: number): string {
  return `color-mix(in srgb, ${color} ${Math.round(alpha * 100)}%, transparent)`
}
