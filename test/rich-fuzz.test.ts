/**
 * Randomized structural fuzz of RichDoc: 3 to 5 replicas apply random transforms
 * (typing, deleting ranges across blocks, split, join, wrap, lift, marks,
 * attrs, block type and node replacement) and exchange their updates in random
 * order (reordered, duplicated, some held back); after a full exchange every
 * replica must show an equal, valid document, and anchors taken along the way
 * (`anchorAt`) must resolve to the same position everywhere (`positionOf`); a
 * position's anchor resolves back to it, or past a node the projection made up.
 * FUZZ_SEED replays one seed,
 * RICH_FUZZ_ROUNDS sets the number of seeds.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Schema, type Node } from 'prosemirror-model'
import { schema as basic } from 'prosemirror-schema-basic'
import { addListNodes } from 'prosemirror-schema-list'
import { Transform, canJoin, canSplit, findWrapping, liftTarget } from 'prosemirror-transform'
import { RichDoc } from '../shared/index.ts'
import { Rng } from './support/rng.ts'

const schema = new Schema({
  nodes: addListNodes(basic.spec.nodes, 'paragraph block*', 'block'),
  marks: basic.spec.marks,
})
const N = schema.nodes
const M = schema.marks

/** A random position in `doc` where text may go, or null. */
function textPos(rng: Rng, doc: Node): number | null {
  for (let tries = 0; tries < 20; tries++) {
    const pos = rng.int(0, doc.content.size)
    if (doc.resolve(pos).parent.inlineContent) return pos
  }
  return null
}

/** One random edit on `d`'s document; false when the chosen edit did not apply here. */
function randomEdit(rng: Rng, d: RichDoc): boolean {
  const doc = d.doc
  const tr = new Transform(doc)
  const size = doc.content.size
  const a = rng.int(0, size)
  const b = Math.min(size, a + rng.int(0, 12))
  try {
    switch (rng.int(0, 11)) {
      case 0:
      case 1: {
        const pos = textPos(rng, doc)
        if (pos === null) return false
        const marks = rng.chance(0.3) ? [M.strong.create()] : []
        tr.insert(pos, schema.text(rng.pick(['a', 'bc', 'def', 'XY', '😀']), marks))
        break
      }
      case 2:
        tr.delete(a, b)
        break
      case 3:
        if (!canSplit(doc, a)) return false
        tr.split(a)
        break
      case 4:
        if (!canJoin(doc, a)) return false
        tr.join(a)
        break
      case 5: {
        const range = doc.resolve(a).blockRange(doc.resolve(b))
        const wrap =
          range && findWrapping(range, rng.pick([N.blockquote, N.bullet_list, N.ordered_list]))
        if (!range || !wrap) return false
        tr.wrap(range, wrap)
        break
      }
      case 6: {
        const range = doc.resolve(a).blockRange(doc.resolve(b))
        const target = range && liftTarget(range)
        if (!range || target === null || target === undefined) return false
        tr.lift(range, target)
        break
      }
      case 7: {
        const mark = rng.pick([
          M.strong.create(),
          M.em.create(),
          M.code.create(),
          M.link.create({ href: rng.pick(['x', 'y']) }),
        ])
        if (rng.chance(0.3)) tr.removeMark(a, b, mark.type)
        else tr.addMark(a, b, mark)
        break
      }
      case 8: {
        let target = -1
        doc.nodesBetween(a, b, (n, pos) => {
          if (target < 0 && n.type === N.heading) target = pos
        })
        if (target < 0) {
          tr.setBlockType(a, b, N.heading, { level: rng.int(1, 3) })
        } else tr.setNodeAttribute(target, 'level', rng.int(1, 6))
        break
      }
      case 9:
        tr.setBlockType(a, b, N.paragraph)
        break
      case 10: {
        const $a = doc.resolve(a)
        if ($a.depth === 0) return false
        const start = $a.before(1)
        const node = doc.nodeAt(start)!
        tr.replaceWith(start, start + node.nodeSize, N.paragraph.create(null, schema.text('new')))
        break
      }
      default: {
        const pos = textPos(rng, doc)
        if (pos === null) return false
        tr.insert(pos, N.hard_break.create())
      }
    }
  } catch {
    return false // the transform itself refused (e.g. a structure it cannot make)
  }
  if (tr.steps.length === 0) return false
  try {
    d.applySteps(tr.steps)
  } catch (e) {
    // Positions inside a surrogate pair are refused (the core counts code units as events).
    if (!(e instanceof RangeError && /surrogate/.test(e.message))) throw e
    assert.ok(d.doc.eq(doc), 'a refused step changed the document')
    return false
  }
  assert.ok(
    d.doc.eq(tr.doc),
    `local result differs: ${d.doc} vs ${tr.doc}\nfrom ${doc}\nsteps ${JSON.stringify(tr.steps.map((s) => s.toJSON()))}`,
  )
  return true
}

/** Anchors a random position of `d` and checks it resolves back to it (or later: made-up nodes). */
function takeAnchor(rng: Rng, d: RichDoc, where: () => string): ReturnType<RichDoc['anchorAt']> {
  const size = d.doc.content.size
  const pos = rng.int(0, size)
  const anchor = d.anchorAt(pos)
  const back = d.positionOf(anchor)
  assert.ok(
    back !== null && back >= pos && back <= size,
    `${where()}: anchor of ${pos} resolves to ${back}`,
  )
  return anchor
}

function run(seed: number): void {
  const rng = new Rng(seed)
  const n = 3 + (seed % 3)
  const reps = ['a', 'b', 'c', 'd', 'e'].slice(0, n).map((agent) => new RichDoc(schema, agent))
  const inbox: Uint8Array[][] = reps.map(() => [])
  reps.forEach((r, i) =>
    r.on('update', (u, origin) => {
      if (origin !== undefined) return // only forward local events; full sync at the end
      reps.forEach((_, j) => j !== i && inbox[j].push(u))
    }),
  )
  const where = () => `seed ${seed} (replay: FUZZ_SEED=${seed} npx tsx test/rich-fuzz.test.ts)`
  const anchors: ReturnType<RichDoc['anchorAt']>[] = []
  try {
    for (let step = 0; step < 60; step++) {
      const i = rng.int(0, n - 1)
      if (rng.chance(0.6)) randomEdit(rng, reps[i])
      if (rng.chance(0.4) && inbox[i].length > 0) {
        // Deliver one queued update, not necessarily the oldest; sometimes twice.
        const k = rng.int(0, inbox[i].length - 1)
        const u = inbox[i][k]
        if (!rng.chance(0.2)) inbox[i].splice(k, 1)
        reps[i].applyUpdate(u, 'net')
      }
      reps[i].doc.check()
      if (rng.chance(0.15)) anchors.push(takeAnchor(rng, reps[i], where))
      if (step % 15 === 14) reps[i].checkInvariants()
    }
    for (let i = 0; i < n; i++) for (const u of rng.shuffle(inbox[i])) reps[i].applyUpdate(u, 'net')
    for (const x of reps)
      for (const y of reps) if (x !== y) y.applyUpdate(x.encodeUpdate(y.version()), 'net')
  } catch (e) {
    throw new Error(`${where()}: ${(e as Error).stack}`)
  }
  for (const r of reps) {
    assert.is(r.pendingCount, 0, where())
    r.doc.check()
    assert.ok(
      r.doc.eq(reps[0].doc),
      `${where()}: ${r.agent} ${r.doc}\n vs ${reps[0].agent} ${reps[0].doc}`,
    )
  }
  for (const anchor of anchors) {
    const at = reps[0].positionOf(anchor)
    assert.ok(
      at !== null && at >= 0 && at <= reps[0].doc.content.size,
      `${where()}: anchor at ${at}`,
    )
    for (const r of reps)
      assert.is(r.positionOf(anchor), at, `${where()}: anchor ${JSON.stringify(anchor)}`)
  }
  reps[seed % n].checkInvariants()
}

test('3 to 5 replicas, random structural edits, random delivery: equal and valid documents, anchors agree', () => {
  const fixed = process.env.FUZZ_SEED
  if (fixed !== undefined) return run(Number(fixed))
  const rounds = Number(process.env.RICH_FUZZ_ROUNDS ?? 40)
  const base = Date.now() % 100000
  for (let s = 0; s < rounds; s++) run(base + s)
})

test.run()
