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
