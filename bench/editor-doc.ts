/**
 * The editor benchmark's data: a schema, a deterministic ~200 KB ProseMirror document and a
 * deterministic keystroke script.
 *
 * Owns: `benchSchema` (prosemirror-schema-basic nodes and marks with prosemirror-schema-list's
 * lists, the editor's default), `makeDocument` (sections of a heading, paragraphs with bold,
 * italic and code runs, bullet and ordered lists, a few blockquotes, from a seeded PRNG, until
 * the text reaches the target size) and `makeScript` (typing runs of words at spread-out places
 * in paragraphs, headings and list items, with Enter and Backspace mixed in, the way people
 * type). The same seed gives the same document and script everywhere (Node and the browser),
 * so both systems replay exactly the same keystrokes on the same document.
 */
import { type Mark, type Node, Schema } from 'prosemirror-model'
import { schema as basic } from 'prosemirror-schema-basic'
import { addListNodes } from 'prosemirror-schema-list'

/** The editor's default schema: basic nodes, lists with `paragraph block*` items, basic marks. */
export const benchSchema: Schema = new Schema({
  nodes: addListNodes(basic.spec.nodes, 'paragraph block*', 'block'),
  marks: basic.spec.marks,
})

/** mulberry32: a small, fast, seeded PRNG giving floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which ' +
  'but have an they you were her she there been one all we their has would when if so no will ' +
  'replica editor document event graph merge version paragraph heading cursor network offline ' +
  'server client concurrent insert delete transform converge history snapshot update browser ' +
  'latency keystroke selection schema token position marker vector anchor agent sequence run'
).split(' ')

/** A deterministic ProseMirror document of `benchSchema` with at least `targetChars` of text. */
export function makeDocument(targetChars = 200_000, seed = 1): Node {
  const s = benchSchema
  const rnd = prng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1))
  let chars = 0

  /** Inline content of `words` words: runs of bold, italic, bold+italic and code. */
  const inline = (words: number, capital = true): Node[] => {
    const out: Node[] = []
    let run = ''
    let runMarks: readonly Mark[] = []
    let marks: readonly Mark[] = []
    let left = 0 // words left in the current marked run
    for (let w = 0; w < words; w++) {
      if (left === 0) {
        marks = []
        const r = rnd()
        if (r < 0.07) marks = [s.marks.strong.create()]
        else if (r < 0.12) marks = [s.marks.em.create()]
        else if (r < 0.135) marks = [s.marks.em.create(), s.marks.strong.create()]
        else if (r < 0.145) marks = [s.marks.code.create()]
        left = marks.length > 0 ? int(1, 4) : int(3, 12)
      }
      left--
      let word = pick(WORDS)
      if (w === 0 && capital) word = word[0]!.toUpperCase() + word.slice(1)
      if (w === words - 1) word += '.'
      else if (rnd() < 0.08) word += ','
      const text = w === words - 1 ? word : word + ' '
      if (run !== '' && !sameMarks(marks, runMarks)) {
        out.push(s.text(run, runMarks))
        run = ''
      }
      runMarks = marks
      run += text
    }
    if (run !== '') out.push(s.text(run, runMarks))
    for (const n of out) chars += n.text!.length
    return out
  }
  const paragraph = (lo: number, hi: number) => s.nodes.paragraph.create(null, inline(int(lo, hi)))

  const blocks: Node[] = []
  let sinceHeading = 99
  while (chars < targetChars) {
    if (sinceHeading > int(6, 14)) {
      blocks.push(s.nodes.heading.create({ level: int(1, 3) }, inline(int(2, 7))))
      sinceHeading = 0
      continue
    }
    sinceHeading++
    const r = rnd()
    if (r < 0.12) {
      const type = rnd() < 0.6 ? s.nodes.bullet_list : s.nodes.ordered_list
      const items: Node[] = []
      for (let i = int(2, 6); i > 0; i--)
        items.push(s.nodes.list_item.create(null, paragraph(6, 30)))
      blocks.push(type.create(null, items))
    } else if (r < 0.15) {
      blocks.push(s.nodes.blockquote.create(null, paragraph(20, 60)))
    } else {
      blocks.push(paragraph(25, 110))
    }
  }
  const doc = s.nodes.doc.create(null, blocks)
  doc.check()
  return doc
}

function sameMarks(a: readonly Mark[], b: readonly Mark[]): boolean {
  return a.length === b.length && a.every((m, i) => m.eq(b[i]!))
}

/** Where a typing run starts: the textblock kind and its place in the document (0..1). */
export type Place = 'paragraph' | 'heading' | 'list'

/** One step of the script; `goto` moves the cursor (not timed), the others are keystrokes. */
export type Key =
  | { readonly t: 'goto'; readonly place: Place; readonly at: number }
  | { readonly t: 'char'; readonly ch: string }
  | { readonly t: 'enter' }
  | { readonly t: 'backspace' }

/**
 * `runs` typing runs of `perRun` keystrokes each, at places spread over the document
 * (mostly paragraphs, some in headings and list items): words and spaces, a Backspace now and
 * then (a typo fixed: 1–3 Backspaces and the letters typed again), an Enter every 40–140
 * characters (not in headings, whose Enter would make a paragraph, a different edit mix).
 */
export function makeScript(runs: number, perRun: number, seed = 2): Key[] {
  const rnd = prng(seed)
  const keys: Key[] = []
  for (let r = 0; r < runs; r++) {
    const place: Place = r % 5 === 3 ? 'list' : r % 7 === 5 ? 'heading' : 'paragraph'
    keys.push({ t: 'goto', place, at: (r + 0.5) / runs })
    let typed = 0
    let nextEnter = 40 + Math.floor(rnd() * 100)
    let sinceEnter = 0
    while (typed < perRun) {
      const word = WORDS[Math.floor(rnd() * WORDS.length)]! + ' '
      for (let i = 0; i < word.length && typed < perRun; i++) {
        if (rnd() < 0.03 && i > 0 && typed + 4 <= perRun) {
          // A typo noticed late: Backspace over the last letters, then type them again.
          const n = Math.min(i, 1 + Math.floor(rnd() * 3))
          for (let k = 0; k < n; k++) keys.push({ t: 'backspace' })
          typed += n
          for (let k = i - n; k < i && typed < perRun; k++, typed++)
            keys.push({ t: 'char', ch: word[k]! })
        }
        if (typed >= perRun) break
        keys.push({ t: 'char', ch: word[i]! })
        typed++
        sinceEnter++
      }
      if (place !== 'heading' && sinceEnter >= nextEnter && typed < perRun) {
        keys.push({ t: 'enter' })
        typed++
        sinceEnter = 0
        nextEnter = 40 + Math.floor(rnd() * 100)
      }
    }
  }
  return keys
}

/**
 * The cursor position for `goto`: the textblock of the wanted kind nearest to fraction `at`
 * of the document, a word boundary a few words into it. Depends only on the document, so
 * equal documents give equal positions.
 */
export function gotoPos(doc: Node, place: Place, at: number): number {
  const found: { pos: number; node: Node }[] = []
  doc.descendants((node, pos, parent) => {
    if (!node.isTextblock) return true
    const kind: Place =
      node.type.name === 'heading'
        ? 'heading'
        : parent?.type.name === 'list_item'
          ? 'list'
          : 'paragraph'
    if (kind === place) found.push({ pos: pos + 1, node })
    return false
  })
  if (found.length === 0) throw new Error(`no ${place} in the document`)
  const { pos, node } = found[Math.min(found.length - 1, Math.floor(at * found.length))]!
  const text = node.textContent
  let off = 0
  for (let spaces = 0; off < text.length && spaces < 3; off++) if (text[off] === ' ') spaces++
  return pos + off
}
