/**
 * The y-prosemirror side of the editor benchmark: two Y.Docs, each bound to an editor by
 * `ySyncPlugin(yXmlFragment)`, the usual y-prosemirror setup.
 *
 * Loading: the document is written into replica A's fragment with
 * `prosemirrorToYXmlFragment`, replica B gets A's state as one update, and each editor starts
 * empty and is filled by the binding's first render from its fragment (as in an app that
 * opens a stored document). Local keystroke: the binding's plugin view writes the new
 * ProseMirror document into the Y.Doc (its tree diff) inside `dispatch`; the Y.Doc emits the
 * update synchronously at the end of that Y transaction. Remote: `Y.applyUpdate` at B; the
 * binding observes the fragment and dispatches a transaction that replaces the editor's
 * content with the nodes it rebuilt (unchanged ones reused).
 */
import type { Node } from 'prosemirror-model'
import { EditorState } from 'prosemirror-state'
import * as Y from 'yjs'
import { prosemirrorToYXmlFragment, ySyncPlugin } from 'y-prosemirror'
import type { MakeView, Side } from './editor-harness.ts'

export function yjsSide(doc: Node, makeView: MakeView): Side {
  const ya = new Y.Doc()
  const yb = new Y.Doc()
  const fa = ya.getXmlFragment('prosemirror')
  prosemirrorToYXmlFragment(doc, fa)
  Y.applyUpdate(yb, Y.encodeStateAsUpdate(ya))
  const editor = (y: Y.Doc) =>
    makeView(
      EditorState.create({
        schema: doc.type.schema,
        plugins: [ySyncPlugin(y.getXmlFragment('prosemirror'))],
      }),
    )
  const local = editor(ya)
  const remote = editor(yb)
  let pending: Uint8Array[] = []
  ya.on('update', (u: Uint8Array) => pending.push(u))
  return {
    name: 'y-prosemirror',
    local,
    remote,
    take() {
      const out = pending
      pending = []
      return out
    },
    deliver(updates) {
      for (const u of updates) Y.applyUpdate(yb, u)
    },
    destroy() {
      local.destroy()
      remote.destroy()
      ya.destroy()
      yb.destroy()
    },
  }
}
