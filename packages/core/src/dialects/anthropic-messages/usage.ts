import { count, isObject, label, type JsonObject, type Usage, type UsageSources } from '../../usage.js'

/**
 * Anthropic Messages usage ⇄ canonical buckets.
 * `input_tokens` excludes cache reads and writes, so the buckets map one to one
 * (docs/dialects/anthropic-messages.md#input-excludes-the-cache).
 */
export function fromAnthropicUsage(native: JsonObject, at: string): { usage: Usage; sources: UsageSources } {
  const usage: Usage = {}
  const sources: UsageSources = {}
  const take = (field: keyof Usage, value: unknown, path: string) => {
    const n = count(value)
    if (n === undefined) return
    usage[field] = n
    sources[field] = label(at, path)
  }
  take('input', native.input_tokens, 'input_tokens')
  take('cacheRead', native.cache_read_input_tokens, 'cache_read_input_tokens')
  take('cacheWrite', native.cache_creation_input_tokens, 'cache_creation_input_tokens')
  const split = native.cache_creation
  if (isObject(split)) {
    take('cacheWrite5m', split.ephemeral_5m_input_tokens, 'cache_creation.ephemeral_5m_input_tokens')
    take('cacheWrite1h', split.ephemeral_1h_input_tokens, 'cache_creation.ephemeral_1h_input_tokens')
  }
  take('output', native.output_tokens, 'output_tokens')
  const details = native.output_tokens_details
  if (isObject(details)) take('reasoning', details.thinking_tokens, 'output_tokens_details.thinking_tokens')
  return { usage, sources }
}

/**
 * Writes the known canonical values into an Anthropic usage object (a copy; key order kept, new keys appended).
 * Only known values are written: the SDK overwrites on presence, so a written 0 would erase a correct
 * number (docs/peer-bugs.md row 31). The `cache_creation` TTL split is left alone: `message_delta` never carries
 * it and the SDK keeps the `message_start` one (docs/dialects/anthropic-messages.md#ttl-split).
 */
export function toAnthropicUsage(native: JsonObject, usage: Usage): JsonObject {
  const out: JsonObject = { ...native }
  if (usage.input !== undefined) out.input_tokens = usage.input
  if (usage.cacheWrite !== undefined) out.cache_creation_input_tokens = usage.cacheWrite
  if (usage.cacheRead !== undefined) out.cache_read_input_tokens = usage.cacheRead
  if (usage.output !== undefined) out.output_tokens = usage.output
  return out
}
