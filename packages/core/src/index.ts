export type { Dialect, UsageStatus, Correction, RecordUsage, UsageRecord, RecordMeta } from './record.js'
export { buildRecord } from './record.js'
export type { Usage, UsageField, UsageSources } from './usage.js'
export { promptTotal, totalTokens, USAGE_FIELDS } from './usage.js'
export { Ledger, type SourceKind } from './ledger.js'
export { fromAnthropicUsage, toAnthropicUsage } from './dialects/anthropic-usage.js'
export { fromOpenAIUsage, toOpenAIUsage, CHAT_NAMES, RESPONSES_NAMES } from './dialects/openai-usage.js'
export { dialectForPath } from './dialects/index.js'
export {
  createProcessor,
  DEFAULT_MAX_EVENT_BYTES,
  type Processor,
  type ProcessorOptions,
  type ProcessorResult,
} from './processor.js'
export { inspect, type InspectOptions, type InspectResult } from './inspect.js'
export { UsageTransform, usageTransformStream } from './streams.js'
export { createInterceptor, type Interceptor } from './node/intercept.js'
export { DEFAULT_ROUTES, matchRoute, routeOf, type Logger, type RouteRule, type UsagewireOptions } from './routes.js'
