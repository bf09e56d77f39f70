/**
 * Hidden-class anchors (shared/shape-anchors.ts) stay current: after a busy concurrent session
 * every anchor still has the hidden class a fresh instance of its class gets, so a full GC
 * cannot drop that class and deoptimize the merge path. V8 only answers this through a native
 * syntax, so the session runs in a child process (test/support/shape-check.ts).
 */
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

const CHECK = join(dirname(fileURLToPath(import.meta.url)), 'support', 'shape-check.ts')

test('every anchor keeps its class current through a concurrent session', () => {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', CHECK], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  assert.is(r.status, 0, `shape check failed: ${r.stderr}`)
  const lines = r.stdout.trim().split('\n')
  const result = JSON.parse(lines[lines.length - 1]!) as { anchors: number; stale: string[] }
  assert.ok(result.anchors >= 10, `only ${result.anchors} anchors registered`)
  assert.equal(result.stale, [], `anchors left on an old hidden class: ${result.stale.join(', ')}`)
})

test.run()
