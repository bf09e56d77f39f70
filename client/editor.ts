/**
 * `createEditor(element, opts)`: one call mounts a working collaborative rich-text
 * editor (API.md "Client"): a RichDoc of the schema, connected to the server, shown in
 * a ProseMirror view with the collab plugin, own-changes-only undo, the usual keys, a
 * toolbar, and the user in presence (their caret and name for others).
 *
 * Owns: the DOM it adds inside `element` (a `.pp-editor` wrapper holding the toolbar
 * and the `.ProseMirror` editor), the RichDoc, the Presence and the Connection; `destroy()`
 * releases all of them. Invariant: the editor shows `connection.doc.doc` at all times.
 */
import type { Schema } from 'prosemirror-model'
import { EditorState, type Plugin } from 'prosemirror-state'
import { EditorView } from 'prosemirror-view'
import { keymap } from 'prosemirror-keymap'
import { baseKeymap, chainCommands, exitCode, toggleMark } from 'prosemirror-commands'
import { liftListItem, sinkListItem, splitListItem } from 'prosemirror-schema-list'
import type { Command } from 'prosemirror-state'
import { RichDoc } from '../shared/rich-doc.ts'
import { richSchema } from '../shared/rich-schema.ts'
import { Presence } from '../shared/presence.ts'
import { connect, type Connection } from './connection.ts'
import { collab } from './collab.ts'
import { undoHistory, undoKeymap } from './undo.ts'
import { toolbar } from './toolbar.ts'
import { injectEditorStyle } from './editor-style.ts'
import { safeColor } from './user-color.ts'

/** Options of `createEditor` (API.md "Client"). */
export interface EditorOptions {
  /** ws:// or wss:// base URL of the server, e.g. ws://localhost:8787. */
  url: string
  docId: string
  token?: string
  /** Default: `richSchema` (prosemirror-schema-basic nodes with lists, basic marks). */
  schema?: Schema
  /** Shown to others beside this user's caret; colour derived from the name when omitted. */
  user?: { name: string; color?: string }
}

/** A mounted editor. */
export interface Editor {
  readonly view: EditorView
  readonly connection: Connection<RichDoc>
  /** This document's presence (who is here); the local state holds `name` and `color`. */
  readonly presence: Presence
  /** Closes the connection, withdraws presence and removes the editor from the page. */
  destroy(): void
}

/** The editor's keys for `schema`: lists, marks, hard break (types the schema lacks are skipped). */
export function editorKeymap(schema: Schema): Plugin {
  const keys: Record<string, Command> = {}
  const item = schema.nodes.list_item
  if (item) {
    keys['Enter'] = splitListItem(item)
    keys['Mod-['] = liftListItem(item)
    keys['Mod-]'] = sinkListItem(item)
  }
  const m = schema.marks
  if (m.strong) keys['Mod-b'] = keys['Mod-B'] = toggleMark(m.strong)
  if (m.em) keys['Mod-i'] = keys['Mod-I'] = toggleMark(m.em)
  if (m.code) keys['Mod-`'] = toggleMark(m.code)
  const br = schema.nodes.hard_break
  if (br) {
    const insertBreak: Command = (state, dispatch) => {
      dispatch?.(state.tr.replaceSelectionWith(br.create()).scrollIntoView())
      return true
    }
    keys['Shift-Enter'] = keys['Mod-Enter'] = chainCommands(exitCode, insertBreak)
  }
  return keymap(keys)
}

/** Mounts a collaborative editor of document `opts.docId` inside `element`. */
export function createEditor(element: HTMLElement, opts: EditorOptions): Editor {
  if (!element || typeof element.append !== 'function')
    throw new TypeError('createEditor needs a DOM element to mount in')
  if (!opts || typeof opts.url !== 'string' || !/^wss?:\/\//.test(opts.url))
    throw new RangeError(
      `createEditor: url must be a ws:// or wss:// URL, got ${String(opts?.url)}`,
    )
  if (typeof opts.docId !== 'string' || opts.docId.length === 0)
    throw new RangeError('createEditor: docId must be a non-empty string')
  const schema = opts.schema ?? richSchema
  const name = opts.user?.name?.trim() || `Guest ${Math.floor(Math.random() * 9000 + 1000)}`
  const color = safeColor(opts.user?.color, name)

  const rich = new RichDoc(schema)
  const presence = new Presence()
  presence.setLocal({ name, color })
  const connection = connect({
    url: opts.url,
    docId: opts.docId,
    token: opts.token,
    doc: rich,
    presence,
  })

  const doc = element.ownerDocument
  injectEditorStyle(doc)
  const wrapper = doc.createElement('div')
  wrapper.className = 'pp-editor'
  element.append(wrapper)

  const state = EditorState.create({
    doc: rich.doc,
    plugins: [
      collab(rich, { presence }),
      undoHistory(),
      undoKeymap(),
      editorKeymap(schema),
      keymap(baseKeymap),
      toolbar(schema),
    ],
  })
  const view = new EditorView(wrapper, {
    state,
    editable: () => !connection.readOnly && connection.status !== 'refused',
  })
  // Read-only or refused: make the view re-read `editable`.
  const offError = connection.on('error', () => view.setProps({}))
  const offStatus = connection.on('status', () => view.setProps({}))

  let destroyed = false
  return {
    view,
    connection,
    presence,
    destroy() {
      if (destroyed) return
      destroyed = true
      offError()
      offStatus()
      view.destroy()
      presence.destroy()
      connection.close()
      wrapper.remove()
    },
  }
}
