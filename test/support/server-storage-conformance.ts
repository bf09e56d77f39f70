/**
 * The storage conformance suite: every `Storage` backend must pass it. `make(dir)` opens the
 * backend on directory `dir` (the same directory again must see the same data).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Storage } from '../../server/storage.ts'

const bytes = (...xs: number[]) => new Uint8Array(xs)

/** Registers the conformance tests for one backend on uvu's default suite. */
export function storageConformance(name: string, make: (dir: string) => Promise<Storage>): void {
  const withStorage = (title: string, fn: (s: Storage, dir: string) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'polyphony-storage-'))
      const s = await make(dir)
      try {
        await fn(s, dir)
      } finally {
        await s.close().catch(() => undefined)
        rmSync(dir, { recursive: true, force: true })
      }
    })

  withStorage('an unknown document loads as null', async (s) => {
    assert.is(await s.load('nope'), null)
    assert.is(await s.pendingUpdates('nope'), 0)
  })

  withStorage('appends come back in order with increasing ids', async (s) => {
    const id1 = await s.append('a', bytes(1, 2))
    const id2 = await s.append('a', bytes(3))
    assert.ok(id2 > id1, `${id2} > ${id1}`)
    const got = await s.load('a')
    assert.ok(got)
    assert.is(got.snapshot, null)
    assert.equal(
      got.updates.map((u) => [...u]),
      [[1, 2], [3]],
    )
    assert.is(got.lastUpdateId, id2)
  })

  withStorage('appends in one turn (group commit) all resolve, in order', async (s) => {
    const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => s.append('g', bytes(i))))
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!)
    const got = await s.load('g')
    assert.equal(
      got!.updates.map((u) => u[0]),
      Array.from({ length: 200 }, (_, i) => i),
    )
  })

  withStorage('documents are separate, whatever their names', async (s) => {
    for (const id of ['__proto__', 'constructor', 'prototype', 'a/b', 'ü 🎉']) {
      await s.append(id, new TextEncoder().encode(id))
    }
    for (const id of ['__proto__', 'constructor', 'prototype', 'a/b', 'ü 🎉']) {
      const got = await s.load(id)
      assert.equal(new TextDecoder().decode(got!.updates[0]), id)
      assert.is(got!.updates.length, 1)
    }
    assert.is(({} as Record<string, unknown>).polluted, undefined)
  })

  withStorage('compact replaces the snapshot and keeps later updates', async (s) => {
    await s.append('c', bytes(1))
    const through = await s.append('c', bytes(2))
    await s.compact('c', bytes(9, 9), through)
    const late = await s.append('c', bytes(3))
    const got = await s.load('c')
    assert.equal([...got!.snapshot!], [9, 9])
    assert.equal(
      got!.updates.map((u) => [...u]),
      [[3]],
    )
    assert.is(got!.lastUpdateId, late)
    assert.is(await s.pendingUpdates('c'), 1)
    await s.compact('c', bytes(7), late)
    const again = await s.load('c')
    assert.equal([...again!.snapshot!], [7])
    assert.is(again!.updates.length, 0)
    assert.is(again!.lastUpdateId, late)
  })

  withStorage(
    'a snapshot older than the stored one (lower throughId) does not replace it',
    async (s) => {
      const first = await s.append('o', bytes(1))
      const second = await s.append('o', bytes(2))
      await s.compact('o', bytes(8, 8), second)
      await s.compact('o', bytes(5), first) // late, from an older state
      const got = await s.load('o')
      assert.equal([...got!.snapshot!], [8, 8])
      assert.is(got!.updates.length, 0)
      assert.is(got!.lastUpdateId, second)
    },
  )

  test(`${name}: data survives close and reopen`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'polyphony-storage-'))
    try {
      const s1 = await make(dir)
      const id = await s1.append('p', bytes(5, 6))
      await s1.compact('p', bytes(4), id)
      await s1.append('p', bytes(7))
      await s1.close()
      const s2 = await make(dir)
      const got = await s2.load('p')
      assert.equal([...got!.snapshot!], [4])
      assert.equal(
        got!.updates.map((u) => [...u]),
        [[7]],
      )
      await s2.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  withStorage('after close, calls reject', async (s) => {
    await s.close()
    for (const call of [() => s.append('x', bytes(1)), () => s.load('x')]) {
      const outcome = await call().then(
        () => 'resolved',
        (err: unknown) => (err as Error).message,
      )
      assert.match(outcome, /closed/)
    }
  })
}
