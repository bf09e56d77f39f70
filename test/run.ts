/**
 * `npm test`: runs every `test/**\/*.test.ts` (uvu suites) in a process of its
 * own, one after another, so servers, ports and globals of one file never
 * leak into another and each file's failure is reported on its own.
 *
 * Usage: `tsx test/run.ts [FILTER…]` (substrings of paths). Prints each file's
 * uvu summary and a closing `N passed, N failed` line; exits non-zero when any
 * test fails or a file crashes or exceeds its time limit (TEST_FILE_TIMEOUT_MS,
 * default 6 minutes).
 */
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TEST_DIR = join(ROOT, 'test')
const SKIP_DIRS = new Set(['output', 'support', 'node_modules'])
const TIMEOUT_MS = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 6 * 60_000)

function findTests(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) {
      if (!SKIP_DIRS.has(name)) out.push(...findTests(path))
    } else if (name.endsWith('.test.ts')) {
      out.push(path)
    }
  }
  return out
}

interface FileResult {
  file: string
  passed: number
  failed: number
  ok: boolean
  ms: number
}

function runFile(file: string): Promise<FileResult> {
  const started = Date.now()
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    })
    let output = ''
    const collect = (chunk: Buffer) => {
      output += chunk.toString()
      process.stdout.write(chunk)
    }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    const timer = setTimeout(() => {
      output += `\n${relative(ROOT, file)}: timed out after ${TIMEOUT_MS} ms\n`
      console.log(`\n${relative(ROOT, file)}: timed out after ${TIMEOUT_MS} ms`)
      child.kill('SIGKILL')
    }, TIMEOUT_MS)
    child.on('close', (code) => {
      clearTimeout(timer)
      const clean = output.replace(/\x1b\[[0-9;]*m/g, '')
      const total = Number(/Total:\s+(\d+)/.exec(clean)?.[1] ?? 0)
      const passed = Number(/Passed:\s+(\d+)/.exec(clean)?.[1] ?? 0)
      const failed = Math.max(total - passed, code === 0 ? 0 : 1)
      done({
        file,
        passed,
        failed,
        ok: code === 0 && total > 0 && failed === 0,
        ms: Date.now() - started,
      })
    })
  })
}

const filters = process.argv.slice(2)
const files = findTests(TEST_DIR).filter(
  (f) => filters.length === 0 || filters.some((x) => relative(ROOT, f).includes(x)),
)
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
const results: FileResult[] = []
for (const file of files) {
  console.log(`\n── ${relative(ROOT, file)}`)
  results.push(await runFile(file))
}
console.log('\nfile results:')
for (const r of results) {
  const mark = r.ok ? 'ok  ' : 'FAIL'
  console.log(
    `  ${mark} ${relative(ROOT, r.file)}  ${r.passed} passed, ${r.failed} failed  ${(r.ms / 1000).toFixed(1)} s`,
  )
}
const passed = results.reduce((n, r) => n + r.passed, 0)
const failed = results.reduce((n, r) => n + r.failed, 0)
console.log(`\n${passed} passed, ${failed} failed`)
process.exit(results.every((r) => r.ok) ? 0 : 1)
