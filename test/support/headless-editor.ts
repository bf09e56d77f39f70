/**
 * A headless editor for state-level tests of the ProseMirror binding: an EditorState
 * driven like an EditorView (dispatch applies the transaction, then every plugin view's
 * `update` runs), with no DOM. Plugin views get this host in place of the view.
 */
import { EditorState, type Plugin, type PluginView, type Transaction } from 'prosemirror-state'
import type { EditorView } from 'prosemirror-view'
import type { Node } from 'prosemirror-model'

export interface HeadlessEditor {
  readonly state: EditorState
  dispatch(tr: Transaction): void
  /** Every transaction dispatched, in order. */
  readonly log: Transaction[]
  destroy(): void
}

/** Mounts `plugins` on `doc`; `check` runs after every dispatched transaction. */
export function headlessEditor(
  doc: Node,
  plugins: readonly Plugin[],
  check?: (state: EditorState, tr: Transaction) => void,
): HeadlessEditor {
  let state = EditorState.create({ doc, plugins })
  const views: PluginView[] = []
  const log: Transaction[] = []
  const host: HeadlessEditor = {
    get state() {
      return state
    },
    dispatch(tr: Transaction) {
      const prev = state
      state = state.apply(tr)
      log.push(tr)
      check?.(state, tr)
      for (const v of views) v.update?.(host as unknown as EditorView, prev)
    },
    log,
    destroy() {
      for (const v of views.splice(0)) v.destroy?.()
    },
  }
  for (const p of state.plugins) {
    const v = p.spec.view?.(host as unknown as EditorView)
    if (v) views.push(v)
  }
  return host
}
