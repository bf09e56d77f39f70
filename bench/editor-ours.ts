/**
 * Polyphony's side of the editor benchmark: two `RichDoc` replicas, each bound to an editor
 * by the `collab(rich)` plugin (client/collab.ts), no presence.
 *
 * Loading: replica A applies one ReplaceStep putting the whole document in (its first local
 * edit), replica B merges A's update, and each editor starts with `doc: rich.doc`, as
 * `collab` asks. Local keystroke: `dispatch` runs the plugin's `appendTransaction`, which
 * hands the transaction's steps to `rich.applySteps`; the RichDoc emits the update bytes
 * synchronously. Remote: `rich.applyUpdate(bytes)` at B; the plugin's 'change' listener
 * dispatches the remote transaction (the change's steps) into B's editor, synchronously.
 */
import type { Node } from 'prosemirror-model'
import { EditorState } from 'prosemirror-state'
import { ReplaceStep } from 'prosemirror-transform'
import { Slice } from 'prosemirror-model'
import { RichDoc } from '../shared/rich-doc.ts'
import { collab } from '../client/collab.ts'
import type { MakeView, Side } from './editor-harness.ts'

export function polyphonySide(doc: Node, makeView: MakeView): Side {
  const schema = doc.type.schema
  const a = new RichDoc(schema, 'alice')
  a.applySteps([new ReplaceStep(0, a.doc.content.size, new Slice(doc.content, 0, 0))])
  const b = new RichDoc(schema, 'bob')
  b.applyUpdate(a.encodeUpdate())
  if (!a.doc.eq(doc) || !b.doc.eq(doc)) throw new Error('RichDoc did not load the document as is')
  const editor = (rich: RichDoc) =>
    makeView(EditorState.create({ doc: rich.doc, plugins: [collab(rich)] }))
  const local = editor(a)
  const remote = editor(b)
  let pending: Uint8Array[] = []
  a.on('update', (u) => pending.push(u))
  return {
    name: 'polyphony',
    local,
    remote,
    take() {
      const out = pending
      pending = []
      return out
    },
    deliver(updates) {
      for (const u of updates) b.applyUpdate(u)
    },
    destroy() {
      local.destroy()
      remote.destroy()
    },
  }
}
