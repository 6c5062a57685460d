/**
 * The official openai SDK (Chat Completions and Responses, streaming) through Express + usagewire +
 * http-proxy-middleware from a local mock upstream that plays a translating gateway.
 */
import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import type { UsagewireOptions } from '@usagewire/express'
import {
  CHAT_MODEL,
  chatStream,
  RESPONSES_MODEL,
  responsesStream,
  sseData,
  SSE_HEADERS,
  startGateway,
  useRig,
  openaiClient,
} from './helpers.js'

const rig = useRig()
const client = openaiClient

describe('OpenAI Chat Completions stream through the Express gateway', () => {
  it("a translator's inconsistent usage chunk (cache only in cache_read_input_tokens, prompt_tokens without it) reaches the SDK self-consistent (docs/peer-bugs.md rows 5, 21)", async () => {
    // What Portkey-style Anthropic→OpenAI translation emits: prompt_tokens excludes the cache, total includes it.
    const upstreamUsage = {
      prompt_tokens: 200,
      completion_tokens: 50,
      total_tokens: 5250,
      cache_read_input_tokens: 5000,
    }
    rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: chatStream(upstreamUsage) })

    const stream = await client(rig.gateway.url).chat.completions.create({
      model: CHAT_MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)

    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello ✓')
    const last = chunks.at(-1)!
    expect(last.choices).toEqual([])
    const usage = last.usage!
    expect(usage.prompt_tokens).toBe(200 + 5000) // OpenAI semantics: prompt includes cache reads
    expect(usage.prompt_tokens_details?.cached_tokens).toBe(5000)
    expect(usage.completion_tokens).toBe(50)
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens)
    // The translator's own extension field is kept and agrees.
    expect((usage as unknown as Record<string, unknown>).cache_read_input_tokens).toBe(5000)
    // Chunks without usage are untouched: every one but the last still says usage null.
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true)

    const sent = JSON.parse(rig.upstream.requests[0]!.body.toString('utf8'))
    expect(sent.stream_options).toEqual({ include_usage: true })
    expect(rig.upstream.requests[0]!.url).toBe('/v1/chat/completions')

    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      status: 'complete',
      dialect: 'openai-chat',
      model: CHAT_MODEL,
      final: true,
      streaming: true,
    })
    expect(record.usage).toEqual({ input: 200, cacheRead: 5000, cacheWrite: 0, output: 50, reasoning: 0 })
    expect(record.sources.cacheRead).toBe('chunk.usage.cache_read_input_tokens')
    expect(record.corrections).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ field: 'usage.prompt_tokens', from: 200, to: 5200 }),
        expect.objectContaining({ field: 'usage.prompt_tokens_details.cached_tokens', from: null, to: 5000 }),
      ]),
    )
  })
})

describe('OpenAI Responses stream through the Express gateway', () => {
  it('response.completed with input_tokens_details.cached_tokens: the record splits the cache out, and the client sees reasoning_tokens present (docs/peer-bugs.md rows 6, 36)', async () => {
    // The upstream omits output_tokens_details: strict clients (Codex) abort without reasoning_tokens.
    const upstreamUsage = {
      input_tokens: 1000,
      input_tokens_details: { cached_tokens: 800 },
      output_tokens: 120,
      total_tokens: 1120,
    }
    rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: responsesStream(upstreamUsage) })

    const stream = await client(rig.gateway.url).responses.create({ model: RESPONSES_MODEL, input: 'hi', stream: true })
    const events = []
    for await (const event of stream) events.push(event)

    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i)) // sequence numbers untouched
    const completed = events.at(-1)!
    if (completed.type !== 'response.completed') throw new Error(`last event is ${completed.type}`)
    const usage = completed.response.usage!
    expect(usage.input_tokens).toBe(1000) // Responses input includes the cache
    expect(usage.input_tokens_details.cached_tokens).toBe(800)
    expect(usage.output_tokens).toBe(120)
    expect(usage.total_tokens).toBe(1120)
    expect(usage.output_tokens_details).toBeDefined()
    expect(usage.output_tokens_details.reasoning_tokens).toBe(0)
    // The event that was rewritten still parses as the SDK type, with its content intact.
    const text = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('')
    expect(text).toBe('Hello ✓')
    expect(completed.response.output).toEqual([
      expect.objectContaining({ type: 'message', content: [expect.objectContaining({ text: 'Hello ✓' })] }),
    ])
    expect(rig.upstream.requests[0]!.url).toBe('/v1/responses')

    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      status: 'complete',
      dialect: 'openai-responses',
      model: RESPONSES_MODEL,
      final: true,
    })
    expect(record.usage.cacheRead).toBe(800)
    expect(record.usage.input).toBe(1000 - 800)
    expect(record.usage.output).toBe(120)
    expect(record.sources.cacheRead).toBe('response.completed.response.usage.input_tokens_details.cached_tokens')
  })
})

describe('a gateway path that does not name the provider', () => {
  // A compatible server whose chunks carry no `object` member: nothing in the body says "chat completion",
  // so only the route can (docs/dialects/openai-chat.md#routes-that-hide-the-provider). Its usage names the
  // cache DeepSeek's way only.
  const model = 'deepseek-chat'
  const chunk = (rest: Record<string, unknown>) => sseData({ id: 'c-1', created: 1766105000, model, ...rest })
  const upstreamChunks = [
    chunk({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], usage: null }),
    chunk({ choices: [{ index: 0, delta: { content: 'Hi ✓' }, finish_reason: null }], usage: null }),
    chunk({
      choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
      usage: {
        prompt_tokens: 339,
        completion_tokens: 25,
        total_tokens: 364,
        prompt_cache_hit_tokens: 320,
        prompt_cache_miss_tokens: 19,
      },
    }),
    sseData('[DONE]'),
  ]

  async function callThrough(routes: UsagewireOptions['routes']) {
    const gateway = await startGateway(rig.upstream.url, { routes })
    try {
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: upstreamChunks })
      const sdk = new OpenAI({ apiKey: 'x', baseURL: gateway.url, maxRetries: 0 })
      const stream = await sdk.chat.completions.create(
        { model, messages: [{ role: 'user', content: 'hi' }], stream: true },
        { path: '/ai/fast' },
      )
      const chunks = []
      for await (const c of stream) chunks.push(c)
      return { chunks, record: await gateway.record() }
    } finally {
      await gateway.close()
    }
  }

  it("routes: [{ path, dialect: 'openai-chat' }] meters and completes the stream behind it", async () => {
    const { chunks, record } = await callThrough([{ path: '/ai/fast', dialect: 'openai-chat' }])
    expect(rig.upstream.requests[0]!.url).toBe('/ai/fast')
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hi ✓')
    const usage = chunks.at(-1)!.usage!
    expect(usage.prompt_tokens).toBe(339)
    expect(usage.prompt_tokens_details?.cached_tokens).toBe(320) // written to agree with prompt_cache_hit_tokens
    expect(record).toMatchObject({
      route: '/ai/fast',
      dialect: 'openai-chat',
      status: 'complete',
      final: true,
      model,
      usage: { input: 19, cacheRead: 320, cacheWrite: 0, output: 25, reasoning: 0 },
    })
  })

  it('without the dialect in the route, the same stream passes through untouched and says why', async () => {
    const { chunks, record } = await callThrough([{ path: '/ai/fast' }])
    expect(chunks.at(-1)!.usage!.prompt_tokens_details).toBeUndefined()
    expect(record).toMatchObject({ route: '/ai/fast', status: 'passthrough' })
    expect(record.passthrough?.reason).toMatch(/unknown dialect/)
  })
})
