// AWS event stream messages: moved to the doctor's provider (packages/doctor/src/provider/eventstream.ts).
export { chunkMessage, decodeChunks } from '@usagewire/doctor'
