/**
 * How REST readers see a document. The server holds every document as a `TextDoc` replica and
 * replicates it unchanged; a rich document (a `RichDoc`'s inner events: its first event is the
 * shared genesis by agent `~genesis`) is projected for reading with the server's schema
 * (default `richSchema`, shared/rich-schema.ts, no DOM): the ProseMirror JSON, and as text the
 * document's text with blocks separated by newlines (hard breaks are newlines too) instead of
 * the raw tokens.
 *
 * Invariants: a read never changes the replica (the projection is a separate `RichDoc` loaded
 * from `save()`); a rich document that does not load with the server's schema (made with
 * another schema, or corrupted by a plain-text client) is a `ProjectionError`, never raw tokens.
 * Cost: O(document) per projection, memoised per replica and version (total event count, which
 * grows with every integrated event), so repeated reads of an unchanged document are free.
 */
import type { Node, Schema } from 'prosemirror-model'
import { GENESIS_AGENT, RichDoc } from '../shared/rich-doc.ts'
import type { TextDoc } from '../shared/text-doc.ts'

/** What `GET /api/docs/:id` answers besides the id. */
export interface DocumentView {
  readonly version: Readonly<Record<string, number>>
  /** The plain text: raw for a text document, blocks joined by newlines for a rich one. */
  readonly text: string
  /** The ProseMirror document as JSON (rich documents only). */
  readonly doc?: unknown
}

/** A rich document the server's schema cannot project. */
export class ProjectionError extends Error {
  override readonly name = 'ProjectionError'
}

/** Whether `doc` holds a rich document: it starts with the RichDoc genesis event. */
export function isRichDocument(doc: TextDoc): boolean {
  return Object.hasOwn(doc.version(), GENESIS_AGENT)
}

/** The text of a ProseMirror document: textblocks (and block leaves) on lines of their own. */
export function richText(node: Node): string {
  return node.textBetween(0, node.content.size, '\n', (leaf) =>
    leaf.type.spec.leafText !== undefined
      ? leaf.type.spec.leafText(leaf)
      : leaf.type.name === 'hard_break'
        ? '\n'
        : '',
  )
}

const memo = new WeakMap<TextDoc, { events: number; view: DocumentView }>()

function eventCount(version: Readonly<Record<string, number>>): number {
  let n = 0
  for (const agent in version) n += version[agent]!
  return n
}

/** `doc` as REST readers see it; throws `ProjectionError` for a rich document `schema` rejects. */
export function documentView(doc: TextDoc, schema: Schema): DocumentView {
  const version = doc.version()
  if (!Object.hasOwn(version, GENESIS_AGENT)) return { version, text: doc.toString() }
  const events = eventCount(version)
  const cached = memo.get(doc)
  if (cached !== undefined && cached.events === events) return cached.view
  let projected: Node
  try {
    projected = RichDoc.load(schema, doc.save()).doc
  } catch (err) {
    throw new ProjectionError(
      `rich document does not load with the server's schema: ${(err as Error).message}`,
    )
  }
  const view: DocumentView = { version, text: richText(projected), doc: projected.toJSON() }
  memo.set(doc, { events, view })
  return view
}
