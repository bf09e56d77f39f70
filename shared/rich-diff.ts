/**
 * The steps that turn one ProseMirror document into another: what a `RichDoc`
 * reports in its 'change' event after a remote merge (the projection changed).
 *
 * Invariant: applying the returned steps to `a` gives a document equal to `b`.
 * One ReplaceStep over the differing range (found from both ends), falling back
 * to replacing the whole content, plus a DocAttrStep per changed document attr.
 */
import type { Node } from 'prosemirror-model'
import { DocAttrStep, ReplaceStep, type Step } from 'prosemirror-transform'

/** Steps from `a` to `b` (empty when they are equal). */
export function diffSteps(a: Node, b: Node): Step[] {
  if (a.eq(b)) return []
  const steps: Step[] = []
  let cur = a
  const start = a.content.findDiffStart(b.content)
  if (start !== null) {
    const end = a.content.findDiffEnd(b.content)!
    let endA = end.a
    let endB = end.b
    const overlap = start - Math.min(endA, endB)
    if (overlap > 0) {
      endA += overlap
      endB += overlap
    }
    let step: Step = new ReplaceStep(start, endA, b.slice(start, endB))
    let r = step.apply(cur)
    if (r.doc === null || !r.doc.content.eq(b.content)) {
      step = new ReplaceStep(0, a.content.size, b.slice(0, b.content.size))
      r = step.apply(cur)
    }
    if (r.doc !== null) {
      steps.push(step)
      cur = r.doc
    }
  }
  for (const key of Object.keys(b.attrs)) {
    if (cur.attrs[key] === b.attrs[key]) continue
    const step = new DocAttrStep(key, b.attrs[key])
    const r = step.apply(cur)
    if (r.doc !== null) {
      steps.push(step)
      cur = r.doc
    }
  }
  return steps
}
