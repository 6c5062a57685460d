import { describe, expect, it } from 'vitest'
import type { Exchange, Port } from './exchange.js'
import { createMeter } from './meter.js'
import type { UsageRecord } from './record.js'
import type { UsagewireOptions } from './options.js'

/**
 * The truth sources at the Exchange: the upstream tap's numbers in the client-facing stream, the
 * message_start policies, ensureStreamUsage. Transports are tested in node/tap.test.ts.
 */

const SSE = (name: string) => (name === 'content-type' ? 'text/event-stream' : undefined)
const ev = (name: string, data: object) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`
const start = (usage: object) =>
  ev('message_start', { type: 'message_start', message: { id: 'msg_1', model: 'claude-x', usage } })
const text = (t: string) =>
  ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } })
const delta = (usage: object) =>
  ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage })
const stop = ev('message_stop', { type: 'message_stop' })

/** The provider's own stream as the tap sees it: OpenAI Chat with its usage chunk. */
const chat = (data: object) => `data: ${JSON.stringify(data)}\n\n`
const providerChat = [
  chat({ object: 'chat.completion.chunk', model: 'gpt-x', choices: [{ index: 0, delta: { content: 'Hi' } }] }),
  chat({ object: 'chat.completion.chunk', model: 'gpt-x', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
  chat({
    object: 'chat.completion.chunk',
    model: 'gpt-x',
    choices: [],
    usage: { prompt_tokens: 1234, completion_tokens: 56, prompt_tokens_details: { cached_tokens: 1024 } },
  }),
  'data: [DONE]\n\n',
]

function setup(options: UsagewireOptions = {}) {
  const records: UsageRecord[] = []
  const meter = createMeter({ ...options, onUsage: (r) => records.push(r) })
  return { meter, records }
}

/** The client-facing response, as a carrier drives it: what left, in order. */
function client(exchange: Exchange) {
  const out: string[] = []
  let ended = false
  const port: Port = {
    write: (chunks) => out.push(...chunks.map((c) => Buffer.from(c).toString())),
    end: () => (ended = true),
  }
  exchange.respond({ status: 200, headers: SSE }, { decoders: [] })
  exchange.connect(port)
  return {
    push: (s: string) => out.push(...exchange.push(Buffer.from(s)).map((c) => Buffer.from(c).toString())),
    end: () => {
      const { chunks, deferred } = exchange.end(port)
      out.push(...chunks.map((c) => Buffer.from(c).toString()))
      if (!deferred) ended = true
    },
    text: () => out.join(''),
    get ended() {
      return ended
    },
  }
}

const events = (body: string) =>
  body
    .split('\n\n')
    .filter((e) => e.includes('data: {'))
    .map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)) as Record<string, any>)

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('the upstream tap at the Exchange', () => {
  it('writes the provider numbers into the translated final event, which waits for them', () => {
    const { meter, records } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const tap = exchange.openTap('/v1/chat/completions', 10_000)!
    expect(tap).toBeDefined()
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 0 }) + text('Hi'))
    // The translator ends before the provider's usage chunk was read: its final event waits.
    res.push(delta({ output_tokens: 2 }) + stop)
    expect(res.text()).not.toContain('message_delta')
    res.end()
    expect(res.ended).toBe(false)
    tap.head(200, SSE, [])
    for (const piece of providerChat) tap.push(Buffer.from(piece))
    expect(res.ended).toBe(true)
    const last = events(res.text()).find((e) => e.type === 'message_delta')!
    expect(last.usage).toEqual({ input_tokens: 210, cache_read_input_tokens: 1024, output_tokens: 56 })
    expect(res.text().endsWith(stop)).toBe(true)
    exchange.finish({ kind: 'end' })
    expect(records[0]!.usage).toMatchObject({ input: 210, cacheRead: 1024, output: 56 })
    expect(records[0]!.sources.input).toMatch(/^tap:/)
    expect(records[0]!.sources.output).toMatch(/^tap:/)
  })

  it('ignores calls that are not to an LLM endpoint', () => {
    const { meter } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    expect(exchange.openTap('/oauth/token')).toBeUndefined()
  })

  it('lets the final event go after maxWaitMs when the provider never reports', async () => {
    const { meter, records } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    exchange.openTap('/v1/chat/completions', 30)
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 0 }) + text('Hi') + delta({ output_tokens: 2 }) + stop)
    res.end()
    expect(res.ended).toBe(false)
    await wait(60)
    expect(res.ended).toBe(true)
    expect(events(res.text()).map((e) => e.type)).toEqual([
      'message_start',
      'content_block_delta',
      'message_delta',
      'message_stop',
    ])
    exchange.finish({ kind: 'end' })
    expect(records[0]!.usage.output).toBe(2)
    expect(records[0]!.sources.output).toBe('message_delta.usage.output_tokens')
  })

  it('releases the wait at once when the provider call fails', () => {
    const { meter } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const tap = exchange.openTap('/v1/chat/completions', 10_000)!
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 0 }) + delta({ output_tokens: 2 }) + stop)
    res.end()
    expect(res.ended).toBe(false)
    tap.fail()
    expect(res.ended).toBe(true)
  })
})

describe("messageStart: 'hold'", () => {
  it('holds message_start until the tap knows the prompt, then sends it with the true counts', () => {
    const { meter, records } = setup({ messageStart: 'hold' })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const tap = exchange.openTap('/v1/chat/completions', 10_000)!
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 0 }) + text('Hel') + text('lo'))
    expect(res.text()).toBe('')
    tap.head(200, SSE, [])
    for (const piece of providerChat) tap.push(Buffer.from(piece))
    const sent = events(res.text())
    expect(sent[0]!.message.usage).toEqual({ input_tokens: 210, cache_read_input_tokens: 1024, output_tokens: 56 })
    expect(sent.slice(1).map((e) => e.delta.text)).toEqual(['Hel', 'lo'])
    res.push(delta({ output_tokens: 2 }) + stop)
    res.end()
    expect(res.ended).toBe(true)
    expect(events(res.text()).at(-2)!.usage).toEqual({
      input_tokens: 210,
      cache_read_input_tokens: 1024,
      output_tokens: 56,
    })
    exchange.finish({ kind: 'end' })
    expect(records[0]!.corrections.some((c) => c.where === 'message_start' && c.field === 'usage.input_tokens')).toBe(
      true,
    )
  })

  it('without a tap, holds message_start until the stream states its totals at the end', () => {
    const { meter } = setup({ messageStart: 'hold' })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 1 }))
    res.push(text('Hi'))
    expect(res.text()).toBe('')
    res.push(
      delta({ input_tokens: 1234, cache_read_input_tokens: 1024, cache_creation_input_tokens: 200, output_tokens: 56 }),
    )
    res.push(stop)
    res.end()
    const sent = events(res.text())
    expect(sent.map((e) => e.type)).toEqual(['message_start', 'content_block_delta', 'message_delta', 'message_stop'])
    expect(sent[0]!.message.usage).toEqual({
      input_tokens: 1234,
      cache_read_input_tokens: 1024,
      cache_creation_input_tokens: 200,
      output_tokens: 56,
    })
    expect(res.ended).toBe(true)
  })

  it('waits no longer than maxHoldMs, then sends what is known', async () => {
    const { meter } = setup({ messageStart: 'hold', maxHoldMs: 20 })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 1 }) + text('Hi'))
    expect(res.text()).toBe('')
    await wait(50)
    expect(events(res.text()).map((e) => e.type)).toEqual(['message_start', 'content_block_delta'])
    res.push(delta({ input_tokens: 5, output_tokens: 6 }) + stop)
    res.end()
    expect(res.ended).toBe(true)
    expect(events(res.text()).at(-2)!.usage).toEqual({ input_tokens: 5, output_tokens: 6 })
  })

  it('does not hold when the tap already knows the prompt', () => {
    const { meter } = setup({ messageStart: 'hold' })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const tap = exchange.openTap('/v1/chat/completions', 10_000)!
    tap.head(200, SSE, [])
    for (const piece of providerChat) tap.push(Buffer.from(piece))
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 0 }))
    expect(events(res.text())[0]!.message.usage.input_tokens).toBe(210)
  })

  it('chooses per request when given a function', () => {
    const { meter } = setup({ messageStart: (request) => (request.url.includes('beta') ? 'hold' : 'patch-final') })
    const held = client(meter.begin({ method: 'POST', url: '/v1/messages?beta=true' })!)
    const plain = client(meter.begin({ method: 'POST', url: '/v1/messages' })!)
    held.push(start({ input_tokens: 0, output_tokens: 1 }))
    plain.push(start({ input_tokens: 0, output_tokens: 1 }))
    expect(held.text()).toBe('')
    expect(plain.text()).toContain('message_start')
  })
})

describe("the provider's cache-write TTL split", () => {
  const providerStart = start({
    input_tokens: 1234,
    cache_read_input_tokens: 3000,
    cache_creation_input_tokens: 200,
    cache_creation: { ephemeral_5m_input_tokens: 150, ephemeral_1h_input_tokens: 50 },
    output_tokens: 1,
  })
  const providerRest =
    text('Hi') +
    delta({ input_tokens: 1234, cache_read_input_tokens: 3000, cache_creation_input_tokens: 200, output_tokens: 56 }) +
    stop
  const ANTHROPIC_JSON = (name: string) => (name === 'content-type' ? 'application/json' : undefined)

  it('reaches a held message_start, and never a message_delta (docs/dialects/anthropic-messages.md#ttl-split)', () => {
    const { meter, records } = setup({ messageStart: 'hold' })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const tap = exchange.openTap('/v1/messages', 10_000)!
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 0 }) + text('Hi'))
    tap.head(200, SSE, [])
    tap.push(Buffer.from(providerStart + providerRest))
    res.push(delta({ output_tokens: 1 }) + stop)
    res.end()
    const sent = events(res.text())
    expect(sent[0]!.message.usage).toEqual({
      input_tokens: 1234,
      output_tokens: 56,
      cache_creation_input_tokens: 200,
      cache_read_input_tokens: 3000,
      cache_creation: { ephemeral_5m_input_tokens: 150, ephemeral_1h_input_tokens: 50 },
    })
    const final = sent.find((e) => e.type === 'message_delta')!
    expect(final.usage.cache_creation).toBeUndefined()
    expect(final.usage.cache_creation_input_tokens).toBe(200)
    exchange.finish({ kind: 'end' })
    expect(records[0]!.usage).toMatchObject({ cacheWrite: 200, cacheWrite5m: 150, cacheWrite1h: 50 })
    expect(records[0]!.corrections).toContainEqual({
      where: 'message_start',
      field: 'usage.cache_creation.ephemeral_1h_input_tokens',
      from: null,
      to: 50,
    })
  })

  it('reaches a whole JSON body that lost it', () => {
    const { meter } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const tap = exchange.openTap('/v1/messages', 10_000)!
    tap.head(200, ANTHROPIC_JSON, [])
    tap.push(
      Buffer.from(
        JSON.stringify({
          type: 'message',
          usage: {
            input_tokens: 1234,
            cache_creation_input_tokens: 200,
            cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 200 },
            output_tokens: 56,
          },
        }),
      ),
    )
    tap.end()
    const out: string[] = []
    const port: Port = { write: (chunks) => out.push(...chunks.map((c) => Buffer.from(c).toString())), end: () => {} }
    exchange.respond({ status: 200, headers: ANTHROPIC_JSON }, { decoders: [] })
    exchange.connect(port)
    const body = { type: 'message', content: [], usage: { input_tokens: 1434, output_tokens: 56 } }
    out.push(...exchange.push(Buffer.from(JSON.stringify(body))).map((c) => Buffer.from(c).toString()))
    out.push(...exchange.end(port).chunks.map((c) => Buffer.from(c).toString()))
    expect(JSON.parse(out.join('')).usage).toEqual({
      input_tokens: 1234,
      output_tokens: 56,
      cache_creation_input_tokens: 200,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 200 },
    })
  })

  it('is not invented where only the cache write is known', () => {
    const { meter } = setup({ messageStart: 'hold' })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 0 }) + text('Hi'))
    res.push(delta({ input_tokens: 10, cache_creation_input_tokens: 200, output_tokens: 3 }) + stop)
    res.end()
    expect(events(res.text())[0]!.message.usage.cache_creation).toBeUndefined()
  })
})

describe("messageStart: 'estimate'", () => {
  it('fills a zero message_start from the estimate at once, and the final event with the exact counts', () => {
    const { meter, records } = setup({ messageStart: 'estimate', estimateInput: () => 1500 })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages', body: { messages: [] } })!
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 1 }) + text('Hi'))
    expect(events(res.text())[0]!.message.usage.input_tokens).toBe(1500)
    res.push(delta({ input_tokens: 1234, output_tokens: 56 }) + stop)
    res.end()
    expect(events(res.text()).at(-2)!.usage).toEqual({ input_tokens: 1234, output_tokens: 56 })
    exchange.finish({ kind: 'end' })
    expect(records[0]!.usage.input).toBe(1234)
  })

  it('says estimate in the record when nothing truer came', () => {
    const { meter, records } = setup({ messageStart: 'estimate', estimateInput: () => 1500 })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages', body: { messages: [] } })!
    const res = client(exchange)
    res.push(start({ input_tokens: 0, output_tokens: 1 }) + delta({ output_tokens: 4 }) + stop)
    res.end()
    exchange.finish({ kind: 'end' })
    expect(records[0]!.usage.input).toBe(1500)
    expect(records[0]!.sources.input).toBe('estimate:request')
  })

  it('leaves a message_start that states the prompt alone', () => {
    const { meter } = setup({ messageStart: 'estimate', estimateInput: () => 1500 })
    const res = client(meter.begin({ method: 'POST', url: '/v1/messages', body: {} })!)
    res.push(start({ input_tokens: 3, cache_read_input_tokens: 900, output_tokens: 1 }))
    expect(events(res.text())[0]!.message.usage).toEqual({
      input_tokens: 3,
      cache_read_input_tokens: 900,
      output_tokens: 1,
    })
  })

  it('needs an estimator', () => {
    expect(() => createMeter({ messageStart: 'estimate' })).toThrow(/estimateInput/)
    expect(() => createMeter({ messageStart: 'later' as never })).toThrow(/messageStart/)
  })
})

describe('ensureStreamUsage', () => {
  const chunks = providerChat.join('')

  it('asks the upstream for usage and leaves the usage chunk out for a client that did not ask', () => {
    const { meter, records } = setup({ ensureStreamUsage: true })
    const body: Record<string, unknown> = { model: 'gpt-x', stream: true, messages: [] }
    const exchange = meter.begin({ method: 'POST', url: '/v1/chat/completions', body })!
    expect(body.stream_options).toEqual({ include_usage: true })
    const res = client(exchange)
    res.push(chunks)
    res.end()
    expect(res.text()).toBe(providerChat[0]! + providerChat[1]! + providerChat[3]!)
    exchange.finish({ kind: 'end' })
    expect(records[0]!.usage).toMatchObject({ input: 210, cacheRead: 1024, output: 56 })
    expect(records[0]!.final).toBe(true)
  })

  it('keeps the usage chunk, once, for a client that asked for it', () => {
    const { meter } = setup({ ensureStreamUsage: true })
    const body = { model: 'gpt-x', stream: true, stream_options: { include_usage: true }, messages: [] }
    const exchange = meter.begin({ method: 'POST', url: '/v1/chat/completions', body })!
    const res = client(exchange)
    res.push(chunks)
    res.end()
    // Completed as any usage block is (its missing total added), and not sent twice.
    expect(res.text().split('"choices":[]').length).toBe(2)
    expect(res.text()).toContain('"total_tokens":1290')
  })

  it('changes nothing for a request that does not stream, or when it is off', () => {
    const { meter } = setup({ ensureStreamUsage: true })
    const plain: Record<string, unknown> = { model: 'gpt-x', messages: [] }
    meter.begin({ method: 'POST', url: '/v1/chat/completions', body: plain })
    expect(plain.stream_options).toBeUndefined()
    const off: Record<string, unknown> = { model: 'gpt-x', stream: true, messages: [] }
    setup().meter.begin({ method: 'POST', url: '/v1/chat/completions', body: off })
    expect(off.stream_options).toBeUndefined()
  })

  it('keeps the stream options the client set', () => {
    const { meter } = setup({ ensureStreamUsage: true })
    const body: Record<string, unknown> = { stream: true, stream_options: { continuous_usage_stats: true } }
    meter.begin({ method: 'POST', url: '/v1/chat/completions', body })
    expect(body.stream_options).toEqual({ continuous_usage_stats: true, include_usage: true })
  })
})
