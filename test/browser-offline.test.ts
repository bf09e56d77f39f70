/**
 * The demo's offline switch in real browsers (Debian's chromium): one person cuts their link,
 * both edit (structure, text and formatting), the link comes back and both editors and the
 * server end with equal ProseMirror JSON holding both people's edits. The same inside one
 * window with the split view (the second editor offline). Screenshot of the offline state:
 * test/output/browser-offline.png.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Page } from 'playwright-core'
import { startServer } from './support/server-harness.ts'
import {
  OUTPUT,
  editorJson,
  haveChromium,
  launchBrowser,
  paneSettled,
  paneStatus,
  sameJson,
  serverDoc,
  until,
} from './support/browser.ts'

/** Clicks pane `i`'s offline switch (the visible label, as a user does). */
async function flipOffline(page: Page, i: number): Promise<void> {
  await page.locator('.pane .toggle.offline').nth(i).click()
}

/** Where the caret of pane `i` is (ProseMirror position). */
function head(page: Page, i = 0): Promise<number> {
  return page.evaluate((n) => window.polyphonyDemo.panes[n]!.view.state.selection.head, i)
}

/** The plain text of pane `i`'s editor, blocks on lines. */
function paneText(page: Page, i = 0): Promise<string> {
  return page.evaluate((n) => {
    const doc = window.polyphonyDemo.panes[n]!.view.state.doc
    return doc.textBetween(0, doc.content.size, '\n')
  }, i)
}

if (haveChromium(test, 'browser-offline')) {
  test('offline switch: both edit while one is cut, reconnect, all equal', async () => {
    const srv = await startServer()
    const [ann, bob] = await Promise.all([launchBrowser(), launchBrowser()])
    try {
      const docId = 'offline-' + Date.now().toString(36)
      const [a, b] = await Promise.all([ann.page(), bob.page()])
      for (const p of [a, b]) {
        await p.goto(`${srv.httpUrl}/?doc=${docId}`)
        await p.locator('.ProseMirror').first().waitFor()
        await until('synced', () => paneSettled(p))
      }
      await a.locator('.ProseMirror').first().click()
      await a.keyboard.type('base line')
      await until('bob has it', async () => (await paneText(b)) === 'base line')

      await flipOffline(a, 0)
      await until('ann offline', async () => (await paneStatus(a)) === 'offline')
      assert.is(await a.locator('.pane .status-text').first().textContent(), 'Working offline')
      assert.ok(await a.locator('.stale-note').isVisible(), 'the presence list says it is not live')
      assert.ok(await a.locator('.offline-switch').first().isChecked())

      // Ann, offline: a new paragraph with a bold word. Bob, online: text at the start, and a
      // split of the paragraph ann is also editing.
      await a.locator('.ProseMirror').first().click() // the switch took the focus
      await a.keyboard.press('ControlOrMeta+End')
      await until('ann at the end', async () => (await head(a)) === 10)
      await a.keyboard.press('Enter')
      await a.keyboard.type('ann was ')
      await a.keyboard.press('ControlOrMeta+b')
      await a.keyboard.type('offline')
      await a.keyboard.press('ControlOrMeta+b')
      await b.locator('.ProseMirror').first().click()
      await b.keyboard.press('ControlOrMeta+Home')
      await b.keyboard.type('Bob: ')
      await b.keyboard.press('ControlOrMeta+End')
      for (let i = 0; i < 4; i++) await b.keyboard.press('ArrowLeft')
      await until('bob before "line"', async () => (await head(b)) === 11)
      await b.keyboard.press('Enter')
      await until('bob stored', () => paneSettled(b))
      assert.is(await paneText(b), 'Bob: base \nline')
      assert.is((await serverDoc(srv.httpUrl, docId)).text, 'Bob: base \nline')
      // Nothing crossed while cut.
      assert.is(await paneText(a), 'base line\nann was offline')
      assert.is(await paneStatus(a), 'offline')
      mkdirSync(OUTPUT, { recursive: true })
      await a.screenshot({ path: join(OUTPUT, 'browser-offline.png') })

      await flipOffline(a, 0)
      await until('ann back and stored', () => paneSettled(a))
      let server: { text: string; doc?: unknown } = { text: '' }
      await until(
        'all equal',
        async () => {
          const [ja, jb] = await Promise.all([editorJson(a), editorJson(b)])
          server = await serverDoc(srv.httpUrl, docId)
          return sameJson(ja, jb) && sameJson(ja, server.doc) && (await paneSettled(b))
        },
        15_000,
      )
      assert.is(server.text, 'Bob: base \nline\nann was offline')
      assert.match(JSON.stringify(server.doc), /"marks":\[\{"type":"strong"\}\],"text":"offline"/)
    } finally {
      await Promise.all([ann.close(), bob.close()])
      await srv.stop()
    }
  })

  test('split view: the second editor offline, edits in both, back online, equal', async () => {
    const srv = await startServer()
    const browser = await launchBrowser()
    try {
      const docId = 'split-offline-' + Date.now().toString(36)
      const page = await browser.page()
      await page.goto(`${srv.httpUrl}/?doc=${docId}&split=1`)
      await page.locator('.ProseMirror').nth(1).waitFor()
      await until(
        'both panes synced',
        async () => (await paneSettled(page, 0)) && (await paneSettled(page, 1)),
      )
      await flipOffline(page, 1)
      await until('right pane offline', async () => (await paneStatus(page, 1)) === 'offline')
      assert.is(await paneStatus(page, 0), 'synced')

      await page.locator('.ProseMirror').nth(0).click()
      await page.keyboard.type('left online')
      await page.locator('.ProseMirror').nth(1).click()
      await page.keyboard.type('right offline')
      await page.keyboard.press('Enter')
      await page.keyboard.type('second')
      await until('left stored', () => paneSettled(page, 0))
      assert.is(await paneText(page, 0), 'left online')
      assert.is(await paneText(page, 1), 'right offline\nsecond')

      await flipOffline(page, 1)
      await until('right back', () => paneSettled(page, 1))
      let server: { text: string; doc?: unknown } = { text: '' }
      await until('panes and server equal', async () => {
        const [j0, j1] = await Promise.all([editorJson(page, 0), editorJson(page, 1)])
        server = await serverDoc(srv.httpUrl, docId)
        return sameJson(j0, j1) && sameJson(j0, server.doc)
      })
      // Both typed into the one empty paragraph concurrently: each person's run stays whole,
      // in an order set by their (random) agent ids.
      assert.ok(
        ['left onlineright offline\nsecond', 'right offline\nsecondleft online'].includes(
          server.text,
        ),
        JSON.stringify(server.text),
      )
    } finally {
      await browser.close()
      await srv.stop()
    }
  })
}

test.run()
