/**
 * @usagewire/core: the Exchange (one per LLM request), its ledger, dialects and framers, sinks and the
 * usage record. Node response interception is in `@usagewire/core/node`, the WHATWG stream carrier in
 * `@usagewire/core/web`, test helpers in `@usagewire/core/testing`.
 */
export { createMeter, type Meter } from './meter.js'
export {
  Exchange,
  type Carrier,
  type HeadDecision,
  type HeaderLookup,
  type Hold,
  type MessageStartPolicy,
  DEFAULT_MAX_HOLD_MS,
  DEFAULT_MAX_WAIT_MS,
  type Outcome,
  type Port,
  type RequestInfo,
  type ResponseHead,
} from './exchange.js'
export type { UsagewireOptions, Logger } from './options.js'
export { UpstreamTap, type TapHead, type TapOwner } from './tap.js'
export { validateOptions } from './options.js'
export type { Sink, SinkLike, SinkStats } from './sinks.js'
export type {
  Dialect,
  UsageStatus,
  Correction,
  RecordCorrelation,
  RecordCost,
  RecordUsage,
  UsageRecord,
} from './record.js'
export {
  createPricer,
  DEFAULT_PRICES,
  matchModel,
  PRICES_AS_OF,
  priceUsage,
  type Cost,
  type PriceEntry,
  type PriceRates,
  type PriceTable,
  type PriceTier,
  type Pricer,
  type PricesOption,
} from './cost/index.js'
export type { Usage, UsageField, UsageSources } from './usage.js'
export { promptTotal, totalTokens, USAGE_FIELDS } from './usage.js'
export { Ledger, type SourceKind } from './ledger.js'
export { DEFAULT_ROUTES, matchRoute, routeOf, compileRoutes, type Route, type RouteRule } from './routes.js'
export { DIALECTS, DIALECT_IDS, dialectById, type DialectId } from './dialects/registry.js'
export type { DialectReader, DialectSpec, EventReading, TextSink, UsageBlock, WireEvent } from './dialects/types.js'
export { TextPrint, type TextPrints } from './dialects/text.js'
export { fromAnthropicUsage, toAnthropicUsage } from './dialects/anthropic-messages/usage.js'
export { fromOpenAIUsage, toOpenAIUsage, CHAT_NAMES, RESPONSES_NAMES } from './dialects/openai/usage.js'
export { framingFor } from './framing/index.js'
export type { Framer, FramingKind, EventSink, PayloadScanner, DecodedEvent } from './framing/index.js'
export {
  createProcessor,
  DEFAULT_MAX_EVENT_BYTES,
  type HoldPolicy,
  type Processor,
  type ProcessorOptions,
  type ProcessorResult,
} from './processor.js'
