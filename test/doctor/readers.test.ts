/**
 * Every reader rule on small raw event lists (docs/doctor.md#readers): what each client would report from
 * the same bytes.
 */
import { describe, expect, it } from 'vitest'
import {
  parseSse,
  readAnthropicBody,
  readAnthropicFinal,
  readAnthropicStream,
  readChatBody,
  readChatStream,
  readResponsesBody,
  readResponsesStream,
  type AnthropicReader,
} from '@usagewire/doctor'
import { anthropic, block, choice, chunk, delta, done, response, sse, start, stop, text, textDelta } from './events.js'

const full = { input_tokens: 212, cache_read_input_tokens: 30433, cache_creation_input_tokens: 0, output_tokens: 1 }
const all: AnthropicReader[] = ['sdk', 'sdk-0.50.0', 'sdk-0.49', 'claude-code', 'start-only']
const readAll = (events: ReturnType<typeof sse>) =>
  Object.fromEntries(all.map((reader) => [reader, readAnthropicStream(events, reader).counts]))

describe('SSE cutting', () => {
  it('reads names, joined data lines, CRLF and CR ends, comments, and an event left open at the end', () => {
    const events = parseSse(': keep-alive\r\nevent: a\r\ndata: {"x":\r\ndata: 1}\r\n\r\ndata: [DONE]\r\rdata: {"y":2}')
    expect(events).toEqual([
      { event: 'a', data: '{"x":\n1}', json: { x: 1 } },
      { event: null, data: '[DONE]' },
      { event: null, data: '{"y":2}', json: { y: 2 } },
    ])
  })
})

describe('Anthropic stream readers', () => {
  it('first-party shape: every reader reads the whole message', () => {
    const events = anthropic(full, { ...full, output_tokens: 104 })
    for (const counts of Object.values(readAll(events)))
      expect(counts).toEqual({ input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 })
  })

  it('zeros on message_start, the truth on message_delta: each reader by its rule', () => {
    const zero = { input_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, output_tokens: 0 }
    const events = anthropic(zero, { ...full, output_tokens: 104 })
    const got = readAll(events)
    expect(got.sdk).toEqual({ input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 })
    expect(got['sdk-0.50.0']).toEqual({ input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 })
    expect(got['sdk-0.49']).toEqual({ input: 0, cacheRead: 0, cacheWrite: 0, output: 104 })
    expect(got['claude-code']).toEqual({ input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 })
    expect(got['start-only']).toEqual({ input: 0, cacheRead: 0, cacheWrite: 0, output: 104 })
  })

  it('a delta with output only: ≥ 0.50.4 keeps the cache, 0.50.0–0.50.3 loses it to undefined', () => {
    const got = readAll(anthropic(full, { output_tokens: 104 }))
    expect(got.sdk).toEqual({ input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 })
    expect(got['sdk-0.50.0']).toEqual({ input: 212, cacheRead: undefined, cacheWrite: undefined, output: 104 })
    expect(got['claude-code']).toEqual({ input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 })
  })

  it('an explicit 0 in the delta: ≥ 0.50.4 takes it (row 31), 0.50.0 takes cache 0 but keeps input, Claude Code keeps both', () => {
    const got = readAll(anthropic(full, { input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 104 }))
    expect(got.sdk).toEqual({ input: 0, cacheRead: 0, cacheWrite: 0, output: 104 })
    expect(got['sdk-0.50.0']).toEqual({ input: 212, cacheRead: 0, cacheWrite: undefined, output: 104 })
    expect(got['claude-code']).toEqual({ input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 })
  })

  it('null in the delta: ≥ 0.50.4 and Claude Code keep the start value', () => {
    const got = readAll(anthropic(full, { input_tokens: null, cache_read_input_tokens: null, output_tokens: 104 }))
    expect(got.sdk).toMatchObject({ input: 212, cacheRead: 30433 })
    expect(got['claude-code']).toMatchObject({ input: 212, cacheRead: 30433 })
    expect(got['sdk-0.50.0']).toMatchObject({ input: 212, cacheRead: undefined })
  })

  it('a delta without output_tokens: the SDKs overwrite output with nothing; the message_start-only reader keeps it', () => {
    const got = readAll(anthropic({ ...full, output_tokens: 7 }, { input_tokens: 212 }))
    expect(got.sdk?.output).toBeUndefined()
    expect(got['sdk-0.49']?.output).toBeUndefined()
    expect(got['start-only']?.output).toBe(7)
    expect(got['claude-code']?.output).toBe(7)
  })

  it('several deltas are snapshots: the last one wins, nothing is added', () => {
    const got = readAll(anthropic(full, { ...full, output_tokens: 50 }, { ...full, output_tokens: 104 }))
    expect(got.sdk?.output).toBe(104)
    expect(got['start-only']?.output).toBe(104)
  })

  it('keeps the TTL split of message_start, which no delta touches', () => {
    const usage = { ...full, cache_creation: { ephemeral_5m_input_tokens: 1024, ephemeral_1h_input_tokens: 3072 } }
    expect(readAnthropicStream(anthropic(usage, full), 'sdk').split).toEqual({ m5: 1024, h1: 3072 })
  })

  it('SDK-based readers fail where the SDK throws; the message_start-only reader does not', () => {
    const twice = sse([start(full), start(full), block, text('x'), delta(full), stop])
    expect(readAnthropicStream(twice, 'sdk').error).toBe('a second message_start')
    expect(readAnthropicStream(twice, 'claude-code').error).toBe('a second message_start')
    expect(readAnthropicStream(twice, 'start-only').counts?.input).toBe(212)

    const noStop = sse([start(full), block, text('x'), delta(full)])
    expect(readAnthropicStream(noStop, 'sdk').error).toBe('the stream ended without message_stop')
    expect(readAnthropicStream(noStop, 'sdk', true).counts?.input).toBe(212) // a client that left early

    const error = sse([start(full), { event: 'error', data: { type: 'error', error: { type: 'overloaded_error' } } }])
    expect(readAnthropicStream(error, 'sdk').error).toBe('error event (overloaded_error)')
  })

  it('the usage a stream ends with, read past what the SDK rejects, by the current SDK rule', () => {
    const zero = { input_tokens: 0, output_tokens: 0 }
    const folded = { input_tokens: 30645, output_tokens: 104 }
    const twice = sse([start(zero), start(zero), block, text('x'), delta(folded), stop])
    expect(readAnthropicStream(twice, 'sdk').error).toBe('a second message_start')
    expect(readAnthropicFinal(twice)).toEqual({ counts: { input: 30645, output: 104 } })
    // A later message_start states its counts over the earlier one's; a delta's null keeps them.
    const restated = sse([start(zero), start(full), block, delta({ output_tokens: 104, input_tokens: null })])
    expect(readAnthropicFinal(restated).counts).toEqual({ input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 })
    const error = sse([
      start(full),
      { event: 'error', data: { type: 'error', error: { type: 'overloaded_error' } } },
      delta({ ...full, output_tokens: 7 }),
    ])
    expect(readAnthropicFinal(error).counts?.output).toBe(7)
    // Unnamed events are skipped, as the SDK skips them.
    expect(
      readAnthropicFinal(
        sse([
          { event: null, ...start(full) },
          { event: null, ...delta(full) },
        ]),
      ),
    ).toEqual({})
  })

  it('events without an event: name are skipped, as the SDK skips them', () => {
    const unnamed = sse([{ event: null, ...start(full) }, block, text('x'), { event: null, ...delta(full) }, stop])
    expect(readAnthropicStream(unnamed, 'sdk')).toEqual({ error: 'no message_start' })
    expect(readAnthropicStream(unnamed, 'start-only')).toEqual({})
  })

  it('events after message_stop still change the SDK snapshot (it shares the usage object)', () => {
    const late = sse([
      start(full),
      block,
      text('x'),
      delta({ ...full, output_tokens: 104 }),
      stop,
      delta({ output_tokens: 3 }),
    ])
    expect(readAnthropicStream(late, 'sdk').counts?.output).toBe(3)
  })

  it('a body: its usage as every client reads it', () => {
    const body = { type: 'message', usage: { ...full, output_tokens: 104 } }
    expect(readAnthropicBody(body)).toEqual({ counts: { input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 } })
    expect(readAnthropicBody({ type: 'message' })).toEqual({})
    expect(readAnthropicBody({ type: 'error', error: { type: 'invalid_request_error' } }).error).toMatch(
      /invalid_request/,
    )
  })
})

describe('OpenAI Chat: the SDK lays every chunk over its snapshot', () => {
  const usage = {
    prompt_tokens: 30645,
    completion_tokens: 104,
    total_tokens: 30749,
    prompt_tokens_details: { cached_tokens: 30433 },
  }
  const counts = {
    prompt: 30645,
    cached: 30433,
    cacheWrite: undefined,
    completion: 104,
    reasoning: undefined,
    total: 30749,
  }

  it('the last usage block, on a choices: [] chunk or on the finish chunk', () => {
    const usageChunk = sse([
      chunk([choice({ content: 'Hi' })], null),
      chunk([choice({}, 'stop')], null),
      chunk([], usage),
      done,
    ])
    expect(readChatStream(usageChunk)).toEqual({ counts })
    const onFinish = sse([chunk([choice({ content: 'Hi' })]), chunk([choice({}, 'stop')], usage), done])
    expect(readChatStream(onFinish)).toEqual({ counts })
  })

  it('no usage without include_usage', () => {
    expect(readChatStream(sse([chunk([choice({ content: 'Hi' })]), chunk([choice({}, 'stop')]), done]))).toEqual({})
  })

  it('a usage: null after the usage block erases it; nothing after [DONE] is read', () => {
    const erased = sse([chunk([choice({}, 'stop')], null), chunk([], usage), chunk([], null), done])
    expect(readChatStream(erased)).toEqual({})
    const after = sse([
      chunk([choice({}, 'stop')], null),
      chunk([], usage),
      done,
      chunk([], { ...usage, prompt_tokens: 1 }),
    ])
    expect(readChatStream(after).counts?.prompt).toBe(30645)
  })

  it('fails as finalChatCompletion() does: no finish_reason, an error chunk', () => {
    expect(readChatStream(sse([chunk([choice({ content: 'Hi' })], null), chunk([], usage), done])).error).toBe(
      'no finish_reason',
    )
    expect(readChatStream(sse([chunk([choice({ content: 'Hi' })], null)]), true)).toEqual({}) // a client that left
    expect(readChatStream(sse([{ event: null, data: { error: { type: 'server_error' } } }])).error).toMatch(
      /server_error/,
    )
  })

  it('a body', () => {
    expect(readChatBody({ object: 'chat.completion', usage })).toEqual({ counts })
    expect(readChatBody({ error: { message: 'no' } }).error).toBe('error body')
  })
})

describe('OpenAI Responses: the SDK reads response.completed', () => {
  const usage = {
    input_tokens: 30645,
    input_tokens_details: { cached_tokens: 30433 },
    output_tokens: 104,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 30749,
  }
  const counts = { input: 30645, cached: 30433, cacheWrite: undefined, output: 104, reasoning: 0, total: 30749 }

  it('usage from response.completed', () => {
    expect(
      readResponsesStream(sse([response('response.created', null), textDelta, response('response.completed', usage)])),
    ).toEqual({ counts })
  })

  it('response.incomplete leaves the created snapshot: no usage', () => {
    expect(
      readResponsesStream(sse([response('response.created', null), textDelta, response('response.incomplete', usage)])),
    ).toEqual({})
  })

  it('the first event must be response.created; an error event throws', () => {
    expect(readResponsesStream(sse([textDelta, response('response.completed', usage)])).error).toMatch(
      /not response.created/,
    )
    expect(
      readResponsesStream(
        sse([response('response.created', null), { event: 'error', data: { type: 'error', code: 'x' } }]),
      ).error,
    ).toBe('error event')
  })

  it('a body', () => {
    expect(readResponsesBody({ object: 'response', usage })).toEqual({ counts })
  })
})
