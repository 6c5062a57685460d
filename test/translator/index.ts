/**
 * Deliberately broken translating gateways and the provider behind them, for the upstream tap's tests
 * (test/tap/). Each gateway takes Anthropic Messages, calls a provider in another wire (Bedrock Converse,
 * OpenAI Responses, OpenAI Chat) and answers in Anthropic Messages with the usage bugs real translators
 * have (docs/dialects/anthropic-messages.md#anthropic-compatible-translators): only the gateway's own call
 * to the provider carries the truth. Everything binds 127.0.0.1; nothing here reaches the internet.
 */

export {
  FAULT_MODELS,
  GATEWAY_ADAPTERS,
  TEXT,
  TEXT_DELTAS,
  UPSTREAMS,
  type GatewayAdapter,
  type Truth,
  type UpstreamKind,
} from './common.js'
export { startProvider } from './provider.js'
export { startTranslator } from './gateways.js'
