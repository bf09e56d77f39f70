/**
 * Undo and redo of the local user's own changes only, correct while others edit
 * concurrently: the plugin `undoHistory()`, the commands `undo` / `redo`, and
 * `undoKeymap()` (Mod-z, Mod-Shift-z, Mod-y), used instead of prosemirror-history's.
 *
 * Owns: the done and undone branches (undo-branch.ts). A local transaction's steps are
 * recorded inverted, grouped into one event while changes follow each other within
 * `newGroupDelay` ms and touch adjacent ranges; a remote transaction (collab.ts's, or any
 * with `addToHistory: false`) is recorded as maps only, so undo maps own changes through
 * it and never reverts other people's. Undo moves an event to the redo branch and back;
 * a new local change clears redo.
 *
 * State-level: works on a bare `EditorState` (no view needed).
 */
import {
  type Command,
  Plugin,
  PluginKey,
  type EditorState,
  type Transaction,
} from 'prosemirror-state'
import { keymap } from 'prosemirror-keymap'
import { type StepMap, Mapping } from 'prosemirror-transform'
import { collabKey, type CollabMeta } from './collab.ts'
import { Branch } from './undo-branch.ts'

/** Options of `undoHistory`. */
export interface UndoOptions {
  /** Events kept (older ones are dropped). Default 100. */
  depth?: number
  /** Changes closer than this (ms) and adjacent join one event. Default 500. */
  newGroupDelay?: number
}

/** The plugin's state. */
export class UndoState {
  constructor(
    readonly done: Branch,
    readonly undone: Branch,
    /** Ranges of the last own change (for adjacency), in the current doc. */
    readonly prevRanges: readonly number[] | null,
    /** Time of the last own change (0: the next one starts an event). */
    readonly prevTime: number,
  ) {}
}

interface UndoMeta {
  readonly redo: boolean
  readonly state: UndoState
}

export const undoKey = new PluginKey<UndoState>('polyphony-undo')
const closeKey = new PluginKey('polyphony-undo-close')

/** The undo plugin: records own changes, maps them through remote ones. */
export function undoHistory(opts: UndoOptions = {}): Plugin<UndoState> {
  const depth = opts.depth ?? 100
  const delay = opts.newGroupDelay ?? 500
  return new Plugin<UndoState>({
    key: undoKey,
    state: {
      init: () => new UndoState(Branch.empty, Branch.empty, null, 0),
      apply: (tr, hist, old) => applyTransaction(hist, old, tr, depth, delay),
    },
    props: {
      handleDOMEvents: {
        beforeinput(view, e) {
          const input = (e as InputEvent).inputType
          const command = input === 'historyUndo' ? undo : input === 'historyRedo' ? redo : null
          if (!command) return false
          e.preventDefault()
          return command(view.state, view.dispatch)
        },
      },
    },
  })
}

function applyTransaction(
  hist: UndoState,
  state: EditorState,
  tr: Transaction,
  depth: number,
  delay: number,
): UndoState {
  const meta = tr.getMeta(undoKey) as UndoMeta | undefined
  if (meta) return meta.state
  if (tr.getMeta(closeKey)) hist = new UndoState(hist.done, hist.undone, null, 0)
  if (tr.steps.length === 0) return hist
  const appended = tr.getMeta('appendedTransaction') as Transaction | undefined
  if (tr.getMeta('addToHistory') === false) {
    // Not ours (remote) or not to be undone: later undos map through it. A remote change
    // comes with the mapping that follows tokens, exact where its steps replace a range.
    const remote = tr.getMeta(collabKey) as CollabMeta | undefined
    const mapping = remote?.mapping instanceof Mapping ? remote.mapping : tr.mapping
    return new UndoState(
      hist.done.addMaps(mapping.maps),
      hist.undone.addMaps(mapping.maps),
      mapRanges(hist.prevRanges, mapping),
      hist.prevTime,
    )
  }
  const appendedMeta = appended?.getMeta(undoKey) as UndoMeta | undefined
  if (appendedMeta) {
    // A change appended to an undo or redo belongs to the same event.
    return appendedMeta.redo
      ? new UndoState(
          hist.done.addTransform(tr, undefined, depth),
          hist.undone,
          hist.prevRanges,
          hist.prevTime,
        )
      : new UndoState(
          hist.done,
          hist.undone.addTransform(tr, undefined, depth),
          hist.prevRanges,
          hist.prevTime,
        )
  }
  const time = tr.time || 0
  const newGroup =
    hist.prevTime === 0 ||
    (!appended && (hist.prevTime < time - delay || !isAdjacentTo(tr, hist.prevRanges)))
  const prevRanges = appended ? mapRanges(hist.prevRanges, tr.mapping) : rangesFor(tr.mapping.maps)
  return new UndoState(
    hist.done.addTransform(tr, newGroup ? state.selection.getBookmark() : undefined, depth),
    Branch.empty,
    prevRanges,
    time,
  )
}

function isAdjacentTo(tr: Transaction, prevRanges: readonly number[] | null): boolean {
  if (!prevRanges) return false
  let adjacent = false
  tr.mapping.maps[0].forEach((start, end) => {
    for (let i = 0; i < prevRanges.length; i += 2)
      if (start <= prevRanges[i + 1] && end >= prevRanges[i]) adjacent = true
  })
  return adjacent
}

function rangesFor(maps: readonly StepMap[]): number[] {
  const out: number[] = []
  for (let i = maps.length - 1; i >= 0 && out.length === 0; i--)
    maps[i].forEach((_a, _b, from, to) => out.push(from, to))
  return out
}

function mapRanges(ranges: readonly number[] | null, mapping: Mapping): number[] | null {
  if (!ranges) return null
  const out: number[] = []
  for (let i = 0; i < ranges.length; i += 2) {
    const from = mapping.map(ranges[i], 1)
    const to = mapping.map(ranges[i + 1], -1)
    if (from <= to) out.push(from, to)
  }
  return out
}

function historyCommand(redo: boolean): Command {
  return (state, dispatch) => {
    const hist = undoKey.getState(state)
    if (!hist || (redo ? hist.undone : hist.done).eventCount === 0) return false
    if (dispatch) {
      const tr = undoTransaction(hist, state, redo)
      if (tr) dispatch(tr.scrollIntoView())
    }
    return true
  }
}

function undoTransaction(hist: UndoState, state: EditorState, redo: boolean): Transaction | null {
  const pop = (redo ? hist.undone : hist.done).popEvent(state.doc)
  if (!pop) return null
  const tr = state.tr
  for (const step of pop.transform.steps) tr.step(step)
  const other = (redo ? hist.done : hist.undone).addTransform(
    pop.transform,
    state.selection.getBookmark(),
    Infinity,
  )
  const next = redo
    ? new UndoState(other, pop.remaining, null, 0)
    : new UndoState(pop.remaining, other, null, 0)
  const meta: UndoMeta = { redo, state: next }
  return tr.setSelection(pop.selection.resolve(tr.doc)).setMeta(undoKey, meta)
}

/** Undoes the last own change event (not other people's), at its current place. */
export const undo: Command = historyCommand(false)

/** Redoes the last undone event. */
export const redo: Command = historyCommand(true)

/** The number of own events that can be undone. */
export function undoDepth(state: EditorState): number {
  return undoKey.getState(state)?.done.eventCount ?? 0
}

/** The number of undone events that can be redone. */
export function redoDepth(state: EditorState): number {
  return undoKey.getState(state)?.undone.eventCount ?? 0
}

/** Marks `tr` so that the next own change starts a new undo event. */
export function closeHistory(tr: Transaction): Transaction {
  return tr.setMeta(closeKey, true)
}

/** Mod-z undo, Mod-Shift-z and Mod-y redo. */
export function undoKeymap(): Plugin {
  return keymap({ 'Mod-z': undo, 'Mod-Shift-z': redo, 'Mod-y': redo })
}
