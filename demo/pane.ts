/**
 * One editor pane of the demo: a collaborative editor of the page's document (createEditor)
 * under a bar with the user's editable name and colour, the connection status and an offline
 * switch that cuts this editor's link (`connection.setOnline`).
 *
 * Invariants: each pane has its own RichDoc, connection and presence (two panes are two users);
 * renaming updates the presence state in place (collab keeps the selection beside it); the
 * status text follows the connection's status, and while synced says whether every local edit
 * is stored ("Synced") or some wait for the server's acknowledgement ("Saving…"). Two users
 * with one colour: the one with the higher presence id moves to a free colour (only one of them
 * changes, whichever replica sees the clash first).
 */
import type { EditorView } from 'prosemirror-view'
import type { Connection, ConnectionStatus } from '../client/connection.ts'
import { createEditor } from '../client/editor.ts'
import type { RichDoc } from '../shared/rich-doc.ts'
import type { Presence } from '../shared/presence.ts'
import { USER_COLORS } from './names.ts'

/** What a pane needs to know. */
export interface PaneOptions {
  readonly url: string
  readonly docId: string
  readonly token: string | undefined
  readonly name: string
  readonly color: string
  /** Called after the user renamed this pane's user. */
  readonly onRename?: (name: string) => void
}

/** A mounted pane. */
export interface Pane {
  readonly element: HTMLElement
  readonly view: EditorView
  readonly connection: Connection<RichDoc>
  readonly presence: Presence
  /** Cuts (`true`) or restores this editor's link, like the switch. */
  setOffline(offline: boolean): void
  destroy(): void
}

const STATUS_TEXT: Record<ConnectionStatus, string> = {
  connecting: 'Connecting…',
  connected: 'Syncing…',
  synced: 'Synced',
  offline: 'Offline',
  refused: 'Refused',
}

function part<T extends HTMLElement>(root: HTMLElement, selector: string): T {
  const el = root.querySelector<T>(selector)
  if (el === null) throw new Error(`demo page: ${selector} missing from the pane template`)
  return el
}

/** Builds a pane from `template` and appends it to `parent`. */
export function mountPane(
  parent: HTMLElement,
  template: HTMLTemplateElement,
  opts: PaneOptions,
): Pane {
  const element = (template.content.firstElementChild as HTMLElement).cloneNode(true) as HTMLElement
  parent.append(element)
  const nameInput = part<HTMLInputElement>(element, '.user-name')
  const avatar = part<HTMLElement>(element, '.avatar')
  const status = part<HTMLElement>(element, '.status')
  const statusText = part<HTMLElement>(element, '.status-text')
  const offlineSwitch = part<HTMLInputElement>(element, '.offline-switch')
  const host = part<HTMLElement>(element, '.editor-host')

  nameInput.value = opts.name
  avatar.style.background = opts.color
  const editor = createEditor(host, {
    url: opts.url,
    docId: opts.docId,
    token: opts.token,
    user: { name: opts.name, color: opts.color },
  })
  const connection = editor.connection as Connection<RichDoc>
  const presence = editor.presence

  let reason: string | undefined
  const showStatus = () => {
    const s = connection.status
    status.dataset.status = s
    const saving = s === 'synced' && !connection.allAcknowledged
    status.dataset.saving = String(saving)
    let text = saving ? 'Saving…' : STATUS_TEXT[s]
    if (s === 'offline') text = connection.online ? 'Offline, reconnecting…' : 'Working offline'
    if (s === 'refused') text = `Refused: ${reason ?? 'by the server'}`
    if (connection.readOnly && s !== 'refused') text += ' · read-only'
    statusText.textContent = text
    status.title = reason ?? ''
  }
  const offs = [
    connection.on('status', (_s, why) => {
      reason = why
      showStatus()
    }),
    connection.on('ack', showStatus),
    connection.on('error', showStatus),
    connection.doc.on('update', (_u, origin) => {
      if (origin === undefined) showStatus() // a local edit: "Saving…" until acknowledged
    }),
  ]
  showStatus()

  const avoidColorClash = () => {
    const mine = presence.getLocal()
    if (mine?.color === undefined) return
    const others = [...presence.getStates()].filter(([id]) => id !== presence.id)
    if (!others.some(([id, st]) => st.color === mine.color && id < presence.id)) return
    const taken = new Set(others.map(([, st]) => st.color))
    const free = USER_COLORS.find((c) => !taken.has(c))
    if (free === undefined) return
    presence.setLocal({ ...mine, color: free })
    avatar.style.background = free
  }
  offs.push(presence.on('change', avoidColorClash))

  const setOffline = (offline: boolean) => {
    offlineSwitch.checked = offline
    connection.setOnline(!offline)
    showStatus()
  }
  offlineSwitch.addEventListener('change', () => setOffline(offlineSwitch.checked))

  const rename = () => {
    const name = nameInput.value.trim()
    if (name.length === 0) return
    presence.setLocal({ ...presence.getLocal(), name })
    opts.onRename?.(name)
  }
  nameInput.addEventListener('input', rename)
  nameInput.addEventListener('blur', () => {
    if (nameInput.value.trim().length === 0) nameInput.value = presence.getLocal()?.name ?? ''
  })
  nameInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') editor.view.focus()
  })

  return {
    element,
    view: editor.view,
    connection,
    presence,
    setOffline,
    destroy() {
      for (const off of offs) off()
      editor.destroy()
      element.remove()
    },
  }
}
