/**
 * The README's API examples run and print what the README says.
 *
 * Takes every ```ts (or ```typescript) block of README.md that imports from 'polyphony'
 * (or 'polyphony/client', 'polyphony/server'), maps those imports to the source entry
 * files, writes the block to a temp file and runs it with tsx in a child process (with a
 * timeout). Expected output, when the README states it, comes from either
 * - a trailing comment on a `console.log(...)` line: `console.log(doc.toString()) // 'hi'`
 *   (leading `→`, `=>`, `->`, `prints`, `output:` are ignored), or
 * - a ```text / ```console / ```output block right after the example (only blank lines or
 *   a line ending in ':' between them).
 * Comparison ignores whitespace and quote characters, so `'hi'` matches `hi`.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const ENTRY: Record<string, string> = {
  polyphony: 'shared/index.ts',
  'polyphony/client': 'client/index.ts',
  'polyphony/server': 'server/index.ts',
}

interface Example {
  code: string
  line: number
  expected: string[] | null
}

/** Finds the README's ts examples that import from the package, with expected output. */
function extractExamples(readme: string): Example[] {
  const lines = readme.split('\n')
  const out: Example[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```+\s*(ts|typescript)\b/.exec(lines[i])
    if (!open) continue
    const start = i + 1
    let end = start
    while (end < lines.length && !/^\s*```/.test(lines[end])) end++
    const body = lines.slice(start, end)
    i = end
    const code = body.join('\n')
    if (!/from\s+['"]polyphony(\/client|\/server)?['"]/.test(code)) continue
    let expected: string[] | null = null
    // an output block right after?
    let k = end + 1
    while (k < lines.length && (lines[k].trim() === '' || /:\s*$/.test(lines[k].trim()))) k++
    if (k < lines.length && /^\s*```+\s*(text|console|output|txt)\s*$/.test(lines[k])) {
      let e = k + 1
      while (e < lines.length && !/^\s*```/.test(lines[e])) e++
      expected = lines.slice(k + 1, e)
    } else {
      const fromComments: string[] = []
      for (const l of body) {
        const m = /console\.log\(.*\)\s*;?\s*\/\/\s*(.*)$/.exec(l)
        if (m) fromComments.push(m[1].replace(/^(→|=>|->|prints:?|output:?|logs:?)\s*/i, ''))
      }
      if (fromComments.length > 0) expected = fromComments
    }
    out.push({ code, line: start, expected })
  }
  return out
}

/** Whitespace- and quote-insensitive form of output lines, for comparison. */
function normalize(lines: readonly string[]): string[] {
  return lines
    .map((l) => l.replace(/\u001b\[[0-9;]*m/g, '').replace(/[\s'"`]/g, ''))
    .filter((l) => l !== '')
}

/** Rewrites package imports to the repo's source entry files. */
function mapImports(code: string): string {
  return code.replace(
    /(from\s+|import\s+)(['"])(polyphony(?:\/client|\/server)?)\2/g,
    (_, kw, q, spec) => {
      return `${kw}${q}${pathToFileURL(join(ROOT, ENTRY[spec])).href}${q}`
    },
  )
}

// POLYPHONY_README: another file to check (for trying out the extraction)
const readme = readFileSync(process.env.POLYPHONY_README || join(ROOT, 'README.md'), 'utf8')
const examples = extractExamples(readme)

test('README.md has at least one ```ts API example importing from polyphony', () => {
  assert.ok(
    examples.length > 0,
    "README.md has no ```ts code block importing from 'polyphony' yet: add an API example " +
      '(e.g. two TextDocs exchanging updates, with the printed output in comments)',
  )
})

for (const [n, ex] of examples.entries()) {
  test(`README example ${n + 1} (line ${ex.line}) runs and prints what the README says`, () => {
    // Inside the repo (test/output is ignored), so the example's other imports resolve.
    mkdirSync(join(ROOT, 'test', 'output'), { recursive: true })
    const dir = mkdtempSync(join(ROOT, 'test', 'output', 'readme-'))
    try {
      const file = join(dir, `example-${n + 1}.ts`)
      writeFileSync(file, mapImports(ex.code))
      const r = spawnSync(process.execPath, ['--import', 'tsx', file], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 30_000,
        // uvu forces colours in its own process; the example's output must be plain
        env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
      })
      const report = `exit ${r.status} signal ${r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`
      assert.is(r.signal, null, `example timed out or was killed: ${report}`)
      assert.is(r.status, 0, `example threw: ${report}`)
      if (ex.expected !== null) {
        assert.equal(
          normalize(r.stdout.split('\n')),
          normalize(ex.expected),
          `output differs from README (line ${ex.line}): ${report}`,
        )
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

test.run()
