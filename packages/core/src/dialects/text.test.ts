import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createProcessor } from '../processor.js'
import { dialectById } from './registry.js'
import type { JsonObject, TextSink } from './types.js'

/**
 * Text templates (docs/architecture.md#text-templates): the text collected for a sidecar's join, or an
 * aborted stream's estimate, is the same whether an event's text came by its template or by parsing it.
 */

const ROUTES = {
  'anthropic-messages': '/v1/messages',
  'openai-chat': '/v1/chat/completions',
  'openai-responses': '/v1/responses',
} as const
type Dialect = keyof typeof ROUTES

/** What the dialect's `text` gives for each event, parsed one by one: the reference. */
function reference(dialect: Dialect, events: object[]): { all: string; answer: string } {
  const text = dialectById(dialect)!.text!
  const out = { all: '', answer: '' }
  const sink: TextSink = {
    add(piece, reasoning) {
      out.all += piece
      if (!reasoning) out.answer += piece
    },
  }
  for (const event of events) text(JSON.parse(JSON.stringify(event)) as JsonObject, sink)
  return out
}

function collected(dialect: Dialect, body: Buffer, cuts: number[]): { all: string; answer: string } {
  const processor = createProcessor({
    path: ROUTES[dialect],
    contentType: 'text/event-stream',
    collectText: true,
    readOnly: true,
  })
  let at = 0
  for (const cut of [...cuts.filter((c) => c < body.length)].sort((a, b) => a - b)) {
    processor.push(body.subarray(at, cut))
    at = cut
  }
  processor.push(body.subarray(at))
  processor.end()
  return { all: processor.streamedText, answer: processor.streamedAnswer }
}

const sse = (events: Array<{ name?: string; data: object }>, end = '\n') =>
  Buffer.from(
    events
      .map(
        ({ name, data }) =>
          `${name === undefined ? '' : `event: ${name}${end}`}data: ${JSON.stringify(data)}${end}${end}`,
      )
      .join(''),
  )

// Text with what JSON escapes, characters of every UTF-8 length, and empty strings.
const piece = fc.oneof(
  fc.string({
    unit: fc.constantFrom('a', ' ', '"', '\\', '\n', '\t', '\u0001', 'é', '€', '😀', '/', '}'),
    maxLength: 12,
  }),
  fc.constant(''),
)

const anthropicEvent = fc.oneof(
  {
    weight: 6,
    arbitrary: piece.map((text) => ({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } })),
  },
  {
    weight: 2,
    arbitrary: piece.map((thinking) => ({
      type: 'content_block_delta',
      index: 0,
      delta: { type: 'thinking_delta', thinking },
    })),
  },
  {
    weight: 2,
    arbitrary: piece.map((partial_json) => ({
      type: 'content_block_delta',
      index: 1,
      delta: { type: 'input_json_delta', partial_json },
    })),
  },
  {
    weight: 1,
    arbitrary: fc.constant({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  },
  { weight: 1, arbitrary: fc.constant({ type: 'content_block_stop', index: 0 }) },
  { weight: 1, arbitrary: fc.constant({ type: 'ping' }) },
  // Both members: `text` gives the first only; a template must not be learnt from it.
  {
    weight: 1,
    arbitrary: fc
      .tuple(piece, piece)
      .map(([text, partial_json]) => ({ type: 'content_block_delta', index: 0, delta: { text, partial_json } })),
  },
)

const chatEvent = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(piece, piece).map(([content, obfuscation]) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
      obfuscation,
    })),
  },
  {
    weight: 2,
    arbitrary: piece.map((reasoning_content) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { reasoning_content } }],
    })),
  },
  {
    weight: 2,
    arbitrary: piece.map((args) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: args } }] } }],
    })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(piece, piece).map(([a, b]) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [
        { index: 0, delta: { content: a } },
        { index: 1, delta: { content: b } },
      ],
    })),
  },
  // `refusal` is no text member: an event with one is parsed, not templated.
  {
    weight: 1,
    arbitrary: piece.map((refusal) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { content: 'x', refusal } }],
    })),
  },
)

const responsesEvent = fc.oneof(
  {
    weight: 4,
    arbitrary: piece.map((delta) => ({
      type: 'response.output_text.delta',
      item_id: 'm',
      output_index: 0,
      content_index: 0,
      delta,
    })),
  },
  {
    weight: 2,
    arbitrary: piece.map((delta) => ({ type: 'response.reasoning_summary_text.delta', item_id: 'r', delta })),
  },
  { weight: 1, arbitrary: fc.constant({ type: 'response.output_text.done', text: 'whole' }) },
)

const cuts = fc.array(fc.nat({ max: 4000 }), { maxLength: 8 })

describe('text templates', () => {
  afterEach(() => vi.restoreAllMocks())

  for (const [dialect, events, named] of [
    ['anthropic-messages', anthropicEvent, true],
    ['openai-chat', chatEvent, false],
    ['openai-responses', responsesEvent, true],
  ] as const) {
    it(`${dialect}: the text collected is what parsing each event gives, in any chunking and line ends`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.oneof(events, fc.constant(undefined)), { minLength: 1, maxLength: 60 }),
          fc.constantFrom('\n', '\r\n', '\r'),
          cuts,
          (list, end, at) => {
            // Runs of one shape (templates pass them), broken by others.
            let stream = list.flatMap((e, i) => (e === undefined ? [] : Array<object>(1 + (i % 4)).fill(e)))
            // Responses numbers its events: a count, free in its templates (of one to four digits, and 0).
            if (dialect === 'openai-responses')
              stream = stream.map((e, i) => ({ ...e, sequence_number: i === 0 ? 0 : (i * 997) % 10_000 }))
            if (stream.length === 0) return
            const body = sse(
              stream.map((data) => ({ name: named ? String((data as { type?: string }).type) : undefined, data })),
              end,
            )
            expect(collected(dialect, body, at)).toEqual(reference(dialect, stream))
          },
        ),
        { numRuns: 300 },
      )
    })
  }

  it('a run of events of one shape is parsed once, not once per event', () => {
    const deltas = Array.from({ length: 200 }, (_, i) => ({
      name: 'content_block_delta',
      data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: `word ${i} "q" \\ é😀` } },
    }))
    const body = sse([
      { name: 'message_start', data: { type: 'message_start', message: { usage: { input_tokens: 3 } } } },
      ...deltas,
    ])
    const parse = vi.spyOn(JSON, 'parse')
    const got = collected('anthropic-messages', body, [])
    // The first event settles the dialect (parsed twice: its text, its usage), the first delta teaches the
    // template; the strings with a backslash are parsed alone (a string, not an event).
    const events = parse.mock.calls.filter(([text]) => String(text).startsWith('{')).length
    expect(events).toBeLessThanOrEqual(3)
    expect(got.all).toBe(deltas.map((d) => d.data.delta.text).join(''))
  })

  it('a template gives only what `text` gave, each string in its place, for a text that skips empty strings', () => {
    // A dialect whose `text` gives `b` only when it is not empty, and `a` before it: the first event (`b`
    // empty, not given) must not teach a template that leaves `b` out of the next.
    const chat = dialectById('openai-chat')!
    const spec = {
      ...chat,
      recognizeEvent: () => true,
      textKeys: new Set(['a', 'b']),
      text(json: JsonObject, into: TextSink) {
        if (typeof json.a === 'string') into.add(json.a)
        if (typeof json.b === 'string' && json.b !== '') into.add(json.b, true)
      },
    }
    const events = [
      { a: 'x', b: '' },
      { a: 'y', b: 'z' },
      { a: 'w', b: 'v' },
      { a: 'u', b: '' },
      { a: 'x', b: 'x' },
      { a: 't', b: 's' },
    ]
    const processor = createProcessor({
      dialect: spec,
      contentType: 'text/event-stream',
      collectText: true,
      readOnly: true,
    })
    processor.push(sse(events.map((data) => ({ data }))))
    processor.end()
    expect(processor.streamedText).toBe('xyzwvuxxts')
    expect(processor.streamedAnswer).toBe('xywuxt')
  })

  it('Responses events, each with its own sequence number, share one template', () => {
    const deltas = Array.from({ length: 200 }, (_, i) => ({
      name: 'response.output_text.delta',
      data: {
        type: 'response.output_text.delta',
        sequence_number: i + 3,
        item_id: 'msg_1',
        output_index: 0,
        content_index: 0,
        delta: `word ${i} `,
        obfuscation: 'x'.repeat(i % 9),
      },
    }))
    const body = sse([
      { name: 'response.created', data: { type: 'response.created', sequence_number: 0, response: {} } },
      ...deltas,
    ])
    const parse = vi.spyOn(JSON, 'parse')
    const got = collected('openai-responses', body, [])
    expect(parse.mock.calls.filter(([text]) => String(text).startsWith('{')).length).toBeLessThanOrEqual(3)
    expect(got.all).toBe(deltas.map((d) => d.data.delta).join(''))
  })

  it('an event whose text was empty teaches no template: the next one is still read', () => {
    const body = sse(
      ['', 'a', 'b', ''].map((content) => ({
        data: { object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] },
      })),
    )
    expect(collected('openai-chat', body, []).all).toBe('ab')
  })
})
