import fc from 'fast-check'
import { createParser } from 'eventsource-parser'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { inspect } from './testing/inspect.js'
import { createProcessor, MAX_CORRECTIONS } from './processor.js'

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

    it('events over maxEventBytes leave as they came; their usage is still read, and the record says so', () => {
      const whole = inspect(anthropicStream, { path: '/v1/messages' })
      const { record, output } = inspect(anthropicStream, { path: '/v1/messages', maxEventBytes: 100, chunks: [7] })
      expect(output.toString()).toBe(anthropicStream)
      expect(record.status).toBe('complete')
      expect(record.usage).toEqual(whole.record.usage)
      expect(record.unrewritten?.map((u) => u.where)).toEqual(['message_start', 'message_delta'])
    })

    it('an unknown dialect passes untouched', () => {
      const body = 'data: {"hello":"world"}\n\n'
      const { record, output } = inspect(body, { path: '/v1/other' })
      expect(output.toString()).toBe(body)
      expect(record.status).toBe('passthrough')
      expect(record.dialect).toBe('unknown')
    })

    it('a JSON body over the bound is forwarded untouched, its usage read on the way', () => {
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
      expect(record.usage).toMatchObject({ input: 1, output: 2 })
      expect(record.unrewritten).toEqual([{ where: 'body', reason: expect.stringMatching(/maxEventBytes/) }])
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
    expect(processor.ledger.sources().input).toBe('tap')
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

describe('defects of usage reading', () => {
  const chunk = (extra: Record<string, unknown>) =>
    `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'gpt-4o', choices: [], ...extra })}\n\n`

  it('chat usage on several chunks: each block is one snapshot, an earlier cache count is not added to a later total', () => {
    const body =
      chunk({ choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }] }) +
      chunk({
        usage: {
          prompt_tokens: 1000,
          completion_tokens: 1,
          total_tokens: 1001,
          prompt_tokens_details: { cached_tokens: 800 },
        },
      }) +
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }) +
      chunk({ usage: { prompt_tokens: 1000, completion_tokens: 5, total_tokens: 1005 } }) +
      'data: [DONE]\n\n'
    const { record, output } = inspect(body, { path: '/v1/chat/completions' })
    expect(record.usage).toMatchObject({ input: 200, cacheRead: 800, output: 5 })
    const last = output
      .toString()
      .split('\n\n')
      .filter((e) => e.includes('"usage":{'))
      .at(-1)!
    const usage = JSON.parse(last.slice(6)).usage
    expect(usage.prompt_tokens).toBe(1000)
    expect(usage.total_tokens).toBe(1005)
  })

  it('chat: a later block with a different prompt total and no breakdown replaces the breakdown', () => {
    const body =
      chunk({ usage: { prompt_tokens: 900, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 800 } } }) +
      chunk({
        choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1000, completion_tokens: 5 },
      }) +
      'data: [DONE]\n\n'
    const { record } = inspect(body, { path: '/v1/chat/completions' })
    expect(record.usage.input + record.usage.cacheRead + record.usage.cacheWrite).toBe(1000)
  })

  it('reads "usage" : { with whitespace around the colon, as pretty printers write it', () => {
    const pretty = JSON.stringify(
      { id: 'c', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 40, completion_tokens: 2 } },
      null,
      1,
    )
      .replace(/\n\s*/g, ' ')
      .replace('"usage":', '"usage" :')
    expect(pretty).toContain('"usage" : {')
    // Not the first chunk: the first is always read, to settle the dialect.
    const first = chunk({ choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }] })
    const { record } = inspect(`${first}data: ${pretty}\n\ndata: [DONE]\n\n`, { path: '/v1/chat/completions' })
    expect(record.usage).toMatchObject({ input: 40, output: 2 })
    expect(record.final).toBe(true)
  })

  it('a Responses response.completed over maxEventBytes: its usage is read on the way, the record says it was not rewritten', () => {
    const big = 'x'.repeat(3 * 1024 * 1024)
    const completed = {
      type: 'response.completed',
      sequence_number: 3,
      response: {
        id: 'r',
        object: 'response',
        model: 'gpt-5',
        status: 'completed',
        output: [{ type: 'message', content: [{ type: 'output_text', text: big }] }],
        usage: {
          input_tokens: 1500,
          input_tokens_details: { cached_tokens: 1024 },
          output_tokens: 700,
          output_tokens_details: { reasoning_tokens: 300 },
          total_tokens: 2200,
        },
      },
    }
    const body =
      `event: response.created\ndata: ${JSON.stringify({ type: 'response.created', sequence_number: 0, response: { id: 'r', object: 'response', model: 'gpt-5', status: 'in_progress' } })}\n\n` +
      `event: response.completed\ndata: ${JSON.stringify(completed)}\n\n`
    const { record, output } = inspect(body, { path: '/v1/responses', chunks: [1000, 64 * 1024, 150] })
    expect(output.equals(Buffer.from(body))).toBe(true)
    expect(record.status).toBe('complete')
    expect(record.usage).toEqual({ input: 476, cacheRead: 1024, cacheWrite: 0, output: 700, reasoning: 300 })
    expect(record.final).toBe(true)
    expect(record.unrewritten).toEqual([
      { where: 'response.completed', reason: expect.stringMatching(/maxEventBytes/) },
    ])
  })

  it('a usage event whose JSON spans several data: lines is rewritten into valid SSE, LF and CRLF', () => {
    for (const eol of ['\n', '\r\n']) {
      const start = `event: message_start${eol}data: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":9,"output_tokens":1}}}${eol}${eol}`
      const delta = `event: message_delta${eol}data: {"type":"message_delta",${eol}data: "delta":{"stop_reason":"end_turn"},${eol}data: "usage":{"input_tokens":0,"output_tokens":5}}${eol}${eol}`
      const { output, record } = inspect(start + delta, { path: '/v1/messages' })
      const text = output.toString()
      const events: Array<{ event?: string; data: string }> = []
      const parser = createParser({ onEvent: (e) => events.push(e) })
      parser.feed(text)
      const last = events.at(-1)!
      expect(last.event).toBe('message_delta')
      expect(JSON.parse(last.data)).toMatchObject({
        delta: { stop_reason: 'end_turn' },
        usage: { input_tokens: 9, output_tokens: 5 },
      })
      if (eol === '\r\n') expect(text.replace(/\r\n/g, '')).not.toContain('\n')
      expect(record.final).toBe(true)
    }
  })
})

/** JSON as Python's `json.dumps` writes it by default: `", "` and `": "` between members. */
function spacedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(spacedJson).join(', ')}]`
  if (value !== null && typeof value === 'object')
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}: ${spacedJson(v)}`)
      .join(', ')}}`
  return JSON.stringify(value)
}

describe('quick needles: a chunk of many events is searched, not framed event by event', () => {
  // Words that contain the needles, so that a text delta is sometimes searched into and framed.
  const word = fc.constantFrom('hello ', 'tokens" ', 'error ', 'the reason":"x ', '[DONE] ', 'completed ', 'failed ')
  const chatCase = fc.record({
    style: fc.constantFrom('compact', 'spaced', 'odd'),
    words: fc.array(word, { minLength: 0, maxLength: 40 }),
    finish: fc.constantFrom('stop', 'length', undefined),
    usage: fc.constantFrom('own chunk', 'on finish', 'none'),
    done: fc.boolean(),
    errorAt: fc.option(fc.nat({ max: 40 }), { nil: undefined }),
    // A usage object with no count in it, as a provider might send mid-stream: it carries nothing.
    emptyUsageAt: fc.option(fc.nat({ max: 40 }), { nil: undefined }),
    cut: fc.array(fc.integer({ min: 512, max: 4096 }), { minLength: 1, maxLength: 4 }),
  })

  function chatBody(c: typeof chatCase extends fc.Arbitrary<infer T> ? T : never): { body: string; events: number[] } {
    const write = (json: object) =>
      c.style === 'compact'
        ? JSON.stringify(json)
        : c.style === 'spaced'
          ? spacedJson(json)
          : JSON.stringify(json, null, 1).replace(/\n/g, '')
    const usage = {
      prompt_tokens: 900,
      completion_tokens: 40,
      total_tokens: 940,
      prompt_tokens_details: { cached_tokens: 800 },
    }
    const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', model: 'gpt-4.1', system_fingerprint: 'fp_1' }
    const chunk = (choices: object[], extra: object = { usage: null }) =>
      `data: ${write({ ...base, choices, ...extra })}\n\n`
    const events = [chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }])]
    c.words.forEach((text, i) => {
      if (c.errorAt === i) events.push(`data: ${write({ error: { message: 'overloaded', type: 'server_error' } })}\n\n`)
      events.push(
        chunk(
          [{ index: 0, delta: { content: text }, finish_reason: null }],
          c.emptyUsageAt === i ? { usage: {} } : undefined,
        ),
      )
    })
    if (c.finish)
      events.push(
        chunk([{ index: 0, delta: {}, finish_reason: c.finish }], { usage: c.usage === 'on finish' ? usage : null }),
      )
    if (c.usage === 'own chunk') events.push(chunk([], { usage }))
    if (c.done) events.push('data: [DONE]\n\n')
    return { body: events.join(''), events: events.map((e) => Buffer.byteLength(e)) }
  }

  it('openai chat: the same bytes and the same record as one event per chunk, in any JSON spacing', () => {
    fc.assert(
      fc.property(chatCase, (c) => {
        const { body, events } = chatBody(c)
        const path = '/v1/chat/completions'
        const one = inspect(body, { path, chunks: events })
        for (const chunks of [undefined, c.cut]) {
          const many = inspect(body, { path, ...(chunks && { chunks }) })
          expect(many.output.equals(one.output)).toBe(true)
          expect(comparableRecord(many.record)).toEqual(comparableRecord(one.record))
        }
      }),
      { numRuns: 300 },
    )
  })

  it('openai chat: the finish chunk is still seen when the stream ends without [DONE] or usage', () => {
    const body = chatBody({
      style: 'compact',
      words: Array(30).fill('hello '),
      finish: 'stop',
      usage: 'none',
      done: false,
      errorAt: undefined,
      emptyUsageAt: undefined,
      cut: [],
    }).body
    const { record } = inspect(body, { path: '/v1/chat/completions' })
    expect(record.status).toBe('complete')
    const cut = inspect(body.slice(0, body.lastIndexOf('data: ')), { path: '/v1/chat/completions' })
    expect(cut.record.status).toBe('incomplete')
  })

  it('openai responses: the same bytes and the same record as one event per chunk', () => {
    const named = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
    let object = true
    const response = (status: string, usage: object | null, error: object | null = null) => ({
      id: 'resp_1',
      // Some servers leave out `"object": "response"`.
      ...(object && { object: 'response' }),
      model: 'gpt-5',
      status,
      // Some servers leave out `"error": null`.
      ...(error && { error }),
      usage,
    })
    const usage = {
      input_tokens: 900,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: 40,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 940,
    }
    fc.assert(
      fc.property(
        fc.array(word, { maxLength: 40 }),
        fc.constantFrom('response.completed', 'response.incomplete', 'response.failed', 'error', 'none'),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.integer({ min: 512, max: 4096 }), { minLength: 1, maxLength: 4 }),
        (words, end, withUsage, withObject, cut) => {
          object = withObject
          const events = [named('response.created', { response: response('in_progress', null) })]
          words.forEach((delta, i) =>
            events.push(
              named('response.output_text.delta', { item_id: 'msg_1', output_index: 0, delta, sequence_number: i }),
            ),
          )
          if (end === 'error') events.push(named('error', { code: 'server_error', message: 'boom' }))
          else if (end !== 'none') {
            const status = end === 'response.failed' ? 'failed' : end.slice('response.'.length)
            const error =
              end === 'response.failed' && words.length % 2 === 0 ? { code: 'server_error', message: 'boom' } : null
            events.push(named(end, { response: response(status, withUsage ? usage : null, error) }))
          }
          const body = events.join('')
          const path = '/v1/responses'
          const one = inspect(body, { path, chunks: events.map((e) => Buffer.byteLength(e)) })
          for (const chunks of [undefined, cut]) {
            const many = inspect(body, { path, ...(chunks && { chunks }) })
            expect(many.output.equals(one.output)).toBe(true)
            expect(comparableRecord(many.record)).toEqual(comparableRecord(one.record))
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it('anthropic: the same bytes and the same record as one event per chunk, named or not, whatever the text says', () => {
    // Text that holds parts of the needles (`ge`, `ge_`, `rror`) and of the usage events' names.
    const text = fc.constantFrom('usage ', 'budget ', 'message_ ', 'an "error" ', 'the "usage": {} ', 'hello ')
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(text, { maxLength: 40 }),
        fc.constantFrom(0, 25),
        fc.option(fc.nat({ max: 40 }), { nil: undefined }),
        fc.boolean(),
        fc.array(fc.integer({ min: 512, max: 4096 }), { minLength: 1, maxLength: 4 }),
        (named, words, input, errorAt, twoDeltas, cut) => {
          const event = (type: string, data: object) => {
            const json = JSON.stringify({ type, ...data })
            return named ? `event: ${type}\ndata: ${json}\n\n` : `data: ${json}\n\n`
          }
          const usage = { input_tokens: input, cache_read_input_tokens: 800, output_tokens: 1 }
          const events = [
            event('message_start', {
              message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], usage },
            }),
            event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
          ]
          words.forEach((word, i) => {
            if (errorAt === i) events.push(event('error', { error: { type: 'overloaded_error', message: 'busy' } }))
            events.push(event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: word } }))
          })
          events.push(event('content_block_stop', { index: 0 }))
          if (twoDeltas)
            events.push(event('message_delta', { delta: { stop_reason: null }, usage: { output_tokens: 9 } }))
          events.push(
            event('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { ...usage, output_tokens: 40 } }),
          )
          events.push(event('message_stop', {}))
          const body = events.join('')
          const path = '/v1/messages'
          const one = inspect(body, { path, chunks: events.map((e) => Buffer.byteLength(e)) })
          expect(one.record.usage.output).toBe(40)
          for (const chunks of [undefined, cut]) {
            const many = inspect(body, { path, ...(chunks && { chunks }) })
            expect(many.output.equals(one.output)).toBe(true)
            expect(comparableRecord(many.record)).toEqual(comparableRecord(one.record))
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('event templates: a Chat stream reads the same whether its chunks match a template or not', () => {
  // Deltas of several shapes, with text that holds needles, quotes, escapes and non-ASCII.
  const text = fc.constantFrom(
    'hello ',
    'tokens" ',
    'error ',
    'reason":"x ',
    '[DONE] ',
    'a\\b ',
    'é ',
    '\n',
    // Longer than an event held across chunks is matched in one piece (processor.ts, JOIN_BYTES).
    'long '.repeat(1000),
  )
  const delta = fc.oneof(
    text.map((content) => ({ content })),
    text.map((reasoning_content) => ({ reasoning_content })),
    text.map((args) => ({ tool_calls: [{ index: 0, function: { arguments: args } }] })),
  )
  const streamCase = fc.record({
    deltas: fc.array(delta, { maxLength: 60 }),
    errorAt: fc.option(fc.nat({ max: 60 }), { nil: undefined }),
    finish: fc.constantFrom('stop', 'tool_calls', undefined),
    usage: fc.constantFrom('own chunk', 'on finish', 'none'),
    done: fc.boolean(),
    cut: fc.array(fc.integer({ min: 512, max: 4096 }), { minLength: 1, maxLength: 4 }),
    // Every event's blank line LF LF, CRLF CRLF, or one event's CRLF CRLF among LF ones.
    lineEnds: fc.constantFrom('lf', 'crlf', 'one crlf'),
    crlfAt: fc.nat(),
  })
  const usage = { prompt_tokens: 900, completion_tokens: 40, total_tokens: 940 }

  /** The stream; with `vary`, every chunk has its own `created`, so that no template ever matches. */
  function body(c: typeof streamCase extends fc.Arbitrary<infer T> ? T : never, vary: boolean): string {
    const events: string[] = []
    const chunk = (choices: object[], extra: object = { usage: null }) =>
      `data: ${JSON.stringify({
        id: 'chatcmpl-1',
        object: 'chat.completion.chunk',
        created: vary ? 1755800000 + events.length : 1755800000,
        model: 'gpt-4.1',
        choices,
        ...extra,
        obfuscation: 'x'.repeat(events.length % 7),
      })}\n\n`
    events.push(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]))
    c.deltas.forEach((d, i) => {
      if (c.errorAt === i) events.push(`data: ${JSON.stringify({ error: { message: 'overloaded' } })}\n\n`)
      events.push(chunk([{ index: 0, delta: d, logprobs: null, finish_reason: null }]))
    })
    if (c.finish)
      events.push(
        chunk([{ index: 0, delta: {}, finish_reason: c.finish }], { usage: c.usage === 'on finish' ? usage : null }),
      )
    if (c.usage === 'own chunk') events.push(chunk([], { usage }))
    if (c.done) events.push('data: [DONE]\n\n')
    const crlf = (e: string) => `${e.slice(0, -2)}\r\n\r\n`
    if (c.lineEnds === 'crlf') return events.map(crlf).join('')
    if (c.lineEnds === 'one crlf') events[c.crlfAt % events.length] = crlf(events[c.crlfAt % events.length]!)
    return events.join('')
  }

  it('gives the record it gives when no template matches, in any chunking', () => {
    fc.assert(
      fc.property(streamCase, (c) => {
        const path = '/v1/chat/completions'
        const unmatched = inspect(body(c, true), { path }).record
        // What the stream says, read without templates: the differential check below rests on it.
        const counted = c.usage === 'own chunk' || (c.usage === 'on finish' && c.finish !== undefined)
        if (counted) expect(unmatched.usage.input).toBe(900)
        else expect(unmatched.sources.input).not.toMatch(/^chunk\.usage/)
        if (c.errorAt !== undefined && c.errorAt < c.deltas.length) expect(unmatched.error).toBe('overloaded')
        expect(unmatched.final).toBe(counted && (c.finish !== undefined || c.done))
        const expected = comparableRecord(unmatched)
        const same = body(c, false)
        const events = same.split(/(?<=\n\n|\r\n\r\n)/).map((e) => Buffer.byteLength(e))
        for (const chunks of [undefined, events, c.cut]) {
          const { output, record } = inspect(same, { path, ...(chunks && { chunks }) })
          expect(output.toString()).toBe(same)
          expect(comparableRecord(record)).toEqual(expected)
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('event templates across chunks', () => {
  const line = (json: object) => `data: ${JSON.stringify(json)}\n\n`
  const chunk = (choices: object[], usage: object | null = null, i = 0) =>
    line({
      id: 'chatcmpl-1',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'gpt-4.1',
      choices,
      usage,
      obfuscation: 'o'.repeat(i % 5),
    })
  const deltas = Array.from({ length: 40 }, (_, i) =>
    chunk([{ index: 0, delta: { content: `w${i} ` }, finish_reason: null }], null, i),
  )
  const body = [
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
    ...deltas,
    chunk([{ index: 0, delta: {}, finish_reason: 'stop' }], null, 3),
    chunk([], { prompt_tokens: 900, completion_tokens: 40, total_tokens: 940 }),
    'data: [DONE]\n\n',
  ].join('')
  const path = '/v1/chat/completions'
  const expected = comparableRecord(
    inspect(body, { path, chunks: body.split(/(?<=\n\n)/).map((e) => e.length) }).record,
  )

  it('an event held at the end of a chunk and completed by the next reads the same, cut anywhere', () => {
    expect(expected).toMatchObject({ final: true, usage: { input: 900, output: 40 } })
    // Two chunks, the second large enough to be matched whole: the first ends anywhere in any event.
    for (let cut = 1; cut < body.length - 512; cut++) {
      const { output, record } = inspect(body, { path, chunks: [cut, body.length - cut] })
      expect(output.toString()).toBe(body)
      expect(comparableRecord(record), `cut at ${cut}`).toEqual(expected)
    }
  })

  it('a CR after the matched events is framed by its own line ends', () => {
    // The events a template passes leave unframed; the CRLF events after them still end where they end.
    const crlf = body.replace(
      /(finish_reason":"stop"[^\n]*)\n\n([\s\S]*)$/,
      (_, finish: string, rest: string) => `${finish}\r\n\r\n${rest.replace(/\n\n/g, '\r\n\r\n')}`,
    )
    expect(crlf).toContain('\r\n\r\ndata: [DONE]\r\n\r\n')
    for (const chunks of [undefined, [crlf.length], [700, crlf.length - 700]]) {
      const { output, record } = inspect(crlf, { path, ...(chunks && { chunks }) })
      expect(output.toString()).toBe(crlf)
      expect(comparableRecord(record)).toEqual(expected)
    }
  })
})

function comparableRecord(record: object): unknown {
  const { id: _id, timing: _timing, ...rest } = record as Record<string, unknown>
  return rest
}

describe('corrections: a usage block repeated on every chunk', () => {
  // A bridge with continuous usage (vLLM's `continuous_usage_stats`): every chunk carries the cumulative
  // usage, prompt_tokens without the cache it states under Anthropic's name.
  const continuous = (chunks: number, total: (i: number) => number) =>
    sse([
      ...Array.from({ length: chunks }, (_, i): [undefined, unknown] => [
        undefined,
        {
          id: 'c',
          object: 'chat.completion.chunk',
          created: 1,
          model: 'm',
          choices: [{ index: 0, delta: { content: 'x' }, finish_reason: i === chunks - 1 ? 'stop' : null }],
          usage: {
            prompt_tokens: 200,
            completion_tokens: i + 1,
            total_tokens: total(i),
            cache_read_input_tokens: 5000,
          },
        },
      ]),
      [undefined, '[DONE]'],
    ])

  it('lists each change once, with how many events it was made in, and rewrites every chunk', () => {
    const { record, output } = inspect(
      continuous(3000, (i) => 5200 + i + 1),
      { path: '/v1/chat/completions' },
    )
    expect(record.corrections).toEqual([
      { where: 'chunk@0', field: 'usage.prompt_tokens', from: 200, to: 5200, times: 3000 },
      { where: 'chunk@0', field: 'usage.prompt_tokens_details.cached_tokens', from: null, to: 5000, times: 3000 },
    ])
    expect(record.correctionsOmitted).toBeUndefined()
    expect(record.usage).toMatchObject({ input: 200, cacheRead: 5000, output: 3000 })
    const rewritten = output
      .toString()
      .split('\n\n')
      .filter((event) => event.includes('"prompt_tokens":5200'))
    expect(rewritten).toHaveLength(3000)
  })

  it('lists at most MAX_CORRECTIONS distinct changes and counts the rest, still rewriting every chunk', () => {
    // total_tokens without the cache: its fix differs on every chunk.
    const { record, output } = inspect(
      continuous(500, (i) => 200 + i + 1),
      { path: '/v1/chat/completions' },
    )
    expect(record.corrections).toHaveLength(MAX_CORRECTIONS)
    const totals = record.corrections.filter((c) => c.field === 'usage.total_tokens')
    const others = record.corrections.length - totals.length
    expect(record.correctionsOmitted).toBe(500 - totals.length)
    expect(others).toBe(2) // the two fixes made on every chunk, listed once each
    expect(totals[0]).toEqual({ where: 'chunk@0', field: 'usage.total_tokens', from: 201, to: 5201 })
    expect(output.toString()).toContain('"total_tokens":5700')
  })
})
