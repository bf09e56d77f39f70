/**
 * Helpers for real-browser tests: Debian's chromium (/usr/bin/chromium) through playwright-core,
 * each browser a persistent context on a fresh profile directory (playwright never downloads a
 * browser here), bounded polling, and reads of the demo page's editors.
 *
 * Without chromium a browser test file registers one test that says so and passes, except under
 * CI=true, where it fails (CI installs chromium).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'uvu'
import * as assert from 'uvu/assert'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
export const OUTPUT = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'output')

/**
 * True when chromium is there. Otherwise registers on `suite` the test that reports why nothing
 * ran (failing under CI=true) and returns false.
 */
export function haveChromium(suite: Test, name: string): boolean {
  if (existsSync(CHROMIUM)) return true
  if (process.env.CI === 'true') {
    suite(name, () => {
      assert.unreachable(`${CHROMIUM} is missing: CI must install Debian's chromium`)
    })
  } else {
    console.log(`  ${name}: ${CHROMIUM} not found, skipping (apt-get install chromium)`)
    suite(`${name} (skipped: no chromium)`, () => {})
  }
  return false
}

/** A browser: chromium with a fresh profile of its own; `close()` also removes the profile. */
export interface Browser {
  readonly context: BrowserContext
  page(): Promise<Page>
  close(): Promise<void>
}

/** Launches chromium on a fresh profile directory (headless, no network but 127.0.0.1 use). */
export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'polyphony-chromium-'))
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 800 },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
    })
  } catch (err) {
    rmSync(profile, { recursive: true, force: true })
    throw err
  }
  // Surface page errors in the test's output: a broken bundle should not look like a timeout.
  context.on('weberror', (e) => console.error('  page error:', e.error().message))
  context.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning')
      console.error(`  page ${m.type()}:`, m.text())
  })
  return {
    context,
    async page() {
      const existing = context.pages().find((p) => p.url() === 'about:blank')
      return existing ?? context.newPage()
    },
    async close() {
      await context.close().catch(() => undefined)
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

/** Polls `pred` every 50 ms until true; throws after `ms` naming `what` (and `detail()`). */
export async function until(
  what: string,
  pred: () => Promise<boolean>,
  ms = 15_000,
  detail?: () => Promise<string>,
): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await pred()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  const more = detail ? `: ${await detail().catch((e) => String(e))}` : ''
  throw new Error(`timed out after ${ms} ms waiting for ${what}${more}`)
}

/** The ProseMirror JSON of pane `i` of the demo page (0: the page's first editor). */
export function editorJson(page: Page, i = 0): Promise<unknown> {
  return page.evaluate((n) => window.polyphonyDemo.panes[n]!.view.state.doc.toJSON(), i)
}

/** The connection status of pane `i`, as the page shows it (`data-status`). */
export function paneStatus(page: Page, i = 0): Promise<string | null> {
  return page.locator('.pane .status').nth(i).getAttribute('data-status')
}

/** Whether pane `i` is synced and every local edit is acknowledged by the server. */
export function paneSettled(page: Page, i = 0): Promise<boolean> {
  return page.evaluate((n) => {
    const c = window.polyphonyDemo.panes[n]!.connection
    return c.status === 'synced' && c.allAcknowledged
  }, i)
}

/** The server's REST view of a document (`{ id, version, text, doc? }`). */
export async function serverDoc(
  httpUrl: string,
  docId: string,
): Promise<{ text: string; doc?: unknown }> {
  const res = await fetch(`${httpUrl}/api/docs/${encodeURIComponent(docId)}`)
  if (res.status !== 200) throw new Error(`REST read of ${docId}: HTTP ${res.status}`)
  return (await res.json()) as { text: string; doc?: unknown }
}

/** Deep equality of two JSON values (key order ignored). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined)
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined)
  if (ka.length !== kb.length) return false
  return ka.every((k) =>
    sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  )
}
