/** Every broken-rule detector on small raw event lists (docs/doctor.md#broken-rules). */
import { describe, expect, it } from 'vitest'
import { detect, detectStreamVsJson, type Observation, type RuleId } from '@usagewire/doctor'
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

  it("the provider's 4xx reached the client as a 5xx or a success", () => {
    expect(rules({ scenario: 'error', truth: undefined, status: 400 })).toEqual([])
    expect(rules({ scenario: 'error', truth: undefined, status: 500 })).toEqual(['error-status'])
    expect(rules({ scenario: 'error', truth: undefined, status: 200 })).toEqual(['error-status'])
  })
})
