/**
 * The editor benchmark's harness, shared by the browser page and the Node run: replays one
 * keystroke script through every system ("side") in the same process and times each keystroke.
 *
 * A side is two replicas of the document, each with an editor: `local` is where the user
 * types, `remote` another replica's editor. Per keystroke it measures (performance.now()):
 * - local: `local.dispatch(tr)` of the keystroke's transaction, which includes the binding
 *   turning it into a replicated change and emitting the update bytes (both bindings do this
 *   synchronously inside dispatch);
 * - remote: `deliver(updates)`: applying those bytes at the other replica, including its
 *   binding dispatching the remote transaction into its editor.
 * Transactions are built the way the editor builds them (insertText, splitListItem or
 * baseKeymap's Enter, a one-character delete or baseKeymap's Backspace at a block start) outside the timed region. The sides take turns
 * per keystroke (alternating which goes first) so noise and GC spread over all of them; the
 * first typing run is a warm-up and is not counted. After every run the harness checks that
 * every editor of every side shows the same document.
 */
import type { Node } from 'prosemirror-model'
import type { EditorState, Plugin, Transaction } from 'prosemirror-state'
import { TextSelection } from 'prosemirror-state'
import { baseKeymap, chainCommands } from 'prosemirror-commands'
import { splitListItem } from 'prosemirror-schema-list'
import { type Key, gotoPos } from './editor-doc.ts'

/** What the harness needs of an editor: an EditorView or a `StateView`. */
export interface ViewLike {
  readonly state: EditorState
  dispatch(tr: Transaction): void
  destroy(): void
}

/** Makes an editor showing `state` (a real EditorView in the browser). */
export type MakeView = (state: EditorState) => ViewLike

/** One system under test: two replicas, each with an editor. */
export interface Side {
  readonly name: string
  readonly local: ViewLike
  readonly remote: ViewLike
  /** The updates the local replica emitted since the last call. */
  take(): Uint8Array[]
  /** Applies updates at the remote replica; its binding updates its editor. */
  deliver(updates: readonly Uint8Array[]): void
  destroy(): void
}

/** Per side: one entry per counted keystroke. */
export interface SideSamples {
  local: number[]
  remote: number[]
  /** Update bytes the keystroke produced. */
  bytes: number[]
}

export interface RunResult {
  samples: Record<string, SideSamples>
  /** The kind of each counted keystroke ('char', 'enter', 'backspace'). */
  keys: string[]
  warmup: number
}

/**
 * Stands in for an EditorView where there is no DOM: keeps the state and drives plugin views
 * (`spec.view`, `update(view, prevState)`, `destroy`) the way EditorView does, so a binding
 * that lives in a plugin view works unchanged. No rendering.
 */
export class StateView implements ViewLike {
  state: EditorState
  private readonly pluginViews: {
    update?: (v: never, prev: EditorState) => void
    destroy?(): void
  }[]
  constructor(state: EditorState) {
    this.state = state
    this.pluginViews = []
    for (const p of state.plugins as Plugin[])
      if (p.spec.view) this.pluginViews.push(p.spec.view(this as never))
  }
  dispatch(tr: Transaction): void {
    const prev = this.state
    this.state = prev.apply(tr)
    for (const pv of this.pluginViews) pv.update?.(this as never, prev)
  }
  hasFocus(): boolean {
    return false
  }
  destroy(): void {
    for (const pv of this.pluginViews) pv.destroy?.()
  }
}

const enter = (state: EditorState, dispatch: (tr: Transaction) => void): boolean =>
  chainCommands(splitListItem(state.schema.nodes.list_item!), baseKeymap['Enter']!)(state, dispatch)

/** The transaction a keystroke makes in `state`, as the keymap would dispatch it. */
export function keystrokeTr(state: EditorState, key: Key): Transaction {
  let tr: Transaction | null = null
  const take = (t: Transaction) => (tr = t)
  if (key.t === 'char') tr = state.tr.insertText(key.ch)
  else if (key.t === 'enter') enter(state, take)
  else if (key.t === 'backspace') {
    // Inside a textblock the browser deletes the character (ProseMirror reads it back as
    // this replace); at a textblock's start the keymap joins.
    const { from, empty, $from } = state.selection
    if (empty && $from.parentOffset > 0) tr = state.tr.delete(from - 1, from)
    else baseKeymap['Backspace']!(state, take)
  } else
    tr = state.tr.setSelection(
      TextSelection.create(state.doc, gotoPos(state.doc, key.place, key.at)),
    )
  if (tr === null) throw new Error(`keystroke ${key.t} did nothing`)
  return tr
}

/** Resolves after pending tasks (a MessageChannel hop where there is one: no 4 ms clamp). */
export function macrotask(): Promise<void> {
  if (typeof MessageChannel === 'undefined') return new Promise((r) => setTimeout(r, 0))
  return new Promise((r) => {
    const ch = new MessageChannel()
    ch.port1.onmessage = () => {
      ch.port1.close()
      r()
    }
    ch.port2.postMessage(null)
  })
}

/** The clock, and what the environment does around the timed regions. */
export interface RunHooks {
  now: () => number
  /** Runs before each timed region (the page forces style and layout). */
  settle?: () => void
  /** Called with true when counted keystrokes begin (after the warm-up), false when they end. */
  counting?: (on: boolean) => Promise<void>
}

function checkEqual(sides: readonly Side[], where: string): void {
  const ref: Node = sides[0]!.local.state.doc
  for (const s of sides)
    for (const [who, v] of [
      ['local', s.local],
      ['remote', s.remote],
    ] as const)
      if (!v.state.doc.eq(ref))
        throw new Error(`${s.name} ${who} editor differs from ${sides[0]!.name} ${where}`)
}

/**
 * Replays `script` through every side, timing each keystroke. Keystrokes before the second
 * `goto` (the first typing run) warm up and are not counted. Yields to the event loop after
 * every keystroke, so the browser can render and collect garbage between keystrokes, as it
 * would between a person's. `hooks.settle` runs before each timed region (the page forces style
 * and layout there): a browser lays out between a person's keystrokes, so a dispatch starts with
 * nothing pending, and no side pays for the layout of another side's last change.
 */
export async function runScript(
  sides: readonly Side[],
  script: readonly Key[],
  hooks: RunHooks,
): Promise<RunResult> {
  const { now, settle = () => {} } = hooks
  const samples: Record<string, SideSamples> = {}
  for (const s of sides) samples[s.name] = { local: [], remote: [], bytes: [] }
  const keys: string[] = []
  let runs = 0
  let warmup = 0
  checkEqual(sides, 'at the start')
  for (let i = 0; i < script.length; i++) {
    const key = script[i]!
    if (key.t === 'goto') {
      if (runs > 0) checkEqual(sides, `after typing run ${runs}`)
      runs++
      if (runs === 2) await hooks.counting?.(true)
      for (const s of sides) {
        s.local.dispatch(keystrokeTr(s.local.state, key))
        s.deliver(s.take())
      }
      continue
    }
    const counted = runs > 1
    if (counted) keys.push(key.t)
    else warmup++
    for (let k = 0; k < sides.length; k++) {
      const s = sides[i % 2 === 0 ? k : sides.length - 1 - k]!
      const tr = keystrokeTr(s.local.state, key)
      settle()
      const t0 = now()
      s.local.dispatch(tr)
      const t1 = now()
      const ups = s.take()
      if (tr.docChanged && ups.length === 0)
        throw new Error(`${s.name}: a keystroke emitted no update inside dispatch`)
      settle()
      const t2 = now()
      s.deliver(ups)
      const t3 = now()
      if (counted) {
        const out = samples[s.name]!
        out.local.push(t1 - t0)
        out.remote.push(t3 - t2)
        out.bytes.push(ups.reduce((n, u) => n + u.length, 0))
      }
    }
    await macrotask()
  }
  await hooks.counting?.(false)
  checkEqual(sides, 'at the end')
  return { samples, keys, warmup }
}
