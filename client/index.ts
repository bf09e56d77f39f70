// The client's public surface (API.md, "Client"): re-exports only.
export {
  listenPeers,
  connectPeer,
  type ListenPeersOptions,
  type ConnectPeerOptions,
  type PeerListener,
  type PeerConnection,
} from './peer.ts'
