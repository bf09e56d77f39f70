// The core's public surface (API.md, "Core"): re-exports only.
export { TextDoc, type TextOp, type VersionVector } from './text-doc.ts'
export {
  link,
  realClock,
  type Link,
  type LinkOptions,
  type LinkStats,
  type Clock,
  type Identity,
} from './sync.ts'
export {
  SyncError,
  SYNC_ERRORS,
  PROTOCOL_VERSION,
  closeCodeFor,
  errorName,
  type SyncErrorName,
  type Message,
  type Anchor,
  type PresenceState,
  type PresenceEntry,
} from './protocol.ts'
export {
  Presence,
  anchorSelection,
  resolveSelection,
  type Anchorable,
  type PresenceOptions,
  type PresenceChange,
} from './presence.ts'
export {
  fromWebSocket,
  fromDataChannel,
  fromBroadcastChannel,
  fromMessagePort,
  memoryPair,
  type Channel,
  type WebSocketLike,
  type DataChannelLike,
  type PostLike,
} from './channels.ts'
export type { Replica } from './replica.ts'
export { RichDoc } from './rich-doc.ts'
export { MAX_RICH_DEPTH, RichDepthError } from './rich-tokens.ts'
export { richSchema } from './rich-schema.ts'
