import { describe, expect, it } from 'vitest'
import { fromAnthropicUsage, ServerToolCounts, toAnthropicUsage, writeAnthropicUsage } from './usage.js'

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

  it('a block that already says what is known is given back as it is; one that does not, as a copy', () => {
    const start = {
      input_tokens: 12,
      cache_creation_input_tokens: 300,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 300, ephemeral_1h_input_tokens: 0 },
      output_tokens: 1,
    }
    const { usage } = fromAnthropicUsage(start, 'message_start.message.usage')
    expect(writeAnthropicUsage(start, usage, true)).toBe(start)
    // The public writer always copies, even when nothing changes.
    const copy = toAnthropicUsage(start, usage, true)
    expect(copy).not.toBe(start)
    expect(copy).toEqual(start)
    // A count that differs, and a split written where the block had none: a copy, the block untouched.
    const delta = { input_tokens: 0, cache_creation_input_tokens: 300, output_tokens: 40 }
    const written = writeAnthropicUsage(delta, { ...usage, output: 40 }, true)
    expect(written).not.toBe(delta)
    expect(Object.keys(written)).toEqual([
      'input_tokens',
      'cache_creation_input_tokens',
      'output_tokens',
      'cache_creation',
      'cache_read_input_tokens',
    ])
    expect(written).toMatchObject({ input_tokens: 12, cache_read_input_tokens: 0, output_tokens: 40 })
    expect(delta).toEqual({ input_tokens: 0, cache_creation_input_tokens: 300, output_tokens: 40 })
  })

  it('a zeroed server-tool count known to be more is written back in a copy', () => {
    const tools = new ServerToolCounts()
    tools.observe({ server_tool_use: { web_search_requests: 2 } })
    const native = { output_tokens: 5, server_tool_use: { web_search_requests: 0 } }
    const out = tools.restore(writeAnthropicUsage(native, { output: 5 }))
    expect(out).toEqual({ output_tokens: 5, server_tool_use: { web_search_requests: 2 } })
    expect(native.server_tool_use.web_search_requests).toBe(0)
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

  it('thinking_tokens is written only into an output_tokens_details the block has (docs/dialects/anthropic-messages.md#thinking-and-server-tools)', () => {
    const usage = { output: 120, reasoning: 40 }
    expect(toAnthropicUsage({ output_tokens: 120, output_tokens_details: { thinking_tokens: 0 } }, usage)).toEqual({
      output_tokens: 120,
      output_tokens_details: { thinking_tokens: 40 },
    })
    expect(toAnthropicUsage({ output_tokens: 120 }, usage)).toEqual({ output_tokens: 120 })
  })

  it('server_tool_use counts: a 0 after a known count is written back, a real 0 stays', () => {
    const counts = new ServerToolCounts()
    counts.observe({ server_tool_use: { web_search_requests: 1, web_fetch_requests: 0 } })
    counts.observe({ server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 } })
    const out = counts.restore({ output_tokens: 9, server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 } })
    expect(out).toEqual({ output_tokens: 9, server_tool_use: { web_search_requests: 1, web_fetch_requests: 0 } })
    counts.observe({ server_tool_use: { web_search_requests: 3 } })
    expect(counts.restore({ server_tool_use: { web_search_requests: 0 } })).toEqual({
      server_tool_use: { web_search_requests: 3 },
    })
  })
})
