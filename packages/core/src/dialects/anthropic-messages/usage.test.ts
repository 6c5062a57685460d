import { describe, expect, it } from 'vitest'
import { fromAnthropicUsage, toAnthropicUsage } from './usage.js'

describe('Anthropic usage ⇄ canonical buckets', () => {
  it('input_tokens excludes the cache, so the buckets map one to one (docs/dialects/anthropic-messages.md#input-excludes-the-cache)', () => {
    const { usage } = fromAnthropicUsage(
      {
        input_tokens: 1,
        cache_creation_input_tokens: 287,
        cache_read_input_tokens: 30433,
        cache_creation: { ephemeral_5m_input_tokens: 200, ephemeral_1h_input_tokens: 87 },
        output_tokens: 30,
        output_tokens_details: { thinking_tokens: 12 },
      },
      'body.usage',
    )
    expect(usage).toEqual({
      input: 1,
      cacheWrite: 287,
      cacheRead: 30433,
      cacheWrite5m: 200,
      cacheWrite1h: 87,
      output: 30,
      reasoning: 12,
    })
  })

  it('null means not reported, and stays unknown', () => {
    const { usage } = fromAnthropicUsage({ input_tokens: null, cache_read_input_tokens: null, output_tokens: 5 }, 'x')
    expect(usage).toEqual({ output: 5 })
  })

  it('writes only known values, keeping the other keys and their order', () => {
    const out = toAnthropicUsage(
      { output_tokens: 57, server_tool_use: { web_search_requests: 1 } },
      { input: 12, cacheRead: 100, output: 57 },
    )
    expect(out).toEqual({
      output_tokens: 57,
      server_tool_use: { web_search_requests: 1 },
      input_tokens: 12,
      cache_read_input_tokens: 100,
    })
    expect('cache_creation_input_tokens' in out).toBe(false)
  })
})
