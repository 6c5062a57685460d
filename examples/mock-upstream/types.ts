// The mock's dialects, true usage and request context: moved to the doctor's provider (packages/doctor/src/provider/types.ts).
export type { MockDialect, RequestContext, TrueUsage } from '@usagewire/doctor'
