/**
 * Two people, two browsers (Debian's chromium, separate profiles) on the demo page of one
 * document, typing at the same time: Enter, Backspace across a paragraph boundary and Mod-b
 * (bold). Both editors and the server (REST `doc`) end with equal ProseMirror JSON, the intent
 * of both is kept, each sees the other's caret with their name where they typed, and a page
 * opened later loads the same document. Screenshot: test/output/browser-collab.png.
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
  sameJson,
  serverDoc,
  until,
} from './support/browser.ts'

/** Opens the demo on `docId` and waits until its editor is synced. */
async function open(page: Page, httpUrl: string, docId: string): Promise<void> {
  await page.goto(`${httpUrl}/?doc=${encodeURIComponent(docId)}`)
  await page.locator('.ProseMirror').first().waitFor()
  await until('page synced', () => paneSettled(page))
}

/** The text of the paragraph holding `name`'s remote caret, before that caret (or null). */
function textBeforeCaret(page: Page, name: string): Promise<string | null> {
  return page.evaluate((who) => {
    const labels = [...document.querySelectorAll('.ProseMirror .pp-remote-label')]
    const label = labels.find((l) => l.textContent === who)
    const caret = label?.closest('.pp-remote-caret')
    const block = caret?.closest('p, li, h1, h2, h3, blockquote')
    if (!caret || !block) return null
    const range = document.createRange()
    range.setStart(block, 0)
    range.setEndBefore(caret)
    return range.toString()
  }, name)
}

/** Every text node of a ProseMirror JSON document with its mark names, in order. */
function textRuns(json: unknown): [string, string[]][] {
  const out: [string, string[]][] = []
  const walk = (n: { text?: string; marks?: { type: string }[]; content?: unknown[] }) => {
    if (typeof n.text === 'string') out.push([n.text, (n.marks ?? []).map((m) => m.type)])
    for (const c of n.content ?? []) walk(c as typeof n)
  }
  walk(json as Parameters<typeof walk>[0])
  return out
}

if (haveChromium(test, 'browser-collab')) {
  test('two browsers type at once (Enter, Backspace join, Mod-b) and end equal with the server', async () => {
    const srv = await startServer()
    const [ann, bob] = await Promise.all([launchBrowser(), launchBrowser()])
    try {
      const docId = 'collab-' + Date.now().toString(36)
      const [a, b] = await Promise.all([ann.page(), bob.page()])
      await Promise.all([open(a, srv.httpUrl, docId), open(b, srv.httpUrl, docId)])
      const annName = await a.locator('.user-name').first().inputValue()
      const bobName = await b.locator('.user-name').first().inputValue()
      assert.is.not(annName, '')
      assert.is.not(bobName, '')

      // Two paragraphs to start from, typed by ann and seen by bob.
      await a.locator('.ProseMirror').first().click()
      await a.keyboard.type('one')
      await a.keyboard.press('Enter')
      await a.keyboard.type('two')
      await until('bob sees the two paragraphs', async () =>
        sameJson(await editorJson(b), await editorJson(a)),
      )
      assert.is(((await editorJson(b)) as { content: unknown[] }).content.length, 2)

      // Carets first, while nothing else happens: ann at the end, bob at the start of "two".
      await a.keyboard.press('ControlOrMeta+End')
      await b.locator('.ProseMirror').first().click()
      await b.keyboard.press('ControlOrMeta+Home')
      await b.keyboard.press('ArrowDown')
      await b.keyboard.press('Home')
      const head = (p: Page) =>
        p.evaluate(() => window.polyphonyDemo.panes[0]!.view.state.selection.head)
      await until('carets placed', async () => (await head(a)) === 9 && (await head(b)) === 6)

      // At the same time: ann adds a paragraph at the end with a bold word; bob joins the two
      // paragraphs with Backspace at the start of the second and types at the join.
      const annTypes = async () => {
        await a.keyboard.press('Enter')
        await a.keyboard.type('alpha ', { delay: 15 })
        await a.keyboard.press('ControlOrMeta+b')
        await a.keyboard.type('bold', { delay: 15 })
        await a.keyboard.press('ControlOrMeta+b')
        await a.keyboard.type(' omega', { delay: 15 })
      }
      const bobTypes = async () => {
        await b.keyboard.press('Backspace')
        await b.keyboard.type('+', { delay: 15 })
        await b.keyboard.type('+', { delay: 15 })
      }
      await Promise.all([annTypes(), bobTypes()])

      let server: { text: string; doc?: unknown } = { text: '' }
      await until(
        'both editors and the server equal',
        async () => {
          const [ja, jb] = await Promise.all([editorJson(a), editorJson(b)])
          server = await serverDoc(srv.httpUrl, docId)
          return (
            sameJson(ja, jb) &&
            sameJson(ja, server.doc) &&
            (await paneSettled(a)) &&
            (await paneSettled(b))
          )
        },
        15_000,
        async () =>
          JSON.stringify({ a: await editorJson(a), b: await editorJson(b), server: server.doc }),
      )
      assert.is(server.text, 'one++two\nalpha bold omega')
      assert.equal(textRuns(server.doc), [
        ['one++two', []],
        ['alpha ', []],
        ['bold', ['strong']],
        [' omega', []],
      ])

      // Each sees the other's caret, labelled with their name, where they last typed.
      await until(
        'ann sees bob at the join',
        async () => (await textBeforeCaret(a, bobName)) === 'one++',
      )
      await until(
        'bob sees ann at the end of her paragraph',
        async () => (await textBeforeCaret(b, annName)) === 'alpha bold omega',
        10_000,
        async () => String(await textBeforeCaret(b, annName)),
      )
      assert.ok(await a.locator('.pp-remote-caret', { hasText: bobName }).isVisible())

      mkdirSync(OUTPUT, { recursive: true })
      await a.screenshot({ path: join(OUTPUT, 'browser-collab.png') })

      // A page opened later loads the same document.
      const late = await ann.context.newPage()
      await open(late, srv.httpUrl, docId)
      assert.ok(sameJson(await editorJson(late), server.doc))
    } finally {
      await Promise.all([ann.close(), bob.close()])
      await srv.stop()
    }
  })
}

test.run()
