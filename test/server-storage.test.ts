// Storage: the conformance suite on SQLite, plus SQLite specifics (pragmas, corruption).
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { SqliteStorage, StorageCorruptError } from '../server/storage.ts'
import { storageConformance } from './support/server-storage-conformance.ts'

storageConformance('sqlite', (dir) => SqliteStorage.open({ dataDir: dir }))

test('sqlite: WAL with synchronous=FULL (E3)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'polyphony-storage-'))
  const s = await SqliteStorage.open({ dataDir: dir })
  try {
    assert.is(await s.pragma('journal_mode'), 'wal')
    assert.is(await s.pragma('synchronous'), 2) // 2 = FULL
  } finally {
    await s.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

for (const table of ['updates', 'snapshots'] as const) {
  test(`sqlite: a flipped byte in ${table} fails loudly (E10)`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'polyphony-storage-'))
    try {
      const s = await SqliteStorage.open({ dataDir: dir })
      const id = await s.append('d', new Uint8Array([1, 2, 3, 4]))
      if (table === 'snapshots') await s.compact('d', new Uint8Array([5, 6, 7, 8]), id)
      await s.close()
      const raw = new Database(join(dir, 'polyphony.sqlite3'))
      const row = raw.prepare(`SELECT rowid AS r, data FROM ${table} LIMIT 1`).get() as {
        r: number
        data: Buffer
      }
      row.data[2] ^= 0x40
      raw.prepare(`UPDATE ${table} SET data = ? WHERE rowid = ?`).run(row.data, row.r)
      raw.close()
      const s2 = await SqliteStorage.open({ dataDir: dir })
      try {
        await s2.load('d').then(
          () => assert.unreachable('corrupt bytes loaded'),
          (err: unknown) => {
            assert.instance(err, StorageCorruptError)
            assert.match((err as Error).message, /checksum/)
          },
        )
      } finally {
        await s2.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

test('sqlite: sustained appends commit commitIntervalMs apart; a lone append and close() do not wait', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'polyphony-storage-'))
  const s = await SqliteStorage.open({ dataDir: dir, commitIntervalMs: 300 })
  try {
    const start = performance.now()
    await s.append('d', new Uint8Array([1]))
    // The next commit starts no sooner than 300 ms after the first did: both appends wait.
    const [a, b] = await Promise.all([
      s.append('d', new Uint8Array([2])),
      s.append('d', new Uint8Array([3])),
    ])
    assert.ok(performance.now() - start >= 300)
    assert.equal([a, b], [2, 3])
    // After a quiet stretch an append commits at once.
    await new Promise((r) => setTimeout(r, 350))
    let t = performance.now()
    await s.append('d', new Uint8Array([4]))
    assert.ok(performance.now() - t < 250, `a lone append waited ${performance.now() - t} ms`)
    // One that would wait is committed by close() at once.
    const late = s.append('d', new Uint8Array([5]))
    t = performance.now()
    await s.close()
    assert.ok(performance.now() - t < 250, `close() waited ${performance.now() - t} ms`)
    assert.is(await late, 5)
    const again = await SqliteStorage.open({ dataDir: dir })
    assert.equal(
      (await again.load('d'))!.updates.map((u) => u[0]),
      [1, 2, 3, 4, 5],
    )
    await again.close()
  } finally {
    await s.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('sqlite: a commit interval out of range is refused', async () => {
  for (const commitIntervalMs of [-1, Number.NaN, 20_000]) {
    const err = await SqliteStorage.open({ dataDir: tmpdir(), commitIntervalMs }).then(
      () => null,
      (e: Error) => e,
    )
    assert.instance(err, RangeError)
    assert.match(err!.message, /commitIntervalMs/)
  }
})

test('sqlite: a second process on the same data directory is refused (E9)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'polyphony-storage-'))
  const s = await SqliteStorage.open({ dataDir: dir })
  try {
    await s.append('d', new Uint8Array([1]))
    const { spawnSync } = await import('node:child_process')
    const code = `const D = require('better-sqlite3'); const db = new D(${JSON.stringify(
      join(dir, 'polyphony.sqlite3'),
    )}, { timeout: 0 }); try { db.prepare('SELECT count(*) FROM updates').get(); console.log('READ') } catch (e) { console.log('LOCKED ' + e.code) }`
    const out = spawnSync(process.execPath, ['-e', code], { cwd: process.cwd(), encoding: 'utf8' })
    assert.match(out.stdout, /LOCKED SQLITE_BUSY/)
    const second = await SqliteStorage.open({ dataDir: dir }).then(
      () => 'opened',
      (err: Error) => err.message,
    )
    assert.match(second, /in use by another server process/)
  } finally {
    await s.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('createServer: a failed listen releases the data directory (a retry can take it)', async () => {
  const { createServer } = await import('../server/create-server.ts')
  const { createServer: createHttp } = await import('node:http')
  const { pino } = await import('pino')
  const dir = mkdtempSync(join(tmpdir(), 'polyphony-storage-'))
  const taken = createHttp()
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r))
  const port = (taken.address() as { port: number }).port
  const opts = { dataDir: dir, host: '127.0.0.1', logger: pino({ level: 'silent' }) }
  try {
    const err = await createServer({ ...opts, port }).then(
      () => null,
      (e: Error) => e,
    )
    assert.match(String(err), /EADDRINUSE/)
    const server = await createServer({ ...opts, port: 0 })
    await server.close()
  } finally {
    await new Promise((r) => taken.close(r))
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
