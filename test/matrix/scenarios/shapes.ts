/**
 * The usage shapes the scenarios send: what a translating gateway gets wrong in each dialect, and what
 * the usage truly was (on the wire, and in the record).
 */
import { anthropicStream } from '../upstream.js'

/** Anthropic: message_delta writes 0 over the true message_start counters (SDKs overwrite from the delta). */
export const ZEROING_ANTHROPIC = () =>
  anthropicStream({
    start: { input_tokens: 1200, cache_creation_input_tokens: 300, cache_read_input_tokens: 5000, output_tokens: 1 },
    delta: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 42 },
  })
export const TRUE_ANTHROPIC = {
  input_tokens: 1200,
  cache_creation_input_tokens: 300,
  cache_read_input_tokens: 5000,
  output_tokens: 42,
}
export const TRUE_ANTHROPIC_RECORD = { input: 1200, cacheRead: 5000, cacheWrite: 300, output: 42, reasoning: 0 }

/** Portkey-style: prompt_tokens without the cache, total with it, cache only in cache_read_input_tokens. */
export const TRANSLATED_CHAT = {
  prompt_tokens: 200,
  completion_tokens: 50,
  total_tokens: 5250,
  cache_read_input_tokens: 5000,
}
export const TRUE_CHAT = {
  prompt_tokens: 5200,
  completion_tokens: 50,
  total_tokens: 5250,
  prompt_tokens_details: { cached_tokens: 5000 },
}
export const TRUE_CHAT_RECORD = { input: 200, cacheRead: 5000, cacheWrite: 0, output: 50, reasoning: 0 }

/** Without output_tokens_details (strict clients need reasoning_tokens present). */
export const BARE_RESPONSES = {
  input_tokens: 1000,
  input_tokens_details: { cached_tokens: 800 },
  output_tokens: 120,
  total_tokens: 1120,
}
export const TRUE_RESPONSES = { ...BARE_RESPONSES, output_tokens_details: { reasoning_tokens: 0 } }
export const TRUE_RESPONSES_RECORD = { input: 200, cacheRead: 800, cacheWrite: 0, output: 120, reasoning: 0 }
