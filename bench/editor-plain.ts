/**
 * The floor of the editor benchmark: two plain ProseMirror editors, no collaboration binding.
 *
 * Local keystroke: `dispatch` updates the editor and the transaction's steps are encoded as
 * JSON bytes (what prosemirror-collab would send). Remote: the bytes are decoded and the steps
 * dispatched into the other editor. What the bindings cost above these figures is theirs; the
 * rest is ProseMirror's own (state, and in the browser the view's DOM update).
 */
import type { Node } from 'prosemirror-model'
import { EditorState, type Transaction } from 'prosemirror-state'
import { Step } from 'prosemirror-transform'
import type { MakeView, Side, ViewLike } from './editor-harness.ts'

export function plainSide(doc: Node, makeView: MakeView): Side {
  const schema = doc.type.schema
  const a = makeView(EditorState.create({ doc }))
  const remote = makeView(EditorState.create({ doc }))
  const enc = new TextEncoder()
  const dec = new TextDecoder()
  let pending: Uint8Array[] = []
  const local: ViewLike = {
    get state() {
      return a.state
    },
    dispatch(tr: Transaction) {
      a.dispatch(tr)
      if (tr.docChanged) pending.push(enc.encode(JSON.stringify(tr.steps.map((s) => s.toJSON()))))
    },
    destroy: () => a.destroy(),
  }
  return {
    name: 'plain',
    local,
    remote,
    take() {
      const out = pending
      pending = []
      return out
    },
    deliver(updates) {
      for (const u of updates) {
        const tr = remote.state.tr
        for (const json of JSON.parse(dec.decode(u)) as unknown[])
          tr.step(Step.fromJSON(schema, json))
        remote.dispatch(tr)
      }
    },
    destroy() {
      a.destroy()
      remote.destroy()
    },
  }
}
