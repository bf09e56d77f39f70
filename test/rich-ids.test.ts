/** TokenIds (the gap-buffered id columns of a RichDoc) against a plain array, under random edits. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TokenIds } from '../shared/rich-ids.ts'
import { Rng } from './support/rng.ts'

test('random inserts, deletes, sets and clears read back like an array', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const rng = new Rng(seed)
    const ids = new TokenIds()
    let model: [string, number][] = []
    for (let step = 0; step < 400; step++) {
      const r = rng.float()
      if (r < 0.5 || model.length === 0) {
        const i = rng.int(0, model.length)
        const n = rng.int(1, rng.chance(0.05) ? 3000 : 5)
        const agent = rng.chance(0.2) ? null : ['a', 'b', 'c'][rng.int(0, 2)]!
        const seq = rng.int(0, 100)
        ids.insert(i, n, agent, seq)
        const add: [string, number][] = []
        for (let k = 0; k < n; k++) add.push(agent === null ? ['a', -1] : [agent, seq + k])
        model.splice(i, 0, ...add)
      } else if (r < 0.85) {
        const i = rng.int(0, model.length - 1)
        const n = rng.int(1, Math.min(10, model.length - i))
        ids.delete(i, n)
        model.splice(i, n)
      } else if (r < 0.98) {
        const i = rng.int(0, model.length - 1)
        ids.set(i, 'z', step)
        model[i] = ['z', step]
      } else {
        const n = rng.int(0, 50)
        ids.clear(n)
        model = Array.from({ length: n }, () => ['a', -1] as [string, number])
      }
      assert.is(ids.length, model.length, `seed ${seed} step ${step}`)
      const probe = [0, model.length - 1, rng.int(0, Math.max(0, model.length - 1))]
      for (const i of probe) {
        if (i < 0 || i >= model.length) continue
        if (model[i]![1] >= 0) assert.is(ids.agent(i), model[i]![0], `seed ${seed} step ${step}`)
        assert.is(ids.seq(i), model[i]![1], `seed ${seed} step ${step} token ${i}`)
      }
    }
    for (let i = 0; i < model.length; i++) assert.is(ids.seq(i), model[i]![1])
  }
})

test.run()
