/** Every broken-rule detector on small raw event lists (docs/doctor.md#broken-rules). */
import { describe, expect, it } from 'vitest'
import {
  contentChunks,
  detect,
  detectProviderRequest,
  detectStreamVsJson,
  type Observation,
  type RuleId,
} from '@usagewire/doctor'
import {
  anthropic,
  block,
  blockStop,
  choice,
  chunk,
  delta,
  done,
  response,
  sse,
  start,
  stop,
  text,
  textDelta,
} from './events.js'

const truth = { input: 212, cacheRead: 30433, cacheWrite: 0, output: 104, reasoning: 0 }
const full = { input_tokens: 212, cache_read_input_tokens: 30433, cache_creation_input_tokens: 0, output_tokens: 1 }
const final = { ...full, output_tokens: 104 }

const rules = (obs: Partial<Observation>) =>
  detect({ format: 'anthropic', mode: 'stream', scenario: 'cache-read', truth, status: 200, ...obs }).map((f) => f.rule)
const details = (obs: Partial<Observation>, rule: RuleId) =>
  detect({ format: 'anthropic', mode: 'stream', scenario: 'cache-read', truth, status: 200, ...obs })
    .filter((f) => f.rule === rule)
    .map((f) => f.detail)

describe('Anthropic streams', () => {
  it('an honest stream breaks nothing', () => {
    expect(rules({ events: anthropic(full, final) })).toEqual([])
  })

  it('zeros in message_start (rows 1, 28, 30)', () => {
    const events = anthropic({ input_tokens: 0, output_tokens: 0 }, final)
    expect(rules({ events })).toEqual(['zero-start'])
    expect(details({ events }, 'zero-start')).toEqual([
      'cache-read/stream: message_start says input 0 (provider 212), cache read absent (provider 30433)',
    ])
  })

  it('a 0 that erases a count stated earlier (row 31)', () => {
    const events = anthropic(full, { input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 104 })
    expect(details({ events }, 'zero-erases')).toEqual([
      'cache-read/stream: message_delta says input_tokens 0 after 212, cache_read_input_tokens 0 after 30433',
    ])
  })

  it('cache counted in input_tokens: folded in, or counted twice (rows 3, 53)', () => {
    const folded = anthropic({ input_tokens: 30645, output_tokens: 1 }, { input_tokens: 30645, output_tokens: 104 })
    expect(rules({ events: folded })).toEqual(['cache-in-input'])
    const twice = anthropic({ ...full, input_tokens: 30645 }, { ...final, input_tokens: 30645 })
    expect(details({ events: twice }, 'cache-in-input')[0]).toMatch(/count it again/)
  })

  it('cache dropped (rows 5, 9, 13)', () => {
    const events = anthropic({ input_tokens: 212, output_tokens: 1 }, { input_tokens: 212, output_tokens: 104 })
    expect(rules({ events })).toEqual(['cache-dropped'])
  })

  it('output counted per chunk (row 4)', () => {
    // Two text deltas; the final output is 2.
    const events = anthropic(full, { ...full, output_tokens: 2 })
    expect(rules({ events })).toEqual(['output-per-chunk'])
    expect(details({ events }, 'output-per-chunk')).toEqual([
      'cache-read/stream: output_tokens 2, the number of content chunks: 2 text (provider 104)',
    ])
  })

  it('output counted per chunk: every content chunk counts, tool-call arguments and thinking too', () => {
    const toolTruth = { input: 905, cacheRead: 2048, cacheWrite: 0, output: 61, reasoning: 0 }
    const usage = { input_tokens: 905, cache_read_input_tokens: 2048, cache_creation_input_tokens: 0 }
    const json = (partial: string) => ({
      data: { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: partial } },
    })
    const toolBlock = {
      data: {
        type: 'content_block_start',
        index: 1,
        content_block: { type: 'tool_use', id: 't', name: 'w', input: {} },
      },
    }
    const tool = (output: number) =>
      sse([
        start({ ...usage, output_tokens: 1 }),
        block,
        text('Checking'),
        text(' now.'),
        blockStop,
        toolBlock,
        json('{"city":'),
        json('"Lisbon"'),
        json('}'),
        { data: { type: 'content_block_stop', index: 1 } },
        delta({ ...usage, output_tokens: output }),
        stop,
      ])
    const toolCall = { scenario: 'tool-call' as const, truth: toolTruth }
    expect(details({ ...toolCall, events: tool(5) }, 'output-per-chunk')).toEqual([
      'tool-call/stream: output_tokens 5, the number of content chunks: 2 text, 3 tool-call arguments (provider 61)',
    ])
    // The text chunks alone are not what such a gateway counts.
    expect(rules({ ...toolCall, events: tool(2) })).toEqual([])
    expect(contentChunks('anthropic', tool(5))).toEqual({ total: 5, kinds: { text: 2, 'tool-call arguments': 3 } })

    const reasoning = { input: 640, cacheRead: 0, cacheWrite: 0, output: 512, reasoning: 384 }
    const thinking = (t: string) => ({
      data: { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: t } },
    })
    const signature = {
      data: { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig' } },
    }
    const thought = sse([
      start({ input_tokens: 640, output_tokens: 1 }),
      { data: { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } } },
      thinking('The user'),
      thinking(' wants'),
      thinking(' one.'),
      signature,
      blockStop,
      block,
      text('Hello'),
      text(' there.'),
      blockStop,
      delta({ input_tokens: 640, output_tokens: 5 }),
      stop,
    ])
    expect(details({ scenario: 'reasoning', truth: reasoning, events: thought }, 'output-per-chunk')).toEqual([
      'reasoning/stream: output_tokens 5, the number of content chunks: 2 text, 3 reasoning (provider 512)',
    ])
  })

  it('a stream the SDK rejects is still judged on the usage it ends with (rows 35, 3)', () => {
    // Two message_start events, both zeros (the SDK throws "Unexpected event order"); the final message_delta
    // states the input with the cache folded in.
    const zero = { input_tokens: 0, output_tokens: 0 }
    const twice = sse([
      start(zero),
      start(zero),
      block,
      text('Hello'),
      text(' there.'),
      blockStop,
      delta({ input_tokens: 30645, output_tokens: 104 }),
      stop,
    ])
    expect(rules({ events: twice })).toEqual(['event-order', 'zero-start', 'cache-in-input'])
    expect(details({ events: twice }, 'cache-in-input')).toEqual([
      'cache-read/stream: input_tokens 30645 includes the cache (input 212); the cache fields say nothing',
    ])
    // No message_stop, and the output the number of chunks.
    const open = sse([start(full), block, text('x'), blockStop, delta({ ...full, output_tokens: 1 })])
    expect(rules({ events: open })).toEqual(['event-order', 'output-per-chunk'])
    // A wrong count no other rule explains is named as such, beside the event order.
    const wrong = sse([start(full), start(full), block, text('x'), blockStop, delta({ ...full, output_tokens: 50 })])
    expect(details({ events: wrong }, 'wrong-count')).toEqual([
      'cache-read/stream: the usage the stream ends with says output 50 (provider: output 104); the SDK rejects the stream before reading it',
    ])
    expect(rules({ events: wrong })).toEqual(['event-order', 'wrong-count'])
    // Right at its end: only the event order.
    const right = sse([start(full), start(full), block, text('x'), blockStop, delta(final), stop])
    expect(rules({ events: right })).toEqual(['event-order'])
  })

  it('reasoning left out of the output (row 58)', () => {
    const reasoning = { input: 640, cacheRead: 0, cacheWrite: 0, output: 512, reasoning: 384 }
    const events = anthropic({ input_tokens: 640, output_tokens: 1 }, { input_tokens: 640, output_tokens: 128 })
    expect(rules({ events, truth: reasoning, scenario: 'reasoning' })).toEqual(['reasoning-outside'])
  })

  it('usage only on events without an event: name, which the SDK skips', () => {
    const events = sse([
      { event: null, ...start(full) },
      block,
      text('x'),
      blockStop,
      { event: null, ...delta(final) },
      stop,
    ])
    const found = rules({ events })
    expect(found).toContain('usage-ignored')
    expect(found).toContain('final-missing')
  })

  it('the final usage missing (rows 12, 14)', () => {
    const events = sse([start(full), block, text('x'), blockStop, stop])
    expect(details({ events }, 'final-missing')).toEqual(['cache-read/stream: no message_delta'])
  })

  it('an event order a client rejects: two message_start, events after message_stop, no message_stop', () => {
    const twice = sse([start(full), start(full), block, text('x'), delta(final), stop])
    expect(details({ events: twice }, 'event-order')).toEqual(['cache-read/stream: 2 message_start events'])
    const late = sse([start(full), block, text('x'), stop, delta(final)])
    expect(details({ events: late }, 'event-order')).toEqual([
      'cache-read/stream: 1 event(s) after message_stop (message_delta)',
    ])
    const open = sse([start(full), block, text('x'), delta(final)])
    expect(details({ events: open }, 'event-order')).toEqual(['cache-read/stream: no message_stop'])
    expect(rules({ events: open, partial: true })).toEqual([]) // a client that left: nothing more was due
  })

  it('the TTL split lost from message_start', () => {
    const split = {
      input: 318,
      cacheRead: 0,
      cacheWrite: 4096,
      cacheWrite5m: 1024,
      cacheWrite1h: 3072,
      output: 77,
      reasoning: 0,
    }
    const usage = { input_tokens: 318, cache_creation_input_tokens: 4096, cache_read_input_tokens: 0 }
    const events = anthropic({ ...usage, output_tokens: 1 }, { ...usage, output_tokens: 77 })
    expect(details({ events, truth: split, scenario: 'cache-write' }, 'ttl-split')).toEqual([
      'cache-write/stream: message_start has no cache_creation (5m 1024, 1h 3072): priced at the 5m rate',
    ])
    const right = anthropic(
      {
        ...usage,
        cache_creation: { ephemeral_5m_input_tokens: 1024, ephemeral_1h_input_tokens: 3072 },
        output_tokens: 1,
      },
      { ...usage, output_tokens: 77 },
    )
    expect(rules({ events: right, truth: split, scenario: 'cache-write' })).toEqual([])
  })

  it('a body without usage, or with the cache in input_tokens', () => {
    expect(rules({ mode: 'create', body: { type: 'message', content: [] } })).toEqual(['final-missing'])
    expect(
      rules({ mode: 'create', body: { type: 'message', usage: { input_tokens: 30645, output_tokens: 104 } } }),
    ).toEqual(['cache-in-input'])
  })
})

describe('OpenAI Chat streams', () => {
  const usage = {
    prompt_tokens: 30645,
    completion_tokens: 104,
    total_tokens: 30749,
    prompt_tokens_details: { cached_tokens: 30433 },
  }
  const chat = (obs: Partial<Observation>) => rules({ format: 'openai-chat', mode: 'stream+usage', ...obs })

  it('an honest stream breaks nothing', () => {
    expect(
      chat({
        events: sse([
          chunk([choice({ content: 'Hi' })], null),
          chunk([choice({}, 'stop')], null),
          chunk([], usage),
          done,
        ]),
      }),
    ).toEqual([])
  })

  it('cache left out of the prompt total (row 21), or counted twice (row 53)', () => {
    const left = { ...usage, prompt_tokens: 212, total_tokens: 30749 }
    expect(chat({ events: sse([chunk([choice({}, 'stop')], null), chunk([], left), done]) })).toEqual([
      'cache-outside-prompt',
    ])
    const twice = { ...usage, prompt_tokens: 61078, total_tokens: 61182 }
    expect(chat({ events: sse([chunk([choice({}, 'stop')], null), chunk([], twice), done]) })).toEqual(['cache-twice'])
  })

  it('cache dropped: cached_tokens never moves (rows 5, 9)', () => {
    const dropped = { prompt_tokens: 30645, completion_tokens: 104, total_tokens: 30749 }
    expect(chat({ events: sse([chunk([choice({}, 'stop')], null), chunk([], dropped), done]) })).toEqual([
      'cache-dropped',
    ])
  })

  it('usage only on a chunk with choices (rows 10, 11), or only in x_groq.usage', () => {
    expect(chat({ events: sse([chunk([choice({}, 'stop')], usage), done]) })).toEqual(['usage-ignored'])
    const groq = { event: null, data: { choices: [choice({}, 'stop')], x_groq: { usage } } }
    expect(chat({ events: sse([groq, done]) })).toEqual(['usage-ignored', 'final-missing'])
  })

  it('the final usage missing though include_usage was asked (row 32)', () => {
    expect(chat({ events: sse([chunk([choice({}, 'stop')]), done]) })).toEqual(['final-missing'])
  })

  it('a usage chunk the client did not ask for (row 34)', () => {
    expect(chat({ mode: 'stream', events: sse([chunk([choice({}, 'stop')], null), chunk([], usage), done]) })).toEqual([
      'unasked-usage',
    ])
  })

  it('a usage: null after the usage block erases it (row 42)', () => {
    const events = sse([chunk([choice({}, 'stop')], null), chunk([], usage), chunk([], null), done])
    expect(chat({ events })).toContain('zero-erases')
  })

  it('events after [DONE], and no finish_reason', () => {
    expect(chat({ events: sse([chunk([choice({}, 'stop')], null), chunk([], usage), done, chunk([], null)]) })).toEqual(
      ['event-order'],
    )
    expect(chat({ events: sse([chunk([choice({ content: 'Hi' })], null), chunk([], usage), done]) })).toEqual([
      'event-order',
    ])
  })

  it('reasoning outside the completion count (rows 24, 58)', () => {
    const reasoning = { input: 640, cacheRead: 0, cacheWrite: 0, output: 512, reasoning: 384 }
    const outside = {
      prompt_tokens: 640,
      completion_tokens: 128,
      total_tokens: 1152,
      completion_tokens_details: { reasoning_tokens: 384 },
    }
    expect(
      chat({ truth: reasoning, events: sse([chunk([choice({}, 'stop')], null), chunk([], outside), done]) }),
    ).toEqual(['reasoning-outside'])
  })

  it('output counted per chunk: every chunk with content, tool calls or reasoning (row 4)', () => {
    const toolTruth = { input: 905, cacheRead: 2048, cacheWrite: 0, output: 61, reasoning: 0 }
    const counted = (completion: number) => ({
      prompt_tokens: 2953,
      completion_tokens: completion,
      total_tokens: 2953 + completion,
      prompt_tokens_details: { cached_tokens: 2048 },
    })
    const call = (args: string) => ({ tool_calls: [{ index: 0, function: { arguments: args } }] })
    const events = (completion: number) =>
      sse([
        chunk([choice({ role: 'assistant', content: '' })], null),
        chunk([choice({ content: 'Checking' })], null),
        chunk([choice({ content: ' now.' })], null),
        chunk(
          [choice({ tool_calls: [{ index: 0, id: 'c', type: 'function', function: { name: 'w', arguments: '' } }] })],
          null,
        ),
        chunk([choice(call('{"city":'))], null),
        chunk([choice(call('"Lisbon"}'))], null),
        chunk([choice({}, 'tool_calls')], null),
        chunk([], counted(completion)),
        done,
      ])
    expect(chat({ scenario: 'tool-call', truth: toolTruth, events: events(5) })).toEqual(['output-per-chunk'])
    expect(
      details(
        { format: 'openai-chat', mode: 'stream+usage', scenario: 'tool-call', truth: toolTruth, events: events(5) },
        'output-per-chunk',
      ),
    ).toEqual([
      'tool-call/stream+usage: completion_tokens 5, the number of content chunks: 2 text, 3 tool-call arguments (provider 61)',
    ])
    expect(chat({ scenario: 'tool-call', truth: toolTruth, events: events(2) })).toEqual([])

    const reasoning = { input: 640, cacheRead: 0, cacheWrite: 0, output: 512, reasoning: 384 }
    const thought = sse([
      chunk([choice({ role: 'assistant', content: '' })], null),
      chunk([choice({ reasoning_content: 'The user' })], null),
      chunk([choice({ reasoning: ' wants one.' })], null),
      chunk([choice({ content: 'Hello' })], null),
      chunk([choice({}, 'stop')], null),
      chunk([], {
        prompt_tokens: 640,
        completion_tokens: 3,
        total_tokens: 643,
        completion_tokens_details: { reasoning_tokens: 384 },
      }),
      done,
    ])
    expect(contentChunks('openai-chat', thought)).toEqual({ total: 3, kinds: { reasoning: 2, text: 1 } })
    expect(chat({ scenario: 'reasoning', truth: reasoning, events: thought })).toEqual(['output-per-chunk'])
  })

  it('a stream the SDK rejects (no finish_reason) is still judged on its last usage block', () => {
    const left = { ...usage, prompt_tokens: 212, total_tokens: 316 }
    expect(chat({ events: sse([chunk([choice({ content: 'Hi' })], null), chunk([], left), done]) })).toEqual([
      'event-order',
      'cache-outside-prompt',
    ])
    const short = { ...usage, completion_tokens: 50, total_tokens: 30695 }
    expect(chat({ events: sse([chunk([choice({ content: 'Hi' })], null), chunk([], short), done]) })).toEqual([
      'event-order',
      'wrong-count',
    ])
  })
})

describe('OpenAI Responses streams', () => {
  const usage = {
    input_tokens: 30645,
    input_tokens_details: { cached_tokens: 30433 },
    output_tokens: 104,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 30749,
  }
  const responses = (obs: Partial<Observation>) => rules({ format: 'openai-responses', ...obs })

  it('an honest stream breaks nothing', () => {
    expect(
      responses({
        events: sse([response('response.created', null), textDelta, response('response.completed', usage)]),
      }),
    ).toEqual([])
  })

  it('details strict clients require (row 36)', () => {
    const bare = {
      input_tokens: 30645,
      output_tokens: 104,
      total_tokens: 30749,
      input_tokens_details: { cached_tokens: 30433 },
    }
    expect(
      responses({ events: sse([response('response.created', null), response('response.completed', bare)]) }),
    ).toEqual(['strict-details'])
  })

  it('usage on response.incomplete, which finalResponse() does not read (row 38); no terminal event', () => {
    expect(
      responses({ events: sse([response('response.created', null), response('response.incomplete', usage)]) }),
    ).toEqual(['usage-ignored'])
    expect(responses({ events: sse([response('response.created', null), textDelta]) })).toEqual([
      'event-order',
      'final-missing',
    ])
  })

  it('output counted per chunk: text, function-call arguments and reasoning deltas (row 4)', () => {
    const reasoning = { input: 640, cacheRead: 0, cacheWrite: 0, output: 512, reasoning: 384 }
    const counted = {
      input_tokens: 640,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: 4,
      output_tokens_details: { reasoning_tokens: 384 },
      total_tokens: 644,
    }
    const delta = (type: string, d: string) => ({ data: { type, sequence_number: 1, delta: d } })
    const events = sse([
      response('response.created', null),
      delta('response.reasoning_summary_text.delta', 'The user'),
      delta('response.output_text.delta', 'Hi'),
      delta('response.output_text.delta', ''),
      delta('response.function_call_arguments.delta', '{"city":'),
      delta('response.function_call_arguments.delta', '"Lisbon"}'),
      response('response.completed', counted),
    ])
    expect(contentChunks('openai-responses', events)).toEqual({
      total: 4,
      kinds: { reasoning: 1, text: 1, 'tool-call arguments': 2 },
    })
    expect(
      details({ format: 'openai-responses', scenario: 'reasoning', truth: reasoning, events }, 'output-per-chunk'),
    ).toEqual([
      'reasoning/stream: output_tokens 4, the number of content chunks: 1 text, 2 tool-call arguments, 1 reasoning (provider 512)',
    ])
  })

  it('events after the terminal event', () => {
    expect(
      responses({
        events: sse([response('response.created', null), response('response.completed', usage), textDelta]),
      }),
    ).toEqual(['event-order'])
  })
})

describe('across modes and statuses', () => {
  it('streamed and non-streamed usage disagree (row 18)', () => {
    expect(detectStreamVsJson('anthropic', 'plain', { input: 0, output: 8 }, { input: 1850, output: 96 })).toEqual([
      { rule: 'stream-vs-json', detail: 'plain: streamed input 0 output 8; not streamed input 1850 output 96' },
    ])
    expect(detectStreamVsJson('anthropic', 'plain', { input: 1850, output: 96 }, { input: 1850, output: 96 })).toEqual(
      [],
    )
  })

  it("the provider's 4xx reached the client as a success, a 5xx, or a 4xx the SDKs retry", () => {
    const error = (status: number, retryHeader?: string) =>
      details({ scenario: 'error', mode: 'create', truth: undefined, status, retryHeader }, 'error-status')
    // A 4xx the SDKs do not retry is right, the same status or not.
    for (const status of [400, 404, 413, 422]) expect(error(status), String(status)).toEqual([])
    for (const status of [408, 409, 429, 500, 503])
      expect(error(status)).toEqual([`error/create: HTTP ${status}: the provider answered 400; SDKs retry it`])
    expect(error(200)).toEqual(["error/create: HTTP 200: the provider's 400 became a success"])
    expect(error(400, 'true')).toEqual([
      'error/create: HTTP 400 with x-should-retry: true: the provider answered 400; SDKs retry it',
    ])
    // Other clients retry a 429 whatever the header says.
    expect(error(429, 'false')).toHaveLength(1)
  })
})

describe('what the gateway asked the provider for', () => {
  const streamed = (body: unknown) => ({ dialect: 'openai-chat' as const, streaming: true, body })
  const anthropicStream = { format: 'anthropic' as const, mode: 'stream' as const, scenario: 'plain' as const }

  it('a streamed Chat Completions call without stream_options.include_usage (row 32)', () => {
    const body = { model: 'gpt-4.1', stream: true, messages: [{ role: 'user', content: 'Hi' }] }
    expect(detectProviderRequest(anthropicStream, streamed(body))).toEqual([
      {
        rule: 'no-stream-usage-requested',
        detail:
          'plain/stream: the gateway streamed Chat Completions with no stream_options: the provider sent no usage',
      },
    ])
    expect(
      detectProviderRequest(anthropicStream, streamed({ ...body, stream_options: { include_usage: false } }))[0]!
        .detail,
    ).toBe(
      'plain/stream: the gateway streamed Chat Completions with stream_options {"include_usage":false}: the provider sent no usage',
    )
    // Asked for: nothing to say; nor of a call that does not stream, or in another dialect.
    expect(
      detectProviderRequest(anthropicStream, streamed({ ...body, stream_options: { include_usage: true } })),
    ).toEqual([])
    expect(detectProviderRequest(anthropicStream, { dialect: 'openai-chat', streaming: false, body })).toEqual([])
    expect(detectProviderRequest(anthropicStream, { dialect: 'openai-responses', streaming: true, body })).toEqual([])
    // The error scenario owes no usage.
    expect(detectProviderRequest({ ...anthropicStream, scenario: 'error' }, streamed(body))).toEqual([])
  })

  it('not a fault when the Chat client did not ask either; a fault when it asked and the gateway dropped it', () => {
    const body = { model: 'gpt-4.1', stream: true }
    const chat = { format: 'openai-chat' as const, scenario: 'plain' as const }
    expect(detectProviderRequest({ ...chat, mode: 'stream' }, streamed(body))).toEqual([])
    expect(detectProviderRequest({ ...chat, mode: 'stream+usage' }, streamed(body)).map((f) => f.rule)).toEqual([
      'no-stream-usage-requested',
    ])
  })
})
