/**
 * The editor benchmark's browser page (bundled by bench/editor.ts with esbuild): real
 * ProseMirror EditorViews, two per system, on the generated document; runs the keystroke
 * script through the harness and returns the raw timings to the runner.
 *
 * The runner serves the page cross-origin isolated (COOP/COEP), so performance.now() ticks in
 * microseconds instead of Chromium's default 100 µs; the page reports what it got. With
 * `profile`, the page calls the runner's exposed `benchCounting(on)` when the counted keystrokes
 * start and end, so a CPU profile covers them and not the setup.
 */
import { EditorView } from 'prosemirror-view'
import type { EditorState } from 'prosemirror-state'
import { makeDocument, makeScript } from './editor-doc.ts'
import { type RunResult, type Side, runScript } from './editor-harness.ts'
import { polyphonySide } from './editor-ours.ts'
import { yjsSide } from './editor-yjs.ts'
import { plainSide } from './editor-plain.ts'

export interface PageOptions {
  chars: number
  runs: number
  perRun: number
  sides: readonly string[]
  /** Call the runner's `benchCounting` hook (it starts and stops the profiler). */
  profile?: boolean
}

export interface PageResult extends RunResult {
  doc: { textChars: number; size: number; blocks: number }
  setupMs: Record<string, number>
  crossOriginIsolated: boolean
  /** The smallest step of performance.now() seen, in ms. */
  tick: number
  userAgent: string
}

const makers: Record<string, typeof yjsSide> = {
  polyphony: polyphonySide,
  'y-prosemirror': yjsSide,
  plain: plainSide,
}

function timerTick(): number {
  let min = Infinity
  for (let i = 0; i < 200; i++) {
    const a = performance.now()
    let b = a
    while (b === a) b = performance.now()
    min = Math.min(min, b - a)
  }
  return min
}

async function editorBench(opts: PageOptions): Promise<PageResult> {
  const doc = makeDocument(opts.chars)
  const host = document.getElementById('editors')!
  const makeView = (state: EditorState) => {
    const box = document.createElement('div')
    box.className = 'editor'
    host.append(box)
    return new EditorView(box, { state })
  }
  const sides: Side[] = []
  const setupMs: Record<string, number> = {}
  for (const name of opts.sides) {
    const t0 = performance.now()
    sides.push(makers[name]!(doc, makeView))
    setupMs[name] = performance.now() - t0
  }
  try {
    const hook = (globalThis as { benchCounting?: (on: boolean) => Promise<void> }).benchCounting
    const result = await runScript(sides, makeScript(opts.runs + 1, opts.perRun), {
      now: () => performance.now(),
      settle: () => void document.body.offsetHeight,
      counting: opts.profile && hook ? hook : undefined,
    })
    return {
      ...result,
      doc: { textChars: doc.textContent.length, size: doc.content.size, blocks: doc.childCount },
      setupMs,
      crossOriginIsolated: globalThis.crossOriginIsolated === true,
      tick: timerTick(),
      userAgent: navigator.userAgent,
    }
  } finally {
    for (const s of sides) s.destroy()
    host.replaceChildren()
  }
}

;(globalThis as unknown as { editorBench: typeof editorBench }).editorBench = editorBench
