/**
 * The default rich-text schema of Polyphony's editor: prosemirror-schema-basic's
 * nodes with bullet and ordered lists from prosemirror-schema-list, and
 * schema-basic's marks (link, em, strong, code).
 *
 * No DOM code: the server imports it to project a rich document to JSON.
 * Invariant: one shared instance, so every replica of the default editor uses
 * the same `Schema` object (RichDoc caches its genesis per schema).
 */
import { Schema } from 'prosemirror-model'
import { schema as basic } from 'prosemirror-schema-basic'
import { addListNodes } from 'prosemirror-schema-list'

/** The default schema: basic nodes, lists (`paragraph block*` items in `block` group), basic marks. */
export const richSchema: Schema = new Schema({
  nodes: addListNodes(basic.spec.nodes, 'paragraph block*', 'block'),
  marks: basic.spec.marks,
})
