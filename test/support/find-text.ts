/** Test helper: where a piece of text is in a ProseMirror document. */
import type { Node } from 'prosemirror-model'
import * as assert from 'uvu/assert'

/** The position of the first occurrence of `text` (inside one text node) in `doc`; fails the test when absent. */
export function findText(doc: Node, text: string): number {
  let at = -1
  doc.descendants((n, pos) => {
    if (at < 0 && n.isText) {
      const i = n.text!.indexOf(text)
      if (i >= 0) at = pos + i
    }
    return at < 0
  })
  assert.ok(at >= 0, `${text} not in ${doc}`)
  return at
}
