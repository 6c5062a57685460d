import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { inspect } from './inspect.js'
import { createProcessor } from './processor.js'

const sse = (events: Array<[string | undefined, unknown]>) =>
  events
    .map(
      ([name, data]) =>
        `${name ? `event: ${name}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`,
    )
    .join('')

const anthropicStream = sse([
  [
    'message_start',
    {
      type: 'message_start',
      message: {
        id: 'msg_1',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-5',
        content: [],
        usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
      },
    },
  ],
  ['ping', { type: 'ping' }],
  ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
  [
    'content_block_delta',
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'usage: "ok" – é 🌍' } },
  ],
  ['content_block_stop', { type: 'content_block_stop', index: 0 }],
  [
    'message_delta',
    {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn' },
      usage: { input_tokens: 1234, cache_read_input_tokens: 61711, output_tokens: 57 },
    },
  ],
  ['message_stop', { type: 'message_stop' }],
])

const chatStream = sse([
  [
    undefined,
    {
      id: 'c1',
      object: 'chat.completion.chunk',
      model: 'gpt-4o',
      choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: null }],
      usage: null,
    },
  ],
  [
    undefined,
    {
      id: 'c1',
      object: 'chat.completion.chunk',
      model: 'gpt-4o',
      choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
      usage: null,
    },
  ],
  [
    undefined,
    {
      id: 'c1',
      object: 'chat.completion.chunk',
      model: 'gpt-4o',
      choices: [],
      usage: { prompt_tokens: 200, completion_tokens: 30, total_tokens: 1030, cache_read_input_tokens: 800 },
    },
  ],
  [undefined, '[DONE]'],
])

const responsesStream = sse([
  [
    'response.created',
    {
      type: 'response.created',
      sequence_number: 0,
      response: { id: 'r1', object: 'response', model: 'gpt-5', status: 'in_progress', usage: null },
    },
  ],
  ['response.output_text.delta', { type: 'response.output_text.delta', sequence_number: 1, delta: 'Hi' }],
  [
    'response.completed',
    {
      type: 'response.completed',
      sequence_number: 2,
      response: {
        id: 'r1',
        object: 'response',
        model: 'gpt-5',
        status: 'completed',
        usage: {
          input_tokens: 1234,
          input_tokens_details: { cached_tokens: 1024 },
          output_tokens: 20,
          total_tokens: 1254,
        },
      },
    },
  ],
])

const cases = [
  { name: 'anthropic', path: '/v1/messages', body: anthropicStream },
  { name: 'openai chat', path: '/v1/chat/completions', body: chatStream },
  { name: 'openai responses', path: '/v1/responses', body: responsesStream },
]

const events = (text: string) => text.split(/(?<=\n\n)/)

describe('the push processor', () => {
  afterEach(() => vi.restoreAllMocks())

  it.each(cases)('$name: any chunking gives the same bytes and the same record', ({ path, body }) => {
    const whole = inspect(body, { path })
    expect(whole.record.corrections.length).toBeGreaterThan(0)
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }), (chunks) => {
        const cut = inspect(body, { path, chunks })
        expect(cut.output.equals(whole.output)).toBe(true)
        expect(cut.record).toEqual(whole.record)
      }),
      { numRuns: 200 },
    )
  })

  it.each(cases)('$name: every event that is not rewritten leaves byte-identical', ({ path, body }) => {
    const before = events(body)
    const after = events(inspect(body, { path }).output.toString())
    expect(after).toHaveLength(before.length)
    const changed = before.filter((event, i) => event !== after[i])
    expect(changed).toHaveLength(1)
    expect(changed[0]).toMatch(/message_delta|"choices":\[\]|response\.completed/)
  })

  it('never JSON-parses an event that cannot carry usage', () => {
    const parse = vi.spyOn(JSON, 'parse')
    inspect(anthropicStream, { path: '/v1/messages' })
    // message_start (also the first event, read once for the dialect) and message_delta only.
    expect(parse).toHaveBeenCalledTimes(2)
    parse.mockClear()
    inspect(chatStream, { path: '/v1/chat/completions' })
    // The first chunk (dialect check) and the usage chunk; content chunks with `"usage": null` are
    // skipped, and the finish chunk and [DONE] are recognised on bytes.
    expect(parse).toHaveBeenCalledTimes(2)
  })

  it('hands an untouched chunk back as the same Buffer', () => {
    const processor = createProcessor({ path: '/v1/messages', contentType: 'text/event-stream' })
    const [start, ping] = events(anthropicStream)
    processor.push(Buffer.from(start!))
    const chunk = Buffer.from(ping!)
    const out = processor.push(chunk)
    expect(out).toHaveLength(1)
    expect(out[0]).toBe(chunk)
  })

  it('rewrites only the usage object inside an event, keeping the rest of its bytes', () => {
    const body =
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","note":"caf\\u00e9"},"usage":{"input_tokens":0,"output_tokens":5.0}}\n\n'
    const start = sse([
      [
        'message_start',
        { type: 'message_start', message: { model: 'm', usage: { input_tokens: 9, output_tokens: 1 } } },
      ],
    ])
    const out = inspect(start + body, { path: '/v1/messages' }).output.toString()
    expect(out).toContain(
      '"delta":{"stop_reason":"end_turn","note":"caf\\u00e9"},"usage":{"input_tokens":9,"output_tokens":5}}',
    )
  })

  describe('fails open', () => {
    it('malformed JSON in a usage event: the rest passes byte-exact, the record says why', () => {
      const body = anthropicStream.replace('"usage":{"input_tokens":1234', '"usage":{"input_tokens":1234,,')
      const { record, output } = inspect(body, { path: '/v1/messages' })
      expect(output.toString()).toBe(body)
      expect(record.status).toBe('passthrough')
      expect(record.passthrough?.reason).toMatch(/malformed JSON in message_delta/)
      expect(record.passthrough?.atByte).toBe(Buffer.from(body).indexOf('event: message_delta'))
    })

    it('an event over maxEventBytes passes untouched and so does the rest', () => {
      const { record, output } = inspect(anthropicStream, { path: '/v1/messages', maxEventBytes: 100, chunks: [7] })
      expect(output.toString()).toBe(anthropicStream)
      expect(record.status).toBe('passthrough')
      expect(record.passthrough?.reason).toMatch(/maxEventBytes/)
    })

    it('an unknown dialect passes untouched', () => {
      const body = 'data: {"hello":"world"}\n\n'
      const { record, output } = inspect(body, { path: '/v1/other' })
      expect(output.toString()).toBe(body)
      expect(record.status).toBe('passthrough')
      expect(record.dialect).toBe('unknown')
    })

    it('a JSON body over the bound is forwarded whole and untouched', () => {
      const body = JSON.stringify({
        type: 'message',
        model: 'm',
        content: [{ type: 'text', text: 'x'.repeat(500) }],
        usage: { input_tokens: 1, output_tokens: 2 },
      })
      const { record, output } = inspect(body, {
        path: '/v1/messages',
        contentType: 'application/json',
        maxEventBytes: 100,
        chunks: [64],
      })
      expect(output.toString()).toBe(body)
      expect(record.passthrough?.reason).toMatch(/body over maxEventBytes/)
    })
  })

  it('reads the dialect from the first event when the path does not tell', () => {
    const { record } = inspect(responsesStream, { path: '/gateway/llm' })
    expect(record.dialect).toBe('openai-responses')
    expect(record.usage).toMatchObject({ input: 210, cacheRead: 1024, output: 20 })
  })

  it('reads a stream that starts with a BOM', () => {
    const { record, output } = inspect(`\ufeff${anthropicStream}`, { path: '/v1/messages' })
    expect(record.model).toBe('claude-sonnet-4-5')
    expect(output.subarray(0, 3).toString('hex')).toBe('efbbbf')
  })
})

describe('observations from outside the body', () => {
  it('fill message_start when the true values are known before it leaves (the upstream tap)', () => {
    const processor = createProcessor({ path: '/v1/messages', contentType: 'text/event-stream' })
    processor.ledger.observe(
      'tap',
      { input: 1, cacheRead: 61711, cacheWrite: 407 },
      { input: 'tap', cacheRead: 'tap', cacheWrite: 'tap' },
    )
    const start =
      'event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}\n\n'
    const out = Buffer.concat(processor.push(Buffer.from(start))).toString()
    expect(out).toContain(
      '"usage":{"input_tokens":1,"cache_read_input_tokens":61711,"output_tokens":0,"cache_creation_input_tokens":407}',
    )
    expect(processor.result().corrections).toContainEqual({
      where: 'message_start',
      field: 'usage.input_tokens',
      from: 0,
      to: 1,
    })
    expect(processor.result().sources.input).toBe('tap')
  })
})

describe('streams whose events carry no `event:` line', () => {
  it.each([
    { name: 'anthropic', path: '/v1/messages', body: anthropicStream },
    { name: 'responses', path: '/v1/responses', body: responsesStream },
  ])('$name: read and rewritten by their JSON type alone', ({ path, body }) => {
    const dataOnly = body.replace(/^event: [^\n]*\n/gm, '')
    const named = inspect(body, { path })
    const unnamed = inspect(dataOnly, { path })
    expect(unnamed.record.usage).toEqual(named.record.usage)
    expect(unnamed.record.corrections.map((c) => [c.field, c.from, c.to])).toEqual(
      named.record.corrections.map((c) => [c.field, c.from, c.to]),
    )
    expect(unnamed.output.toString()).toBe(named.output.toString().replace(/^event: [^\n]*\n/gm, ''))
  })
})
