/**
 * The price table: list prices in USD per million tokens, one entry per model id, and the default table
 * usagewire ships. Each price's source is in docs/cost.md#the-default-table; how a record's model finds
 * its entry is in docs/cost.md#model-matching.
 */

/** USD per million tokens for each canonical bucket. A rate left out is "not known", never 0. */
export interface PriceRates {
  /** Prompt tokens at the base rate (`usage.input`). */
  input: number
  /** Generated tokens, reasoning included (`usage.output`). */
  output: number
  /** Prompt tokens served from a cache (`usage.cacheRead`). */
  cacheRead?: number
  /** Cache writes with a 5-minute TTL (Anthropic's default TTL). */
  cacheWrite5m?: number
  /** Cache writes with a 1-hour TTL. */
  cacheWrite1h?: number
  /** Cache writes that carry no TTL (OpenAI's `cache_write_tokens`). */
  cacheWrite?: number
}

/** Rates that replace the base ones for a request whose prompt (input + cacheRead + cacheWrite) is larger than `above`. */
export interface PriceTier extends PriceRates {
  above: number
}

/** One model's prices. */
export interface PriceEntry extends PriceRates {
  /** The day these prices were taken from their source (YYYY-MM-DD); it goes into `record.cost.asOf`. */
  asOf: string
  /** Long-prompt tiers: the one with the largest `above` below the prompt size prices the whole request. */
  tiers?: PriceTier[]
}

/** Model id → prices. Keys are matched case-insensitively (docs/cost.md#model-matching). */
export type PriceTable = Record<string, PriceEntry>

/** When the default table was compiled. */
export const PRICES_AS_OF = '2026-11-30'

const at = (rates: PriceRates, tiers?: PriceTier[]): PriceEntry =>
  tiers ? { ...rates, asOf: PRICES_AS_OF, tiers } : { ...rates, asOf: PRICES_AS_OF }

// Anthropic: platform.claude.com/docs/en/about-claude/pricing. Cache writes are 1.25x (5m) and 2x (1h) the
// base input rate, cache reads 0.1x.
const claude = (input: number, output: number): PriceRates => ({
  input,
  output,
  cacheRead: input / 10,
  cacheWrite5m: input * 1.25,
  cacheWrite1h: input * 2,
})
// Opus 3, 4 and 4.1 share one price.
const OPUS_LEGACY = at(claude(15, 75))
const OPUS_4_5 = at(claude(5, 25))
// Sonnet 4 and 4.5 with the 1M context window: a prompt over 200k tokens is billed at $6 / $22.50 with
// the same cache multipliers, on every token of the request.
const SONNET_4 = at(claude(3, 15), [{ above: 200_000, ...claude(6, 22.5) }])
const SONNET_3_7 = at(claude(3, 15))
// Sonnet 5 and 5.5: $2 / $10 with the same cache multipliers, and no long-context premium on the 1M window.
const SONNET_5 = at(claude(2, 10))
const HAIKU_4_5 = at(claude(1, 5))
const HAIKU_3_5 = at(claude(0.8, 4))
const HAIKU_3 = at({ input: 0.25, output: 1.25, cacheRead: 0.03, cacheWrite5m: 0.3, cacheWrite1h: 0.5 })

// OpenAI: openai.com/api/pricing, standard tier. Cached input is the cacheRead rate.
const openai = (input: number, cacheRead: number, output: number): PriceEntry => at({ input, output, cacheRead })

// Google: ai.google.dev/gemini-api/docs/pricing, paid tier, text/image/video input. Output includes thinking.
const GEMINI_2_5_PRO = at({ input: 1.25, output: 10, cacheRead: 0.125 }, [
  { above: 200_000, input: 2.5, output: 15, cacheRead: 0.25 },
])

export const DEFAULT_PRICES: PriceTable = {
  'claude-sonnet-5-5': SONNET_5,
  'claude-sonnet-5': SONNET_5,
  'claude-opus-4-5': OPUS_4_5,
  'claude-opus-4-1': OPUS_LEGACY,
  'claude-opus-4': OPUS_LEGACY,
  'claude-opus-4-0': OPUS_LEGACY,
  'claude-sonnet-4-5': SONNET_4,
  'claude-sonnet-4': SONNET_4,
  'claude-sonnet-4-0': SONNET_4,
  'claude-haiku-4-5': HAIKU_4_5,
  'claude-3-7-sonnet': SONNET_3_7,
  'claude-3-5-haiku': HAIKU_3_5,
  'claude-3-opus': OPUS_LEGACY,
  'claude-3-haiku': HAIKU_3,

  'gpt-4o': openai(2.5, 1.25, 10),
  // The first gpt-4o snapshot kept its launch price and has no cached-input discount.
  'gpt-4o-2024-05-13': at({ input: 5, output: 15 }),
  'gpt-4o-mini': openai(0.15, 0.075, 0.6),
  'gpt-4.1': openai(2, 0.5, 8),
  'gpt-4.1-mini': openai(0.4, 0.1, 1.6),
  'gpt-4.1-nano': openai(0.1, 0.025, 0.4),
  o3: openai(2, 0.5, 8),
  'o4-mini': openai(1.1, 0.275, 4.4),
  'gpt-5': openai(1.25, 0.125, 10),
  'gpt-5-mini': openai(0.25, 0.025, 2),
  'gpt-5-nano': openai(0.05, 0.005, 0.4),
  'gpt-5.1': openai(1.25, 0.125, 10),
  // No cached-input rate: a cache read on gpt-5-pro leaves the request unpriced rather than mispriced.
  'gpt-5-pro': at({ input: 15, output: 120 }),

  'gemini-2.5-pro': GEMINI_2_5_PRO,
  'gemini-2.5-flash': at({ input: 0.3, output: 2.5, cacheRead: 0.03 }),
  'gemini-2.5-flash-lite': at({ input: 0.1, output: 0.4, cacheRead: 0.01 }),
}
