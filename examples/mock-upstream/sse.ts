// SSE serialization and deterministic ids: moved to the doctor's provider (packages/doctor/src/provider/sse.ts).
export { idFragment, sseEvent, textDeltas } from '@usagewire/doctor'
