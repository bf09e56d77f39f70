// The core's public surface (API.md, "Core"): re-exports only.
export { TextDoc, type TextOp, type VersionVector } from './text-doc.ts'
