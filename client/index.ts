// The client's public surface (API.md, "Client"): re-exports only.
export {
  listenPeers,
  connectPeer,
  type ListenPeersOptions,
  type ConnectPeerOptions,
  type PeerListener,
  type PeerConnection,
} from './peer.ts'
export {
  connect,
  backoffDelay,
  isFinalClose,
  CLIENT_LINK_TUNING,
  FINAL_CLOSE_CODES,
  type Connection,
  type ConnectOptions,
  type ConnectionStatus,
} from './connection.ts'
export {
  collab,
  collabKey,
  isRemoteTransaction,
  remoteCursors,
  remoteTransaction,
  type CollabOptions,
  type CollabState,
  type CollabMeta,
  type RemoteCursor,
} from './collab.ts'
export {
  undoHistory,
  undo,
  redo,
  undoDepth,
  redoDepth,
  undoKeymap,
  closeHistory,
  undoKey,
  type UndoOptions,
} from './undo.ts'
export { createEditor, editorKeymap, type Editor, type EditorOptions } from './editor.ts'
export { toolbar } from './toolbar.ts'
export { EDITOR_CSS, injectEditorStyle } from './editor-style.ts'
export { colorFor } from './user-color.ts'
export { richSchema } from '../shared/rich-schema.ts'
