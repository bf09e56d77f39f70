/**
 * The demo page in a real browser (Debian's chromium through playwright-core):
 * two pages edit one document at the same time, both end equal to the
 * server's text, and a page opened later loads what was written. Saves a
 * screenshot to test/output/demo.png.
 *
 * Without /usr/bin/chromium the test says so and skips, except under CI
 * (CI=true), where a missing browser fails.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { restText, startServer, type TestServer } from './support/server-harness.ts'

const CHROMIUM = '/usr/bin/chromium'
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const OUTPUT = join(ROOT, 'test', 'output')

/** Chromium with a fresh profile directory of its own. */
async function launch(): Promise<{ browser: BrowserContext; profile: string }> {
  const profile = mkdtempSync(join(tmpdir(), 'polyphony-chromium-'))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  })
  return { browser, profile }
}

async function editorText(page: Page): Promise<string> {
  return page.locator('.ProseMirror').first().inputValue()
}

async function until(what: string, pred: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await pred()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

if (!existsSync(CHROMIUM)) {
  if (process.env.CI === 'true') {
    test('demo in a real browser', () => {
      assert.unreachable(`${CHROMIUM} is missing: CI must install Debian's chromium`)
    })
  } else {
    console.log(`  demo-browser: ${CHROMIUM} not found, skipping (apt-get install chromium)`)
    test('demo in a real browser (skipped: no chromium)', () => {})
  }
} else {
  test('two browser pages type at once and converge with the server', async () => {
    const srv: TestServer = await startServer()
    const { browser, profile } = await launch()
    try {
      const doc = 'browser-' + Date.now().toString(36)
      const url = `${srv.httpUrl}/?doc=${doc}`
      const [p1, p2] = [await browser.newPage(), await browser.newPage()]
      await Promise.all([p1.goto(url), p2.goto(url)])
      for (const p of [p1, p2]) await p.locator('.ProseMirror').first().waitFor()
      await until('both pages synced', async () => {
        const s = await Promise.all([p1, p2].map((p) => p.textContent('body')))
        return s.every((t) => t !== null && t.includes('synced'))
      })
      // Type at the same time in both pages.
      await p1.locator('.ProseMirror').first().click()
      await p2.locator('.ProseMirror').first().click()
      await Promise.all([
        p1.keyboard.type('alpha beta ', { delay: 5 }),
        p2.keyboard.type('gamma delta ', { delay: 5 }),
      ])
      await until('pages and server equal', async () => {
        const [a, b] = await Promise.all([editorText(p1), editorText(p2)])
        const server = await restText(srv.httpUrl, doc)
        return a === b && b === server && a.length === 'alpha beta gamma delta '.length
      })
      const text = await editorText(p1)
      for (const word of ['alpha', 'beta', 'gamma', 'delta']) assert.ok(text.includes(word), text)
      // A page opened now loads the document.
      const p3 = await browser.newPage()
      await p3.goto(url)
      await until('late page loaded', async () => (await editorText(p3)) === text)
      mkdirSync(OUTPUT, { recursive: true })
      await p1.screenshot({ path: join(OUTPUT, 'demo.png') })
    } finally {
      await browser.close()
      rmSync(profile, { recursive: true, force: true })
      await srv.stop()
    }
  })
}

test.run()
