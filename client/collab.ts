/**
 * `collab(rich, { presence })`: the ProseMirror plugin that keeps an editor and a
 * `RichDoc` in step both ways (API.md "Client").
 *
 * Owns: local transactions -> `rich.applySteps(tr.steps)` (one batch per transaction, in
 * `appendTransaction`, so it also works on a bare `EditorState`); `rich` 'change' -> one
 * remote transaction made of the change's steps (`addToHistory: false`, meta `remote` with
 * the change's token mapping), the selection mapped through that mapping (after reading a
 * selection the DOM holds unread), stored marks kept; the local selection published to
 * presence as token-id anchors; remote carets and selections as decorations (plugin state,
 * resolved from anchors on every presence or remote change, mapped through local edits).
 *
 * Invariant: after every transaction the editor's doc is `eq` to `rich.doc`. When a local
 * batch is refused or `rich` shows something else, an appended remote transaction puts
 * `rich.doc` in the editor; when a remote step does not fit, the content is replaced.
 * Complexity: per transaction O(steps) plus an `eq` that shares unchanged nodes
 * (O(top-level blocks)); per remote change, O(runs) per remote caret shown.
 */
import type { Node } from 'prosemirror-model'
import {
  type EditorState,
  Plugin,
  PluginKey,
  type Selection,
  type Transaction,
  type PluginView,
} from 'prosemirror-state'
import { type Mappable, Mapping, type Step, Transform } from 'prosemirror-transform'
import { DecorationSet, type EditorView } from 'prosemirror-view'
import { diffSteps } from '../shared/rich-diff.ts'
import type { RichDoc } from '../shared/rich-doc.ts'
import type { Presence, PresenceChange } from '../shared/presence.ts'
import type { Anchor } from '../shared/protocol.ts'
import { safeColor } from './user-color.ts'
import { cursorDecorations, displayName, type RemoteCursor } from './cursors.ts'

export type { RemoteCursor } from './cursors.ts'

/** Options of `collab`. */
export interface CollabOptions {
  /** Shared presence: the local selection goes there, remote ones are drawn. */
  presence?: Presence
  /** Called when a local batch is refused by the RichDoc (default: console.error). */
  onError?: (err: Error) => void
}

/** The plugin's state: remote cursors as decorations. */
export interface CollabState {
  readonly cursors: readonly RemoteCursor[]
  readonly decorations: DecorationSet
}

/** Meta of the transactions this plugin dispatches. */
export interface CollabMeta {
  /** A change that came from the RichDoc (another replica, or a correction), not the user. */
  readonly remote?: boolean
  /** The origin the RichDoc reported (e.g. the link), for remote changes. */
  readonly origin?: unknown
  /** New remote cursors (a presence update). */
  readonly cursors?: readonly RemoteCursor[]
  /**
   * For remote changes: positions before -> after that follow every surviving token (the
   * steps may replace a whole range after a concurrent merge). Undo history maps through it.
   */
  readonly mapping?: Mappable
}

export const collabKey = new PluginKey<CollabState>('polyphony-collab')

/** Whether `tr` carries a change that came from the RichDoc rather than from the user. */
export function isRemoteTransaction(tr: Transaction): boolean {
  return (tr.getMeta(collabKey) as CollabMeta | undefined)?.remote === true
}

/** The remote cursors currently drawn in `state` (empty without the plugin). */
export function remoteCursors(state: EditorState): readonly RemoteCursor[] {
  return collabKey.getState(state)?.cursors ?? []
}

/** The part of an EditorView the binding uses (an EditorView is one). */
export type EditorHost = Pick<EditorView, 'state' | 'dispatch'>

/**
 * The plugin binding an editor to `rich`. Create the editor's state with `doc: rich.doc`
 * (else the content is replaced by `rich.doc` when the view mounts).
 */
export function collab(rich: RichDoc, opts: CollabOptions = {}): Plugin<CollabState> {
  const presence = opts.presence
  const onError = opts.onError ?? ((e: Error) => console.error('polyphony collab:', e))
  const local: BindingFlags = { applying: false, remote: null }

  return new Plugin<CollabState>({
    key: collabKey,
    state: {
      init: () => ({ cursors: [], decorations: DecorationSet.empty }),
      apply(tr, value, _old, next) {
        const meta = tr.getMeta(collabKey) as CollabMeta | undefined
        if (meta?.cursors !== undefined)
          return { cursors: meta.cursors, decorations: cursorDecorations(next.doc, meta.cursors) }
        if (!tr.docChanged) return value
        const cursors = value.cursors.map((c) => ({
          ...c,
          anchor: tr.mapping.map(c.anchor, 1),
          head: tr.mapping.map(c.head, 1),
        }))
        return { cursors, decorations: value.decorations.map(tr.mapping, tr.doc) }
      },
    },
    props: {
      decorations: (state) => collabKey.getState(state)?.decorations,
    },
    appendTransaction(trs, _old, next) {
      let failed = false
      let rebased = false
      for (const tr of trs) {
        if (!tr.docChanged || isRemoteTransaction(tr)) continue
        local.applying = true
        try {
          if (local.remote) {
            // Read from the DOM while a remote change is being shown: made on the doc
            // before it, so rebased over it; the editor then gets the RichDoc's doc.
            rich.applySteps(rebase(tr.steps, local.remote, rich.doc))
            rebased = true
          } else rich.applySteps(tr.steps)
        } catch (e) {
          failed = true
          onError(e instanceof Error ? e : new Error(String(e)))
        } finally {
          local.applying = false
        }
      }
      // While a remote change waits to be shown, the editor lags the RichDoc on purpose.
      if (local.remote && !rebased) return null
      if (next.doc.eq(rich.doc)) return null
      if (!failed && !rebased) onError(new Error('the RichDoc shows another document: replaced'))
      return replaceWith(next.tr, next.doc, rich.doc)
    },
    view: (view) => new CollabView(view, rich, presence, local),
  })
}

/** State shared by the plugin and its view. */
interface BindingFlags {
  /** True while the plugin hands a local batch to the RichDoc (its 'change' is already shown). */
  applying: boolean
  /** The mapping of a remote change the RichDoc already holds but the editor does not show yet. */
  remote: Mapping | null
}

/**
 * `steps` (made one after another on the doc before `over`) rebased over `over`, onto
 * `doc` (the doc after it); steps that no longer apply are dropped (prosemirror-collab's
 * rebase, with position maps only).
 */
function rebase(steps: readonly Step[], over: Mapping, doc: Node): Step[] {
  const mapping = new Mapping()
  for (let i = steps.length - 1; i >= 0; i--) mapping.appendMap(steps[i].getMap().invert())
  mapping.appendMapping(over)
  const tr = new Transform(doc)
  const out: Step[] = []
  for (let i = 0, mapFrom = steps.length; i < steps.length; i++) {
    const mapped = steps[i].map(mapping.slice(mapFrom))
    mapFrom--
    if (mapped && tr.maybeStep(mapped).failed === null) {
      mapping.appendMap(mapped.getMap(), mapFrom)
      out.push(mapped)
    }
  }
  return out
}

/** A transaction turning `from` (the doc of `tr`) into `to`, marked remote. */
function replaceWith(tr: Transaction, from: Node, to: Node): Transaction {
  for (const step of diffSteps(from, to)) tr.step(step)
  return markRemote(tr, undefined)
}

function markRemote(tr: Transaction, origin: unknown, mapping?: Mapping): Transaction {
  const meta: CollabMeta = { remote: true, origin, mapping }
  return tr.setMeta(collabKey, meta).setMeta('addToHistory', false)
}

/**
 * The transaction showing a RichDoc change: its steps, or a content replacement when they
 * do not fit. With the change's token `mapping`, the selection (`selection`: the state's,
 * or one just read from the DOM) maps through that, so a caret in text that a concurrent
 * merge replaced as a whole stays by its characters.
 * Stored marks (a toggled bold waiting for typing) survive.
 */
export function remoteTransaction(
  state: EditorState,
  steps: readonly Step[],
  target: Node,
  origin: unknown,
  mapping?: Mapping,
  selection: Selection = state.selection,
): Transaction {
  let tr = state.tr
  let fits = true
  for (const step of steps) {
    let failed: string | null
    try {
      failed = tr.maybeStep(step).failed
    } catch {
      failed = 'out of range' // positions past this doc's end throw instead of failing
    }
    if (failed !== null) {
      fits = false
      break
    }
  }
  if (!fits || !tr.doc.eq(target)) {
    tr = state.tr
    for (const step of diffSteps(state.doc, target)) tr.step(step)
  }
  if (
    mapping &&
    (selection !== state.selection || steps.length !== 1 || mapping.maps.length !== 1)
  ) {
    try {
      const sel = selection.map(tr.doc, mapping)
      if (!sel.eq(tr.selection)) tr.setSelection(sel)
    } catch {
      // the mapping does not describe this editor's doc (it had diverged): keep tr's own
    }
  }
  if (state.storedMarks) tr.setStoredMarks(state.storedMarks)
  return markRemote(tr, origin, mapping)
}

/** The plugin's view: subscriptions to the RichDoc and presence. */
class CollabView implements PluginView {
  private readonly unsubscribe: (() => void)[] = []
  /** Remote states whose anchors this replica cannot resolve yet (their events are on the way). */
  private unresolved = false
  private published: { anchor: number; head: number; doc: Node } | null = null

  constructor(
    private readonly host: EditorHost,
    private readonly rich: RichDoc,
    private readonly presence: Presence | undefined,
    private readonly local: BindingFlags,
  ) {
    this.unsubscribe.push(
      rich.on('change', (steps, origin, mapping) => this.onChange(steps, origin, mapping)),
    )
    if (presence) this.unsubscribe.push(presence.on('change', (c) => this.onPresence(c)))
    // Not while the view is still constructing its plugin views: right after.
    queueMicrotask(() => this.start())
  }

  private destroyed = false

  private start(): void {
    if (this.destroyed) return
    const host = this.host
    if (!host.state.doc.eq(this.rich.doc))
      host.dispatch(replaceWith(host.state.tr, host.state.doc, this.rich.doc))
    if (this.presence) {
      this.refreshCursors()
      this.publish()
    }
  }

  update(): void {
    this.publish()
  }

  destroy(): void {
    this.destroyed = true
    for (const off of this.unsubscribe.splice(0)) off()
    const p = this.presence
    const state = p?.getLocal()
    if (p && state?.selection) {
      const { selection: _gone, ...rest } = state
      p.setLocal(rest)
    }
  }

  private onChange(steps: Step[], origin: unknown, mapping: Mapping): void {
    if (this.local.applying) return
    const before = this.host.state.doc
    const domSelection = this.readDom(mapping)
    const state = this.host.state
    // When reading the DOM brought a local edit, the editor already shows the RichDoc.
    const same = state.doc === before
    const tr = remoteTransaction(
      state,
      same ? steps : [],
      this.rich.doc,
      origin,
      same ? mapping : undefined,
      same ? (domSelection ?? undefined) : undefined,
    )
    // Remote carets are re-read from their anchors: mapping would guess wrong where the
    // change inserted text at a caret (and a caret may wait for this change's events).
    if (this.presence && (this.unresolved || remoteCursors(state).length > 0 || this.hasRemote()))
      tr.setMeta(collabKey, {
        remote: true,
        origin,
        mapping,
        cursors: this.cursors(tr.doc),
      } satisfies CollabMeta)
    this.host.dispatch(tr)
  }

  private onPresence(c: PresenceChange): void {
    const own = this.presence!.id
    const others = (ids: readonly string[]) => ids.some((id) => id !== own)
    if (others(c.added) || others(c.updated) || others(c.removed)) this.refreshCursors()
  }

  /**
   * What the DOM holds that the view has not read yet (a caret moved by the arrow keys is
   * only read on 'selectionchange'), so the remote transaction maps that selection instead
   * of writing the old one back into the DOM. The view's read is captured, not dispatched
   * (the editor would show a doc the RichDoc has left): a selection is returned; an edit
   * (rare: typed text not read yet) is dispatched and rebased over the remote change.
   * Not while composing.
   */
  private readDom(mapping: Mapping): Selection | null {
    const view = this.host as EditorHost & {
      composing?: boolean
      domObserver?: { flush?: () => void }
    }
    if (view.composing || typeof view.domObserver?.flush !== 'function') return null
    const captured: Transaction[] = []
    const own = Object.getOwnPropertyDescriptor(view, 'dispatch')
    Object.defineProperty(view, 'dispatch', {
      value: (tr: Transaction) => captured.push(tr),
      configurable: true,
      writable: true,
    })
    try {
      view.domObserver.flush()
    } finally {
      if (own) Object.defineProperty(view, 'dispatch', own)
      else delete (view as { dispatch?: unknown }).dispatch
    }
    if (captured.length === 0) return null
    if (!captured.some((tr) => tr.docChanged)) return captured[captured.length - 1].selection
    this.local.remote = mapping
    try {
      for (const tr of captured) view.dispatch(tr)
    } finally {
      this.local.remote = null
    }
    return null
  }

  /** Resolves every remote selection against the current doc and redraws. */
  private refreshCursors(): void {
    const meta: CollabMeta = { cursors: this.cursors(this.host.state.doc) }
    this.host.dispatch(this.host.state.tr.setMeta(collabKey, meta).setMeta('addToHistory', false))
  }

  /** Whether presence holds a selection of someone else. */
  private hasRemote(): boolean {
    const presence = this.presence!
    for (const [id, state] of presence.getStates())
      if (id !== presence.id && state.selection) return true
    return false
  }

  /** The remote selections resolved in `doc` (which must be `rich.doc`); notes unresolved ones. */
  private cursors(doc: Node): RemoteCursor[] {
    const presence = this.presence!
    const cursors: RemoteCursor[] = []
    this.unresolved = false
    for (const [id, state] of presence.getStates()) {
      if (id === presence.id || !state.selection) continue
      const anchor = this.resolve(state.selection.anchor, doc)
      const head = this.resolve(state.selection.head, doc)
      if (anchor === null || head === null) {
        this.unresolved = true
        continue
      }
      cursors.push({
        id,
        name: displayName(state, id),
        color: safeColor(state.color, state.name ?? id),
        anchor,
        head,
      })
    }
    return cursors
  }

  private resolve(anchor: Anchor, doc: Node): number | null {
    let pos: number | null
    try {
      pos = this.rich.positionOf(anchor)
    } catch {
      return null // a malformed anchor from the wire: not drawn
    }
    return pos === null ? null : Math.min(pos, doc.content.size)
  }

  /** Publishes the local selection as anchors when it moved (or the doc changed under it). */
  private publish(): void {
    const presence = this.presence
    if (!presence) return
    const { selection, doc } = this.host.state
    const last = this.published
    if (
      last &&
      last.doc === doc &&
      last.anchor === selection.anchor &&
      last.head === selection.head
    )
      return
    if (!doc.eq(this.rich.doc)) return // mid-correction: positions would not match
    this.published = { anchor: selection.anchor, head: selection.head, doc }
    const sel = {
      anchor: this.rich.anchorAt(selection.anchor),
      head: this.rich.anchorAt(selection.head),
    }
    const prev = presence.getLocal()?.selection
    if (prev && sameAnchor(prev.anchor, sel.anchor) && sameAnchor(prev.head, sel.head)) return
    presence.setLocal({ ...presence.getLocal(), selection: sel })
  }
}

function sameAnchor(a: Anchor, b: Anchor): boolean {
  return a === b || (a !== null && b !== null && a.agent === b.agent && a.seq === b.seq)
}
