import { describe, expect, it } from 'vitest'
import { CHAT_NAMES, fromOpenAIUsage, RESPONSES_NAMES, toOpenAIUsage } from './usage.js'

const read = (native: Record<string, unknown>) => fromOpenAIUsage(native, CHAT_NAMES, 'chunk.usage')

describe('OpenAI-shaped usage ⇄ canonical buckets', () => {
  it('prompt_tokens includes cached tokens (OpenAI prompt-caching guide example)', () => {
    const { usage } = read({
      prompt_tokens: 2006,
      completion_tokens: 300,
      total_tokens: 2306,
      prompt_tokens_details: { cached_tokens: 1920 },
    })
    expect(usage).toEqual({ input: 86, cacheRead: 1920, output: 300 })
  })

  it('reads cache from Anthropic-named extension fields when the details say nothing (docs/peer-bugs.md row 5)', () => {
    const { usage, sources } = read({
      prompt_tokens: 1000,
      completion_tokens: 10,
      total_tokens: 1010,
      cache_read_input_tokens: 800,
    })
    expect(usage).toMatchObject({ input: 200, cacheRead: 800 })
    expect(sources.cacheRead).toBe('chunk.usage.cache_read_input_tokens')
  })

  it('a non-zero twin beats a 0 in cached_tokens (translator wrote the real count in one place only)', () => {
    const { usage } = read({
      prompt_tokens: 1000,
      completion_tokens: 10,
      prompt_tokens_details: { cached_tokens: 0 },
      cache_read_input_tokens: 800,
    })
    expect(usage.cacheRead).toBe(800)
  })

  it('prompt that excludes the cache while total includes it: resolved by the total (docs/peer-bugs.md row 21)', () => {
    const { usage, promptIncludesCache } = read({
      prompt_tokens: 12,
      completion_tokens: 30,
      total_tokens: 12 + 30 + 61711 + 407,
      cache_read_input_tokens: 61711,
      cache_creation_input_tokens: 407,
    })
    expect(promptIncludesCache).toBe(false)
    expect(usage).toMatchObject({ input: 12, cacheRead: 61711, cacheWrite: 407, output: 30 })
  })

  it('cached above prompt means the prompt left the cache out (Helicone guard, docs/peer-bugs.md row 58)', () => {
    const { usage } = read({ prompt_tokens: 5, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 900 } })
    expect(usage).toMatchObject({ input: 5, cacheRead: 900 })
  })

  it('reasoning is part of completion, never added on top (docs/peer-bugs.md row 58)', () => {
    const { usage } = read({
      prompt_tokens: 10,
      completion_tokens: 100,
      total_tokens: 110,
      completion_tokens_details: { reasoning_tokens: 60 },
    })
    expect(usage).toMatchObject({ output: 100, reasoning: 60 })
  })

  it('completion that leaves reasoning out is recognised by the total (xAI fixture 12 + 1 + 290 = 303)', () => {
    const { usage, completionIncludesReasoning } = read({
      prompt_tokens: 12,
      completion_tokens: 1,
      total_tokens: 303,
      completion_tokens_details: { reasoning_tokens: 290 },
    })
    expect(completionIncludesReasoning).toBe(false)
    expect(usage).toMatchObject({ input: 12, output: 291, reasoning: 290 })
  })

  it('reasoning over the whole completion is held to it: reasoning is part of the output', () => {
    const { usage } = read({
      prompt_tokens: 10,
      completion_tokens: 5,
      total_tokens: 15,
      completion_tokens_details: { reasoning_tokens: 20 },
    })
    expect(usage).toEqual({ input: 10, output: 5, reasoning: 5 })
  })

  it('a count that is not a whole number of tokens is no count', () => {
    const { usage } = read({ prompt_tokens: 10, completion_tokens: 2.5, total_tokens: 12.5 })
    expect(usage).toEqual({ input: 10 })
  })

  it('DeepSeek hit/miss fields', () => {
    const { usage } = read({
      prompt_tokens: 339,
      completion_tokens: 5,
      prompt_cache_hit_tokens: 320,
      prompt_cache_miss_tokens: 19,
    })
    expect(usage).toMatchObject({ input: 19, cacheRead: 320 })
  })

  it('writes a self-consistent block: prompt includes cache, total = prompt + completion, twins agree', () => {
    const native = {
      prompt_tokens: 12,
      completion_tokens: 30,
      total_tokens: 62160,
      cache_read_input_tokens: 61711,
      cache_creation_input_tokens: 407,
    }
    const out = toOpenAIUsage(native, read(native).usage, CHAT_NAMES)
    expect(out).toEqual({
      prompt_tokens: 62130,
      completion_tokens: 30,
      total_tokens: 62160,
      cache_read_input_tokens: 61711,
      cache_creation_input_tokens: 407,
      prompt_tokens_details: { cached_tokens: 61711, cache_write_tokens: 407 },
    })
  })

  it('a block that counts reasoning outside completion is written back in that convention (docs/dialects/openai-chat.md#xai)', () => {
    // xAI's recorded shape: its own clients (AI SDK xai provider, LangChain ChatXAI) add completion and reasoning.
    const native = {
      prompt_tokens: 12,
      completion_tokens: 1,
      total_tokens: 303,
      prompt_tokens_details: { cached_tokens: 11 },
      completion_tokens_details: { reasoning_tokens: 290 },
      cost_in_usd_ticks: 1466250,
    }
    const { usage } = read(native)
    expect(usage).toEqual({ input: 1, cacheRead: 11, output: 291, reasoning: 290 })
    expect(toOpenAIUsage(native, usage, CHAT_NAMES)).toEqual(native)
    // New values keep the convention too: completion = output − reasoning, total = prompt + output.
    expect(toOpenAIUsage(native, { input: 1, cacheRead: 11, output: 400, reasoning: 350 }, CHAT_NAMES)).toMatchObject({
      prompt_tokens: 12,
      completion_tokens: 50,
      total_tokens: 412,
      completion_tokens_details: { reasoning_tokens: 350 },
    })
  })

  it('an OpenAI-convention block stays in the OpenAI convention (reasoning inside completion)', () => {
    const native = {
      prompt_tokens: 10,
      completion_tokens: 100,
      total_tokens: 110,
      completion_tokens_details: { reasoning_tokens: 60 },
    }
    expect(toOpenAIUsage(native, { input: 10, output: 120, reasoning: 70 }, CHAT_NAMES)).toMatchObject({
      completion_tokens: 120,
      total_tokens: 130,
    })
  })

  it('DeepSeek: a block with the cache only in prompt_cache_hit_tokens gets cached_tokens that agree', () => {
    const native = {
      prompt_tokens: 339,
      completion_tokens: 5,
      total_tokens: 344,
      prompt_cache_hit_tokens: 320,
      prompt_cache_miss_tokens: 19,
    }
    const out = toOpenAIUsage(native, read(native).usage, CHAT_NAMES)
    expect(out).toEqual({ ...native, prompt_tokens_details: { cached_tokens: 320 } })
  })

  it("cache_write_tokens is a part of prompt_tokens (OpenAI, and OpenRouter's documented example 194 = … + 100 written)", () => {
    const { usage } = read({
      prompt_tokens: 194,
      completion_tokens: 2,
      total_tokens: 196,
      prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 100 },
      cost: 0.95,
    })
    expect(usage).toEqual({ input: 94, cacheRead: 0, cacheWrite: 100, output: 2 })
  })

  it('null cached_tokens (vLLM) is not reported, and is not written when nothing knows it', () => {
    const native = {
      prompt_tokens: 38,
      completion_tokens: 3,
      total_tokens: 41,
      prompt_tokens_details: { cached_tokens: null },
    }
    const { usage } = read(native)
    expect(usage).toEqual({ input: 38, output: 3 })
    expect(toOpenAIUsage(native, usage, CHAT_NAMES)).toEqual(native)
  })

  it('never invents a field whose value is not known', () => {
    const native = { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 }
    expect(toOpenAIUsage(native, read(native).usage, CHAT_NAMES)).toEqual(native)
  })

  it('Responses: the required details are present on the way out (docs/peer-bugs.md row 36)', () => {
    const native = { input_tokens: 1234, output_tokens: 20, total_tokens: 1254 }
    const { usage } = fromOpenAIUsage(native, RESPONSES_NAMES, 'body.usage')
    expect(toOpenAIUsage(native, usage, RESPONSES_NAMES, { requireDetails: true })).toEqual({
      input_tokens: 1234,
      output_tokens: 20,
      total_tokens: 1254,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens_details: { reasoning_tokens: 0 },
    })
  })

  it('Responses: a bridge that names the cache read the Anthropic way (docs/peer-bugs.md row 6)', () => {
    const { usage } = fromOpenAIUsage(
      { input_tokens: 1234, output_tokens: 20, cache_read_input_tokens: 1024 },
      RESPONSES_NAMES,
      'u',
    )
    expect(usage).toMatchObject({ input: 210, cacheRead: 1024 })
  })
})
