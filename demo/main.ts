/**
 * The demo page (served at `/`): `?doc=NAME` opens document NAME; without it a new readable
 * name goes into the URL (history.replaceState) so the address bar is the link to share.
 * `&token=T` is passed to the server when it has a secret; `&split=1` opens the split view.
 *
 * Invariants: the page's first `.ProseMirror` element is the first pane's editor (API.md:
 * `GET /?doc=NAME`); the split view's pane comes after it in the DOM. The presence list is
 * what the first pane's link knows (everyone on the document, itself and the split pane
 * marked). `window.polyphonyDemo` exposes the panes for tests and curious users.
 */
import { safeColor } from '../client/user-color.ts'
import type { PresenceState } from '../shared/presence.ts'
import { colorFor, randomDocName, randomUserName } from './names.ts'
import { mountPane, type Pane } from './pane.ts'

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`demo page: #${id} missing`)
  return el as T
}

const params = new URLSearchParams(location.search)
let docId = (params.get('doc') ?? '').trim()
if (docId.length === 0) {
  docId = randomDocName()
  params.set('doc', docId)
  history.replaceState(null, '', `${location.pathname}?${params}`)
}
const token = params.get('token') ?? undefined
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host

const panesEl = byId<HTMLElement>('panes')
const template = byId<HTMLTemplateElement>('pane-template')
const people = byId<HTMLUListElement>('people')
const splitSwitch = byId<HTMLInputElement>('split-switch')
const shareInput = byId<HTMLInputElement>('share-url')
const copyButton = byId<HTMLButtonElement>('copy-link')
byId('doc-name').textContent = docId
document.title = `${docId} · Polyphony`

/** The link to share: this document, never the token (each person needs their own). */
function shareLink(): string {
  return `${location.origin}${location.pathname}?doc=${encodeURIComponent(docId)}`
}
shareInput.value = shareLink()
shareInput.addEventListener('focus', () => shareInput.select())

copyButton.addEventListener('click', async () => {
  let copied = false
  try {
    await navigator.clipboard.writeText(shareLink())
    copied = true
  } catch {
    // No clipboard API (plain http on another host): select it for Ctrl-C instead.
    shareInput.focus()
    shareInput.select()
  }
  copyButton.textContent = copied ? 'Copied' : 'Press Ctrl-C'
  copyButton.classList.toggle('done', copied)
  setTimeout(() => {
    copyButton.textContent = 'Copy link'
    copyButton.classList.remove('done')
  }, 1600)
})

const NAME_KEY = 'polyphony-demo-name'
const firstName = sessionStorage.getItem(NAME_KEY) ?? randomUserName()
const panes: Pane[] = []

const first = mountPane(panesEl, template, {
  url,
  docId,
  token,
  name: firstName,
  color: colorFor(firstName),
  onRename: (name) => sessionStorage.setItem(NAME_KEY, name),
})
panes.push(first)

function renderPeople(): void {
  const split = panes[1]
  const rows: [string, PresenceState][] = [...first.presence.getStates()]
  rows.sort(([a], [b]) => {
    const rank = (id: string) => (id === first.presence.id ? 0 : id === split?.presence.id ? 1 : 2)
    return rank(a) - rank(b) || a.localeCompare(b)
  })
  const items = rows.map(([id, state]) => {
    const name = (state.name ?? state.user ?? 'guest').trim() || 'guest'
    const li = document.createElement('li')
    li.className = 'person'
    li.dataset.presenceId = id
    const swatch = document.createElement('span')
    swatch.className = 'swatch'
    swatch.style.background = safeColor(state.color, name)
    swatch.textContent = name[0]!.toUpperCase()
    const label = document.createElement('span')
    label.className = 'name'
    label.textContent = name
    li.append(swatch, label)
    const note =
      id === first.presence.id ? 'you' : id === split?.presence.id ? 'you, split view' : null
    if (note !== null) {
      const you = document.createElement('span')
      you.className = 'you'
      you.textContent = `(${note})`
      li.append(you)
    }
    return li
  })
  people.replaceChildren(...items)
}
first.presence.on('change', renderPeople)
renderPeople()
// While the first editor's link is down its presence list is what it knew before.
const presenceBox = people.closest<HTMLElement>('.presence')!
first.connection.on('status', (s) => {
  presenceBox.dataset.stale = String(s !== 'synced' && s !== 'connected')
})

function setSplit(on: boolean): void {
  splitSwitch.checked = on
  panesEl.classList.toggle('split', on)
  if (on && panes.length === 1) {
    const avoid = [first.presence.getLocal()?.name ?? firstName]
    const name = randomUserName(avoid)
    const color = colorFor(name, [first.presence.getLocal()?.color ?? ''])
    panes.push(mountPane(panesEl, template, { url, docId, token, name, color }))
  } else if (!on && panes.length > 1) {
    panes.pop()!.destroy()
  }
  if (on) params.set('split', '1')
  else params.delete('split')
  history.replaceState(null, '', `${location.pathname}?${params}`)
  renderPeople()
}
splitSwitch.addEventListener('change', () => setSplit(splitSwitch.checked))
if (params.get('split') === '1') setSplit(true)

first.view.focus()

declare global {
  interface Window {
    polyphonyDemo: { readonly docId: string; readonly panes: readonly Pane[] }
  }
}
window.polyphonyDemo = { docId, panes }
