/**
 * The plain-text demo: a <textarea> bound to a TextDoc replicated with the server by `connect`.
 * Local input becomes one delete + one insert (the changed middle between common prefix and
 * suffix); remote changes rewrite the textarea and map the selection through the ops.
 */
import { connect, type ConnectionStatus } from '../client/connection.ts'
import type { TextOp } from '../shared/text-doc.ts'

const params = new URLSearchParams(location.search)
const docId = params.get('doc') || 'welcome'
const token = params.get('token') ?? undefined
const area = document.getElementById('editor') as HTMLTextAreaElement
const status = document.getElementById('status') as HTMLElement
document.getElementById('doc')!.textContent = docId

const wsBase = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host
const conn = connect({ url: wsBase, docId, token })
const doc = conn.doc
let shown = doc.toString()
area.value = shown

const label: Record<ConnectionStatus, string> = {
  connecting: 'connecting…',
  connected: 'connected, syncing…',
  synced: 'synced: every edit you made is stored on the server',
  offline: 'offline: keep typing, your edits are sent when the server is back',
  refused: 'refused by the server',
}
conn.on('status', (s, reason) => {
  status.dataset.status = s
  status.textContent = label[s] + (s === 'refused' && reason ? ` (${reason})` : '')
  if (s === 'refused') area.disabled = true
})
conn.on('error', (err) => {
  if (err.codeName === 'READ_ONLY') {
    status.textContent = 'read-only: your edits are not accepted by the server'
    area.readOnly = true
  }
})
area.disabled = false

area.addEventListener('input', () => {
  const next = area.value
  let start = 0
  const max = Math.min(shown.length, next.length)
  while (start < max && shown.charCodeAt(start) === next.charCodeAt(start)) start++
  let endOld = shown.length
  let endNew = next.length
  while (
    endOld > start &&
    endNew > start &&
    shown.charCodeAt(endOld - 1) === next.charCodeAt(endNew - 1)
  ) {
    endOld--
    endNew--
  }
  // Never split a surrogate pair.
  if (start > 0 && /[\uD800-\uDBFF]/.test(shown[start - 1]!)) start--
  if (endOld < shown.length && /[\uDC00-\uDFFF]/.test(shown[endOld]!)) {
    endOld++
    endNew++
  }
  shown = next
  if (endOld > start) doc.delete(start, endOld - start)
  if (endNew > start) doc.insert(start, next.slice(start, endNew))
})

/**
 * Maps a caret through remote ops. A remote insert exactly at the caret stays
 * after it: the caret keeps following what this user typed, so two people
 * typing at one place each keep a contiguous run instead of interleaving.
 */
function mapPos(pos: number, ops: readonly TextOp[]): number {
  for (const op of ops) {
    if ('insert' in op) {
      if (op.index < pos) pos += op.insert.length
    } else if (op.index < pos) {
      pos -= Math.min(op.delete, pos - op.index)
    }
  }
  return pos
}

doc.on('change', (ops, origin) => {
  if (origin === undefined) return // our own typing: the textarea already shows it
  const { selectionStart, selectionEnd } = area
  shown = doc.toString()
  area.value = shown
  area.setSelectionRange(mapPos(selectionStart, ops), mapPos(selectionEnd, ops))
})
